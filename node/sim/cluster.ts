// The simulated cluster: real RaftNodes, KvStores and DiskStorage, one process ("life") per node
// at a time, over SimDisk, SimClock and SimNetwork. The host wiring follows node/server.ts: the
// storage fail-stops the process, the state machine is the KvStore, the transport admits peers by
// the committed membership (MembershipAdmission) and the cluster id, and a node snapshots every
// `snapshotEvery` applied entries.
//
// A process that died (kill -9, power loss, fail-stop) does nothing more: its timers, disk calls
// and messages are gated by `dead`, and promises it handed out never settle; a client that waited
// on one learns nothing (an unknown outcome), as a client of a crashed server does.

import { KvStore } from '../kv/store.js';
import type { KvApplyResult } from '../kv/types.js';
import { ProtocolViolation } from '../raft/errors.js';
import * as M from '../raft/membership.js';
import { messageProblem } from '../raft/message-checks.js';
import { DEFAULT_CONFIG } from '../raft/raft.js';
import type { DurableReady, RaftStorage, StateMachine } from '../raft/raft-node.js';
import { RaftNode } from '../raft/raft-node.js';
import { SeededRng } from '../raft/rng.js';
import type {
  Entry,
  Membership,
  Message,
  NodeId,
  NodeInfo,
  RaftMetrics,
  SnapshotMeta,
} from '../raft/types.js';
import { StorageError } from '../storage/errors.js';
import { openStorage } from '../storage/storage.js';
import { MembershipAdmission } from '../transport/membership-admission.js';
import { type ProcessGate, SimClock } from './clock.js';
import type { Coverage } from './coverage.js';
import { coreMutations, kvStoreClass, type StackMutation } from './mutations.js';
import type { Endpoint, SimNetwork } from './network.js';
import type { Oracle } from './oracle.js';
import type { StackProfile } from './profile.js';
import { type DiskStats, SimDisk, SimFs } from './sim-disk.js';
import { Violation, type World } from './world.js';

export const TICK_MS = 10;
export const ELECTION_TICKS = 10;
export const ELECTION_TIMEOUT_MS = TICK_MS * ELECTION_TICKS;
const DATA_DIR = '/var/lib/conflux';

export interface Env {
  world: World;
  net: SimNetwork;
  profile: StackProfile;
  mutations: ReadonlySet<StackMutation>;
  coverage: Coverage;
  diskStats: DiskStats;
}

export type NodeStatus = 'down' | 'starting' | 'up' | 'refused' | 'retired';

export const nodeInfo = (id: NodeId): NodeInfo => ({
  raft: `${id}.sim:7001`,
  api: `${id}.sim:7000`,
  admin: `${id}.sim:7002`,
});

function hashId(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}

/** One process of a node: from start to death. */
export class Life implements Endpoint, ProcessGate {
  dead = false;
  raft: RaftNode<KvApplyResult> | null = null;
  kv: KvStore | null = null;
  clusterId: string | null;
  readonly clock: SimClock;
  /** The revision of this process's last state reset (restore): watch history starts after it. */
  resetRevision = 0;
  /** Whether the Raft node runs (restores before that are the start, not installs). */
  running = false;
  readonly onDeath = new Set<() => void>();
  private admission: MembershipAdmission;
  private membership: Membership | null = null;
  private snapshotting = false;

  constructor(
    readonly node: StackNode,
    readonly n: number,
  ) {
    this.clock = new SimClock(node.env.world, this, node.clockRate);
    this.clusterId = node.preparedCluster;
    this.admission = new MembershipAdmission(node.id, (peer) =>
      node.toldOf.has(peer) ? nodeInfo(peer).raft : undefined,
    );
  }

  get id(): NodeId {
    return this.node.id;
  }

  get env(): Env {
    return this.node.env;
  }

  post(delayMs: number, fn: () => void): void {
    if (delayMs <= 0) this.run(fn);
    else this.env.world.after(delayMs, () => this.run(fn));
  }

  private run(fn: () => void): void {
    if (this.dead) return;
    const { world } = this.env;
    if (this.node.pausedUntil > world.now) world.after(this.node.pausedUntil - world.now, () => this.run(fn));
    else fn();
  }

