// One chaos run: build the namespaced network, start the cluster, run the workload under the
// seeded nemesis schedule, heal everything and require the cluster to serve writes again within a
// bound (liveness), read every key back, and check the history (safety).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHistory, type FinalValues, type Verdict } from './check.js';
import { callKv, type ReadConsistency } from './client.js';
import { ChaosCluster, sleep } from './cluster.js';
import { type FaultRecord, runFault } from './nemesis.js';
import { ChaosNetwork, checkHost } from './netns.js';
import { planSchedule } from './schedule.js';
import { type Counters, History, keyName, Workload } from './workload.js';

export interface RunOptions {
  seed: number;
  seconds: number;
  nodes: 3 | 5;
  clients: number;
  /** The subnet 10.77.<net>.0/24 and the name prefix `cfxc<net>-`: one per concurrent harness. */
  net: number;
  keys?: number;
  /** How long the healed cluster may take to serve a write again. */
  livenessBoundMs?: number;
  /** `serializable` lets reads be stale, to show the checker catches it; real runs are linearizable. */
  readConsistency?: ReadConsistency;
  log?: (line: string) => void;
}

export interface RunResult extends Verdict {
  seed: number;
  faults: FaultRecord[];
  counters: Counters;
  operations: number;
  /** Why the cluster failed to recover, if it did. */
  liveness: string | null;
  durationMs: number;
  /** Node logs, kept when the run failed. */
  dir: string | null;
}

const NODE_ARGS = ['--tick-ms', '50', '--request-timeout-ms', '2000', '--log-level', 'warn'];
const CLIENT_TIMEOUT_MS = 3_000;
const FINAL_READER = 2_000;

/** The network and cluster of the run in progress, so a signal can tear them down. */
let active: { net: ChaosNetwork; cluster: ChaosCluster } | null = null;

export function teardownActive(): void {
  if (!active) return;
  for (const s of active.cluster.slots) s.proc?.kill('SIGKILL');
  active.net.teardownSync();
  active = null;
}

export async function runOnce(opts: RunOptions): Promise<RunResult> {
  checkHost();
  const log = opts.log ?? (() => undefined);
  const keys = opts.keys ?? 8;
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'conflux-chaos-'));
  const net = new ChaosNetwork(opts.net, opts.nodes);
  const cluster = new ChaosCluster(net, dir, [...NODE_ARGS, '--catch-up-stable-ms', '300']);
  active = { net, cluster };
  const history = new History(opts.readConsistency);
  const workload = new Workload(
    history,
    { clients: opts.clients, keys, seed: opts.seed, timeoutMs: CLIENT_TIMEOUT_MS, thinkMs: 10 },
    () => cluster.members().map((s) => cluster.apiUrl(s.slot)),
  );
  const faults: FaultRecord[] = [];
  let liveness: string | null = null;
  let verdict: Verdict = { lost: 0, anomalies: 0, details: [] };
  try {
    await net.setup();
    await cluster.start();
    log(`cluster of ${opts.nodes} up in ${Date.now() - started} ms (logs in ${dir})`);
    workload.start();
    const ctx = { cluster, net, history, keys, timeoutMs: CLIENT_TIMEOUT_MS };
    for (const step of planSchedule(opts.seed, opts.seconds)) {
      const rec = await runFault(step, ctx).catch(
        (err: unknown): FaultRecord => ({
          kind: step.kind,
          what: step.kind,
          evidence: [`failed: ${(err as Error).message}`],
          effective: false,
          minorityAcks: 0,
        }),
      );
      faults.push(rec);
      log(`${rec.effective ? 'fault' : 'FAULT NOT SHOWN'}: ${rec.what} [${rec.evidence.join('; ')}]`);
      liveness = await healAndSettle(net, cluster, opts.livenessBoundMs ?? 30_000);
      if (liveness) break;
    }
    const healedAt = Date.now();
    liveness ??= await healAndSettle(net, cluster, opts.livenessBoundMs ?? 30_000);
    if (!liveness) log(`liveness: healed cluster served a write after ${Date.now() - healedAt} ms`);
    await workload.stop();
    const finals = liveness ? new Map() : await readBack(cluster, history, keys);
    verdict = checkHistory(history.ops, finals);
    if (!liveness && finals.size < keys) liveness = 'could not read every key back after healing';
  } finally {
    await workload.stop();
    await cluster.stop().catch(() => undefined);
    net.teardownSync();
    active = null;
  }
  // A write acknowledged by a side without quorum, and a cluster that never recovers, count too.
  for (const f of faults.filter((x) => x.minorityAcks > 0)) {
    verdict.anomalies += f.minorityAcks;
    verdict.details.push(`${f.what}: ${f.minorityAcks} write(s) acknowledged without a quorum`);
  }
  if (liveness) {
    verdict.anomalies += 1;
    verdict.details.push(`liveness: ${liveness}`);
  }
  const failed = verdict.lost > 0 || verdict.anomalies > 0;
  if (!failed) rmSync(dir, { recursive: true, force: true });
  return {
    seed: opts.seed,
    ...verdict,
    faults,
    counters: history.counters,
    operations: history.ops.length,
    liveness,
    durationMs: Date.now() - started,
    dir: failed ? dir : null,
  };
}

/** Heal the network and the processes; null once a write succeeds again, else why not. */
async function healAndSettle(
  net: ChaosNetwork,
  cluster: ChaosCluster,
  boundMs: number,
): Promise<string | null> {
  await net.heal();
  await cluster.healProcesses();
  const deadline = Date.now() + boundMs;
  let last = 'no attempt';
  for (let i = 0; Date.now() < deadline; i++) {
    const members = cluster.members();
    const target = members[i % members.length];
    if (target) {
      const key = `chaos/liveness/${i}`;
      const out = await callKv(cluster.apiUrl(target.slot), { op: 'put', key, value: 'x' }, 3_000);
      if (out.kind === 'ok') return null;
      last = out.kind === 'refused' ? out.code : out.reason;
    }
    await sleep(200);
  }
  return `no write succeeded within ${boundMs} ms after healing (last: ${last})`;
}

/** Read every key linearizably after healing; the reads join the history. */
async function readBack(cluster: ChaosCluster, history: History, keys: number): Promise<FinalValues> {
  const finals: FinalValues = new Map();
  for (let k = 0; k < keys; k++) {
    const key = keyName(k);
    for (let attempt = 0; attempt < 20 && !finals.has(key); attempt++) {
      const members = cluster.members();
      const target = members[attempt % members.length];
      if (!target) break;
      const out = await history.invoke(FINAL_READER, cluster.apiUrl(target.slot), { op: 'get', key }, 5_000);
      if (out.kind === 'ok' && 'value' in out.output) finals.set(key, out.output.value);
    }
  }
  return finals;
}
