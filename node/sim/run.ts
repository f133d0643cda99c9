// One whole-stack run per seed:
// 1. a cluster of real RaftNode + KvStore + DiskStorage processes on simulated disks, clocks and
//    network, bootstrapped as a static initial cluster;
// 2. the safety phase: clients, watchers and the nemesis (faults and the operator's work);
// 3. the faults heal; liveness: within `livenessMs`, a membership change (a fresh node added as
//    learner and promoted) and then a write both succeed, and every member applies the write
//    (a stuck joint configuration fails here);
// 4. the checks: every replica's state equal byte for byte, linearizability per key, the
//    cross-key revision order, every watch session complete, and no node stopped by surprise.
// Violations found on the way (state machine safety, replica divergence, a storage that swallowed
// a failure or called a crash corruption, ...) stop the run at once.

import { encodeCommand } from '../kv/commands.js';
import { RaftError } from '../raft/errors.js';
import * as M from '../raft/membership.js';
import { checkOperations } from '../raft/sim/linearizability.js';
import { type Env, type Life, referenceStore, StackCluster, type StackNode } from './cluster.js';
import { type Coverage, emptyCoverage } from './coverage.js';
import { pickKeys } from './keys.js';
import type { StackMutation } from './mutations.js';
import { Operator, StackNemesis } from './nemesis.js';
import { SimNetwork } from './network.js';
import { Oracle, stateDigest } from './oracle.js';
import { deriveStackProfile, type StackProfile } from './profile.js';
import { backupAndRestore, forceNewCluster } from './recovery.js';
import { revisionOrderProblem } from './revision-order.js';
import { stackKvModel } from './stack-model.js';
import { WatchClient } from './watch-checker.js';
import { OP_TIMEOUT_MS, settle, Workload } from './workload.js';
import { Violation, World } from './world.js';

export interface StackRunOptions {
  mutations?: ReadonlySet<StackMutation>;
  profile?: Partial<StackProfile>;
}

export interface StackRunResult {
  seed: number;
  violation: string | null;
  /** The linearizability search gave up on a history (bounded): neither pass nor fail. */
  inconclusive: boolean;
  events: number;
  ops: number;
  livenessMs: number | null;
  coverage: Coverage;
}

const CLUSTER_ID = 'sim-cluster';

/** A run's result before it ran: no violation yet, nothing counted. */
function cleanResult(seed: number, coverage: Coverage): StackRunResult {
  return { seed, violation: null, inconclusive: false, events: 0, ops: 0, livenessMs: null, coverage };
}

export async function runStackSeed(seed: number, options: StackRunOptions = {}): Promise<StackRunResult> {
  const profile = deriveStackProfile(seed, options.profile);
  const world = new World(seed);
  const coverage = emptyCoverage();
  coverage.seeds = 1;
  let cluster: StackCluster | null = null;
  const net = new SimNetwork(world, profile, (id) => cluster?.endpoint(id) ?? null);
  const env: Env = {
    world,
    net,
    profile,
    mutations: options.mutations ?? new Set(),
    coverage,
    diskStats: coverage.disk,
  };
  const sim = new StackCluster(env);
  cluster = sim;
  const oracle = new Oracle(CLUSTER_ID, referenceStore(), 0);
  const result = cleanResult(seed, coverage);
  const unhandled = (reason: unknown) => world.fail(new Violation(`unhandled rejection: ${String(reason)}`));
  process.on('unhandledRejection', unhandled);
  const watchers: WatchClient[] = [];
  let workload: Workload | null = null;
  try {
    startInitialCluster(sim, oracle, profile.voters);
    const keys = pickKeys(world.rng, profile.keys);
    workload = new Workload(world, sim, coverage, keys, oracle, profile.clients);
    workload.start();
    watchers.push(...startWatchers(world, sim, coverage, oracle, keys, profile));
    const nemesisCtx = { world, cluster: sim, net, profile, coverage, oracle: () => oracle };
    const nemesis = new StackNemesis(nemesisCtx);
    nemesis.start();
    const lineages: Oracle[] = [];
    const rctx = { world, cluster: sim, coverage, workload };

    if (profile.restore) {
      await world.run(profile.safetyMs * 0.3);
      const restored = await backupAndRestore(
        rctx,
        oracle,
        (o) => new Operator({ ...nemesisCtx, oracle: () => o }),
      );
      if (restored) lineages.push(restored.oracle);
    }
    if (profile.forceNewCluster) await forceNewClusterPhase(rctx, net, nemesis, oracle, profile.safetyMs);

    const finaleAt = profile.finale === 'none' ? profile.safetyMs : profile.safetyMs - 900;
    await world.run(finaleAt);
    nemesis.stopped = true;
    const wl = workload;
    await drain(world, wl);
    if (profile.finale === 'joint-transfer') await jointTransferFinale(world, sim, oracle, net);
    await world.run(profile.safetyMs);

    result.livenessMs = await healAndAwaitLiveness(
      world,
      sim,
      net,
      nemesis,
      oracle,
      lineages,
      profile.livenessMs,
    );
    for (const o of [oracle, ...lineages]) finalEquality(sim, o);

    result.inconclusive = await finalChecks(world, sim, watchers, wl);
  } catch (err) {
    result.violation =
      err instanceof Violation ? err.message : `the stack threw: ${(err as Error).stack ?? String(err)}`;
  } finally {
    process.off('unhandledRejection', unhandled);
    result.events = world.events;
    countNetworkFaults(coverage, net);
    result.ops = workload?.history.length ?? 0;
  }
  return result;
}