  receive(m: Message, fromCluster: string | null): void {
    const raft = this.raft;
    if (!raft) return;
    // The peer listener's rules (inbound-connection.ts): the hello must name this node's cluster;
    // a retired id is refused for good; an id this node does not know yet is admitted once it has
    // a cluster id (a member that missed a node's addition must follow it when it leads).
    if (this.clusterId !== null && fromCluster !== this.clusterId) return;
    if (this.admission.isRetired(m.from)) return;
    if (!this.admission.isMember(m.from) && this.clusterId === null) return;
    const problem = messageProblem(m);
    if (problem) throw new Violation(`${this.id} received a malformed ${m.type} from ${m.from}: ${problem}`);
    try {
      raft.step(m);
    } catch (err) {
      if (err instanceof ProtocolViolation)
        throw new Violation(`${this.id} refused a ${m.type} from ${m.from} as impossible: ${err.message}`);
      throw err;
    }
  }

  /** After every Ready round (RaftNode.watchMetrics), as the server's hooks run. */
  onMetrics(m: RaftMetrics): void {
    if (m.state === 'leader' && !this.dead) {
      try {
        this.node.oracle.onLeader(this.id, m.currentTerm);
      } catch (err) {
        this.env.world.fail(err as Error);
      }
    }
    if (m.membership !== this.membership) {
      this.membership = m.membership;
      this.admission.update(m.membership);
      this.clusterId = m.membership.cluster?.id ?? this.node.preparedCluster;
    }
    const raft = this.raft;
    if (!raft || this.snapshotting) return;
    if (m.lastApplied - (m.snapshot?.index ?? 0) < this.env.profile.snapshotEvery) return;
    this.snapshotting = true;
    raft
      .triggerSnapshot()
      .then((meta) => {
        if (meta && !this.dead) this.env.coverage.snapshotsMade++;
      })
      .catch(() => undefined)
      .finally(() => {
        this.snapshotting = false;
      });
  }

  /** The storage rejected a call: only after it fail-stopped the process. */
  storageRejected(err: unknown): void {
    if (this.dead) return;
    this.env.world.fail(
      new Violation(`${this.id}: the storage rejected a write without stopping the node: ${String(err)}`),
    );
  }
}

/** The KvStore as the Raft node's state machine, with every step reported to the oracle. */
class RecordingSm implements StateMachine<KvApplyResult> {
  constructor(
    private readonly life: Life,
    private readonly kv: KvStore,
  ) {}

  get applied(): number {
    return this.kv.applied;
  }