/** The voters of a static initial cluster, each told of the others, started. */
function startInitialCluster(sim: StackCluster, oracle: Oracle, count: number): void {
  const voters: StackNode[] = [];
  for (let i = 0; i < count; i++) voters.push(sim.newNode(oracle));
  const ids = voters.map((n) => n.id);
  for (const n of voters) {
    n.initial = { voters: ids, clusterId: CLUSTER_ID };
    for (const id of ids) n.toldOf.add(id);
    void n.start();
  }
}

/** The profile's watchers, started, each on one key, a one-letter prefix or every key. */
function startWatchers(
  world: World,
  sim: StackCluster,
  coverage: Coverage,
  oracle: Oracle,
  keys: string[],
  profile: StackProfile,
): WatchClient[] {
  const watchers: WatchClient[] = [];
  for (let i = 0; i < profile.watchers; i++) {
    const key = world.rng.pick(keys);
    const filter = world.rng.pick([
      { prefix: '' },
      { key },
      { prefix: String.fromCodePoint(key.codePointAt(0) ?? 0x61) },
    ]);
    const w = new WatchClient(i, world, sim, coverage, oracle, filter, profile.historyRevisions);
    watchers.push(w);
    w.start();
  }
  return watchers;
}

/** Halfway through the safety phase, at a quiet moment, a quorum is lost for good and recovered. */
async function forceNewClusterPhase(
  rctx: { world: World; cluster: StackCluster; coverage: Coverage; workload: Workload },
  net: SimNetwork,
  nemesis: StackNemesis,
  oracle: Oracle,
  safetyMs: number,
): Promise<void> {
  const { world, cluster: sim, workload } = rctx;
  await world.run(safetyMs * 0.5);
  // A quiet moment: no faults, no client in flight; then a quorum is lost for good.
  nemesis.stopped = true;
  await drain(world, workload);
  healAll(sim, net);
  await forceNewCluster(rctx, oracle, nemesis.operator);
  net.faultsOn = true;
  workload.start();
  nemesis.stopped = false;
  nemesis.start();
}

/**
 * Heal the network, the disks and paused processes, restart what is down; then the liveness
 * steps must succeed within `livenessMs`. Returns how long they took.
 */
async function healAndAwaitLiveness(
  world: World,
  sim: StackCluster,
  net: SimNetwork,
  nemesis: StackNemesis,
  oracle: Oracle,
  lineages: Oracle[],
  livenessMs: number,
): Promise<number> {
  nemesis.stopped = true;
  healAll(sim, net);
  const healedAt = world.now;
  const deadline = healedAt + livenessMs;
  const live = { done: false, step: 'starting' };
  const task = liveness(world, sim, nemesis, oracle, live, lineages).then(
    () => {
      live.done = true;
    },
    (err: unknown) => world.fail(err instanceof Error ? err : new Error(String(err))),
  );
  await world.run(deadline, () => live.done);
  if (!live.done) {
    throw new Violation(
      `liveness: ${live.step} did not succeed within ${livenessMs} ms of healing (${describe(sim)})`,
    );
  }
  void task;
  return world.now - healedAt;
}

/**
 * The end-of-run checks: every watch session complete, no node stopped by surprise, every
 * serializable read a real write, the cross-key revision order, linearizability per key.
 * Throws a Violation; returns whether the linearizability search was inconclusive.
 */
async function finalChecks(
  world: World,
  sim: StackCluster,
  watchers: WatchClient[],
  wl: Workload,
): Promise<boolean> {
  for (const w of watchers) w.stop();
  await world.quiesce();
  for (const w of watchers) w.check();
  if (world.failure) throw world.failure;
  const stopped = sim.stoppedNode();
  if (stopped) throw new Violation(stopped);

  const stale = wl.checkSerializable();
  if (stale) throw new Violation(stale);
  const order = revisionOrderProblem(wl.revisions);
  if (order) throw new Violation(order);
  const check = checkOperations(stackKvModel, wl.history, { maxSteps: 2_000_000 });
  if (check.ok === false) throw new Violation(`linearizability: ${check.description}`);
  return check.ok === 'unknown';
}

function countNetworkFaults(coverage: Coverage, net: SimNetwork): void {
  coverage.messagesLost = net.stats.lost;
  coverage.messagesDuplicated = net.stats.duplicated;
  coverage.longDelays = net.stats.longDelays;
  coverage.wireMessages = net.stats.wire;
}

function healAll(sim: StackCluster, net: SimNetwork): void {
  net.heal();
  net.faultsOn = false;
  for (const n of sim.nodes.values()) {
    n.disk.faults = {};
    n.pausedUntil = 0;
    if (n.status === 'down') n.restartLater(1);
  }
}

/** Let the workload's operations in flight reach an outcome (answer or timeout). */
async function drain(world: World, workload: Workload): Promise<void> {
  const stopping = workload.stop();
  let stopped = false;
  void stopping.then(() => {
    stopped = true;
  });
  await world.run(world.now + OP_TIMEOUT_MS + 100, () => stopped);
}

/**
 * The leader starts removing a voter and at once transfers leadership to a voter that is cut off:
 * the joint configuration commits while the transfer is pending, then the transfer times out.
 * A correct leader then leaves the joint configuration by itself.
 */
async function jointTransferFinale(world: World, sim: StackCluster, oracle: Oracle, net: SimNetwork) {
  net.heal();
  for (const n of sim.nodes.values()) if (n.status === 'down') n.restartLater(1);
  let l = sim.leader(oracle);
  for (let waited = 0; waited < 400 && !l?.metrics.replication; waited += 10) {
    await world.run(world.now + 10);
    l = sim.leader(oracle);
  }
  await world.run(world.now + 50);
  l = sim.leader(oracle);
  const raft = l?.life.raft;
  if (!l || !raft) return;
  const voters = M.voters(l.metrics.membership).filter((v) => v !== l.node.id);
  if (voters.length < 4 || M.isJoint(l.metrics.membership)) return;
  const [target, victim] = world.rng.shuffle(voters) as [string, string];
  for (const n of sim.nodes.keys()) {
    if (n === target) continue;
    net.block(n, target);
    net.block(target, n);
  }
  raft.changeMembership(M.voters(l.metrics.membership).filter((v) => v !== victim)).catch(() => undefined);
  raft.transferLeader(target, 1_000).catch(() => undefined);
}