  private check(fn: () => void): void {
    if (this.life.dead) return;
    try {
      fn();
    } catch (err) {
      this.life.env.world.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  apply(entry: Entry): KvApplyResult {
    const result = this.kv.apply(entry);
    this.check(() => this.life.node.oracle.onApply(this.life.id, this.kv, entry, result));
    return result;
  }

  snapshot(): { index: number; data: Uint8Array } {
    const s = this.kv.snapshot();
    this.check(() => this.life.node.oracle.onSnapshot(this.life.id, s.index, s.data));
    return s;
  }

  restore(meta: SnapshotMeta, data: Uint8Array): void {
    try {
      this.kv.restore(meta, data);
    } catch (err) {
      this.check(() => {
        throw new Violation(`${this.life.id} cannot restore snapshot ${meta.id}: ${String(err)}`);
      });
      throw err;
    }
    this.life.resetRevision = this.kv.revision;
    if (this.life.running && !this.life.dead) this.life.env.coverage.snapshotInstalls++;
    this.check(() => this.life.node.oracle.onRestore(this.life.id, this.kv, meta));
  }
}

/** DiskStorage, watched: a rejected write must come with a fail-stop. */
class CheckedStorage implements RaftStorage {
  constructor(
    private readonly life: Life,
    private readonly inner: RaftStorage,
  ) {}

  save(rd: DurableReady): Promise<void> {
    return this.inner.save(rd).catch((err: unknown) => {
      this.life.storageRejected(err);
      throw err;
    });
  }

  readSnapshotChunk(meta: SnapshotMeta, offset: number, length: number): Uint8Array | null {
    return this.inner.readSnapshotChunk(meta, offset, length);
  }

  readSnapshot(meta: SnapshotMeta): Promise<Uint8Array | null> {
    return this.inner.readSnapshot(meta);
  }

  saveSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void> {
    return this.inner.saveSnapshot(meta, data).catch((err: unknown) => {
      this.life.storageRejected(err);
      throw err;
    });
  }
}

export class StackNode {
  readonly disk: SimDisk;
  life: Life | null = null;
  lives = 0;
  status: NodeStatus = 'down';
  /** Peers this node knows of outside the log: a static initial cluster, or a prepare. */
  readonly toldOf = new Set<NodeId>();
  /** The cluster id a prepare told it, before its log holds one. */
  preparedCluster: string | null = null;
  /** A member of a static initial cluster initializes it on its first start. */
  initial: { voters: NodeId[]; clusterId: string } | null = null;
  pausedUntil = 0;
  readonly clockRate: number;
  /** Injected disk faults that fired in this node's current process. */
  private faultsFired = 0;

  constructor(
    readonly id: NodeId,
    readonly env: Env,
    public oracle: Oracle,
  ) {
    const { rng } = env.world;
    this.disk = new SimDisk(rng, env.diskStats, env.profile.fsyncMsMax);
    const skew = env.profile.clockSkew;
    this.clockRate = 1 - skew + 2 * skew * rng.float();
    if (this.clockRate !== 1) env.coverage.skewedClocks++;
  }

  get up(): Life | null {
    return this.life?.raft && !this.life.dead ? this.life : null;
  }

  /** Start a process (if none runs): open the storage, recover, start the Raft node. */
  async start(): Promise<void> {
    if (this.life || this.status === 'retired' || this.status === 'refused') return;
    const { world, profile, mutations, coverage } = this.env;
    const life = new Life(this, ++this.lives);
    this.life = life;
    this.status = 'starting';
    this.faultsFired = 0;
    const fs = new SimFs(
      this.disk,
      (d, fn) => life.post(d, fn),
      () => !life.dead,
    );
    fs.onFault = () => this.faultsFired++;
    let opened: Awaited<ReturnType<typeof openStorage>>;
    try {
      opened = await openStorage(DATA_DIR, {
        fs,
        fsync: !mutations.has('no-fsync'),
        segmentBytes: profile.segmentBytes,
        onFailure: () => this.exit(life, 'fail-stop'),
      });
    } catch (err) {
      this.openFailed(life, err);
      return;
    }
    const { storage, state } = opened;
    const Kv = kvStoreClass(mutations);
    const kv = new Kv({
      historyRevisions: profile.historyRevisions,
      historyBytes: 1 << 30,
      watchBufferEvents: profile.watchBufferEvents,
    });
    life.kv = kv;
    let raft: RaftNode<KvApplyResult>;
    try {
      raft = RaftNode.start({
        config: {
          ...DEFAULT_CONFIG,
          id: this.id,
          rng: new SeededRng(world.seed * 31 + this.lives * 7 + hashId(this.id)),
          electionTicks: ELECTION_TICKS,
          maxInflight: profile.maxInflight,
          maxEntriesPerAppend: profile.maxEntriesPerAppend,
          snapshotChunkBytes: profile.snapshotChunkBytes,
          mutations: coreMutations(mutations),
        },
        state,
        storage: new CheckedStorage(life, storage),
        stateMachine: new RecordingSm(life, kv),
        transport: { send: (messages) => this.env.net.send(life, messages) },
        clock: life.clock,
        tickMs: TICK_MS,
      });
    } catch (err) {
      if (!life.dead) world.fail(new Violation(`${this.id}: the Raft node cannot start: ${String(err)}`));
      return;
    }
    life.raft = raft;
    life.running = true;
    this.status = 'up';
    coverage.starts++;
    life.onMetrics(raft.metrics());
    raft.watchMetrics((m) => life.onMetrics(m));
    const fresh = state.hardState.term === 0 && state.entries.length === 0 && state.snapshot === null;
    if (fresh && this.initial) {
      const { voters, clusterId } = this.initial;
      // Every member of a static initial cluster writes the same first entry (server.ts).
      raft
        .initialize(voters, {
          nodes: Object.fromEntries(voters.map((v) => [v, nodeInfo(v)])),
          cluster: { id: clusterId, restoredFrom: null },
        })
        .catch(() => undefined);
    }
  }

  /**
   * The storage would not open: a refusal of a disk it calls corrupt (a violation unless the
   * disk really is), or a failure the injected faults explain (restart later; else a violation).
   */
  private openFailed(life: Life, err: unknown): void {
    const { world, coverage } = this.env;
    if (life.dead) return;
    life.dead = true;
    this.life = null;
    if (err instanceof StorageError && err.code === 'STORAGE_CORRUPTION') {
      // The designed answer to data it cannot trust: refuse, and let the operator replace it.
      this.status = 'refused';
      coverage.refusedOpens++;
      if (!this.disk.corrupted) {
        world.fail(
          new Violation(`${this.id}: the storage calls a disk corrupt that only crashed: ${err.message}`),
        );
      }
      return;
    }
    this.status = 'down';
    if (this.faultsFired > 0) this.restartLater();
    else world.fail(new Violation(`${this.id}: the storage failed to open: ${String(err)}`));
  }

  /** kill -9: the page cache survives. */
  kill(): void {
    if (this.life) this.exit(this.life, 'kill');
  }

  /** The machine loses power: unsynced data is dropped or torn. */
  powerOff(): void {
    if (this.life) this.exit(this.life, 'power');
    this.disk.powerLoss();
  }

  /** The operator deleted the node for good (removed from the cluster or replaced). */
  retire(): void {
    if (this.life) this.exit(this.life, 'retire');
    this.status = 'retired';
  }

  private exit(life: Life, why: 'kill' | 'power' | 'fail-stop' | 'retire'): void {
    if (life.dead) return;
    life.dead = true;
    if (this.life === life) this.life = null;
    this.status = 'down';
    this.disk.processExit();
    const { coverage } = this.env;
    if (why === 'kill') coverage.kills++;
    else if (why === 'power') coverage.powerLosses++;
    else if (why === 'fail-stop') coverage.failStops++;
    for (const fn of life.onDeath) fn();
    // A stopped node is restarted (by its supervisor) once its disk works again.
    if (why === 'fail-stop') this.restartLater();
  }

  restartLater(delayMs = 50 + this.env.world.rng.int(250)): void {
    this.env.world.after(delayMs, () => {
      if (this.status === 'down' && !this.life) void this.start();
    });
  }

  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.env.world.now + ms);
    this.env.coverage.pauses++;
  }
}