async function liveness(
  world: World,
  sim: StackCluster,
  nemesis: StackNemesis,
  oracle: Oracle,
  live: { step: string },
  lineages: Oracle[],
): Promise<void> {
  const op = nemesis.operator;
  while (op.busy) await world.sleep(10);
  // A node whose storage refused to open is removed (the operator's remedy) before anything else.
  const removeRefused = async () => {
    for (const n of [...sim.nodes.values()]) {
      if (n.status !== 'refused' || n.oracle !== oracle) continue;
      live.step = `removing ${n.id}, whose storage refused to open`;
      const members = sim.membership(oracle);
      if (members && !M.members(members).includes(n.id)) n.retire();
      else if (await op.removeNode(n.id, true)) sim.env.coverage.replacements++;
      else await world.sleep(20);
    }
  };
  await removeRefused();
  live.step = 'adding and promoting a fresh node';
  const fresh = sim.newNode(oracle);
  for (;;) {
    const before = sim.env.coverage.promotions;
    await op.addNode(1_000, Number.POSITIVE_INFINITY, fresh);
    if (sim.env.coverage.promotions > before) break;
    await world.sleep(20);
  }
  await writeAndConverge(world, sim, oracle, live, removeRefused);
  for (const o of lineages) await writeAndConverge(world, sim, o, live, async () => {});
}

/** A write on the lineage's leader, then every member applied it and stands at the same index. */
async function writeAndConverge(
  world: World,
  sim: StackCluster,
  oracle: Oracle,
  live: { step: string },
  removeRefused: () => Promise<void>,
): Promise<void> {
  live.step = `a write (${oracle.name})`;
  let index = 0;
  while (index === 0) {
    const l = sim.leader(oracle);
    const raft = l?.life.raft;
    if (!l || !raft) {
      await world.sleep(10);
      continue;
    }
    const cmd = encodeCommand({ type: 'put', key: '\uFEFFliveness', value: new Uint8Array([1]) });
    const r = await settle(world, l.life, raft.clientWrite(cmd), 300);
    if (r.kind === 'ok') index = r.value.index;
    else if (r.kind === 'error' && !(r.err instanceof RaftError)) throw r.err;
    else await world.sleep(10);
  }
  for (;;) {
    await removeRefused();
    live.step = `every member of ${oracle.name} applying index ${index}`;
    const l = sim.leader(oracle);
    const members = l ? M.members(l.metrics.membership) : [];
    const lives = members.map((id) => sim.nodes.get(id)?.up);
    if (l && lives.every((x) => x?.kv && x.kv.applied >= index)) {
      // Then every member at the leader's commit index, for the byte comparison.
      const commit = l.metrics.committed;
      if (lives.every((x) => (x as Life).kv?.applied === commit)) return;
    }
    await world.sleep(10);
  }
}

/** Every member's state encodes to the same bytes (they applied the same index). */
function finalEquality(sim: StackCluster, oracle: Oracle): void {
  const digests = new Map<string, string[]>();
  for (const n of sim.up(oracle)) {
    const kv = n.up?.kv;
    if (!kv) continue;
    const d = `${kv.applied}/${stateDigest(kv.snapshot().data)}`;
    digests.set(d, [...(digests.get(d) ?? []), n.id]);
  }
  const byIndex = new Map<string, Set<string>>();
  for (const d of digests.keys()) {
    const [index, digest] = d.split('/') as [string, string];
    byIndex.set(index, (byIndex.get(index) ?? new Set()).add(digest));
  }
  for (const [index, set] of byIndex) {
    if (set.size > 1) {
      throw new Violation(
        `replica byte-equality: at index ${index} the replicas hold ${set.size} different states: ${[...digests.entries()].map(([d, ids]) => `${ids.join(',')}=${d}`).join(' ')}`,
      );
    }
  }
}

function describe(sim: StackCluster): string {
  return [...sim.nodes.values()]
    .map((n) => {
      const raft = n.up?.raft;
      if (!raft) return `${n.id}:${n.status}`;
      const m = raft.metrics();
      const joint = M.isJoint(m.membership) ? '/joint' : '';
      return `${n.id}:${m.state}/t${m.currentTerm}/c${m.committed}/a${m.lastApplied}${joint}`;
    })
    .join(' ');
}