export class StackCluster {
  readonly nodes = new Map<NodeId, StackNode>();
  private nextId = 1;

  constructor(readonly env: Env) {}

  endpoint(id: NodeId): Endpoint | null {
    return this.nodes.get(id)?.up ?? null;
  }

  newNode(oracle: Oracle): StackNode {
    const id = `n${this.nextId++}`;
    const node = new StackNode(id, this.env, oracle);
    this.nodes.set(id, node);
    return node;
  }

  /** Up nodes of the lineage `oracle`. */
  up(oracle?: Oracle): StackNode[] {
    return [...this.nodes.values()].filter((n) => n.up && (!oracle || n.oracle === oracle));
  }

  /** The leader with the highest term among up nodes of a lineage, as the operator sees it. */
  leader(oracle?: Oracle): { node: StackNode; life: Life; metrics: RaftMetrics } | null {
    let best: { node: StackNode; life: Life; metrics: RaftMetrics } | null = null;
    for (const node of this.up(oracle)) {
      const life = node.up as Life;
      const metrics = (life.raft as RaftNode<KvApplyResult>).metrics();
      if (metrics.state !== 'leader') continue;
      if (!best || metrics.currentTerm > best.metrics.currentTerm) best = { node, life, metrics };
    }
    return best;
  }

  /** A node whose Raft node stopped by itself (a storage failure exits the process instead): a bug. */
  stoppedNode(): string | null {
    for (const n of this.nodes.values()) {
      const why = n.up?.raft?.stopReason();
      if (why) return `${n.id} stopped by itself: ${why.message}`;
    }
    return null;
  }

  /** Members of the lineage's newest committed membership as the leader (or anyone) sees it. */
  membership(oracle: Oracle): Membership | null {
    const l = this.leader(oracle);
    if (l) return l.metrics.membership;
    const any = this.up(oracle)[0]?.up?.raft;
    return any ? any.metrics().membership : null;
  }
}

export const isJointNow = (m: Membership | null): boolean => m !== null && M.isJoint(m);

/** A KvStore for references and checks (never mutated). */
export const referenceStore = (): KvStore =>
  new KvStore({ historyRevisions: 1 << 30, historyBytes: 1 << 40, watchBufferEvents: 1 << 30 });
