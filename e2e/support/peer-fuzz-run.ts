// One run of the peer-frame fuzzer against a live three-node TLS cluster (peer-fuzz-cluster.ts):
// writers do acknowledged writes and linearizable reads through every member while an attacker
// with a stolen node certificate sends seeded attacks (peer-fuzz-frames.ts) at the members' peer
// ports. Afterwards every member must be alive and serving, hold the same keys with the same
// revisions, have every acknowledged write in its history, and the recorded history must be
// linearizable (node/raft/sim/linearizability.ts with the key-value model).

import tls from 'node:tls';
import { SeededRng } from '../../node/raft/rng.js';
import { type KvOperation, kvModel } from '../../node/raft/sim/kv-model.js';
import { type CheckResult, checkOperations } from '../../node/raft/sim/linearizability.js';
import type { FuzzCluster } from './peer-fuzz-cluster.js';
import { type AttackKind, drawAttack, type FuzzView } from './peer-fuzz-frames.js';
import { eventually, sleep } from './process-cluster.js';

export interface FuzzReport {
  seed: number;
  attacks: number;
  /** Attacks sent and connections the member closed, per kind. */
  byKind: Partial<Record<AttackKind, { sent: number; closed: number }>>;
  acknowledged: number;
  unknown: number;
  reads: number;
  protocolErrors: number;
  terms: { before: number; after: number };
  linearizable: CheckResult;
  /** Everything that went wrong; empty when the run passed. */
  failures: string[];
}

const KEYS = 6;

/** An acknowledged put: its key, value and the revision the leader answered. */
interface Acked {
  key: string;
  value: string;
  revision: number;
}

/** Writers through random members until `stop()`; records every operation for the checker. */
function startWriters(c: FuzzCluster, seed: number, writers: number) {
  const history: KvOperation[] = [];
  const acked: Acked[] = [];
  let running = true;
  const one = async (clientId: number) => {
    const rng = new SeededRng(seed * 31 + clientId);
    for (let seq = 0; running; seq++) {
      const key = `fz/${rng.int(KEYS)}`;
      const via = c.apiUrl(rng.pick(c.members).id);
      const call = performance.now();
      if (rng.chance(0.6)) {
        const value = `c${clientId}-${seq}`;
        const res = await c.call(`${via}/v1/kv/${key}`, 'PUT', value).catch(() => null);
        const ok = res?.status === 200;
        history.push({
          clientId,
          input: { op: 'put', key, value },
          call,
          output: ok ? { ok: true } : undefined,
          return: ok ? performance.now() : Number.POSITIVE_INFINITY,
        });
        if (ok) acked.push({ key, value, revision: (JSON.parse(res.body) as { revision: number }).revision });
        else await sleep(20);
      } else {
        const res = await c.call(`${via}/v1/kv/${key}`).catch(() => null);
        if (res?.status === 200 || res?.status === 404) {
          const value = res.status === 404 ? null : (JSON.parse(res.body) as { value: string }).value;
          history.push({
            clientId,
            input: { op: 'get', key },
            call,
            output: { value },
            return: performance.now(),
          });
        } else await sleep(20);
      }
    }
  };
  const done = Promise.all(Array.from({ length: writers }, (_, i) => one(i)));
  return {
    history,
    acked,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** Dials `port` with the stolen certificate, writes the chunks; whether the member hung up within `waitMs`. */
function attackOnce(c: FuzzCluster, port: number, chunks: Buffer[], waitMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ...c.stolen,
      checkServerIdentity: () => undefined,
    });
    let closed = false;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(closed);
    }, waitMs);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve(true);
    });
    socket.once('secureConnect', () => {
      for (const chunk of chunks) if (!socket.destroyed) socket.write(chunk);
    });
  });
}

async function viewOf(c: FuzzCluster, target: string): Promise<FuzzView> {
  const s = await c.status(target);
  return {
    target,
    members: c.members.map((m) => m.id),
    clusterId: s.cluster_id ?? '',
    term: s.current_term,
    leader: s.leader_id,
    lastIndex: s.log_index,
    lastTerm: s.last_log_term ?? 0,
  };
}

/** Sends attacks until `deadline`; a member that stays up after a refusable attack is a failure. */
async function attackUntil(c: FuzzCluster, rng: SeededRng, deadline: number, report: FuzzReport) {
  while (performance.now() < deadline) {
    const target = rng.pick(c.members);
    const view = await viewOf(c, target.id).catch(() => null);
    if (view === null) {
      report.failures.push(`${target.id} did not answer /_internal/status during the attacks`);
      return;
    }
    const attack = drawAttack(rng, view);
    const n = report.attacks++;
    const closed = await attackOnce(c, target.raft, attack.chunks, attack.mustClose ? 3_000 : 200);
    const stats = report.byKind[attack.kind] ?? { sent: 0, closed: 0 };
    report.byKind[attack.kind] = stats;
    stats.sent++;
    if (closed) stats.closed++;
    if (target.proc?.exitCode !== null) {
      report.failures.push(
        `attack ${n} (${attack.kind}: ${attack.what}) on ${target.id}: the process exited`,
      );
      return;
    }
    if (attack.mustClose && !closed) {
      // A message refused in one term is merely stale in the next: only a view still current counts.
      const now = await c.status(target.id);
      if (attack.kind !== 'impossible' || now.current_term === view.term)
        report.failures.push(
          `attack ${n} (${attack.kind}: ${attack.what}) on ${target.id}: connection left open`,
        );
    }
  }
}

/** One serializable page of every fuzzed key on `id`, as comparable text. */
async function keysOn(c: FuzzCluster, id: string): Promise<string> {
  const res = await c.call(`${c.apiUrl(id)}/v1/kv?prefix=fz/&consistency=serializable&limit=1000`);
  const page = JSON.parse(res.body) as { kvs: { key: string; value: string; modRevision: number }[] };
  return JSON.stringify(page.kvs.map((kv) => [kv.key, kv.value, kv.modRevision]));
}

/** Every put event in `id`'s own history of the fuzzed keys, as "key=value@revision". */
async function historyOn(c: FuzzCluster, id: string): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let from = 1; ; ) {
    const res = await c.call(
      `${c.apiUrl(id)}/v1/watch?prefix=fz/&from_revision=${from}&timeout_ms=0&limit=1000`,
    );
    if (res.status !== 200) throw new Error(`${id}: watch from ${from} answered ${res.status} ${res.body}`);
    const page = JSON.parse(res.body) as {
      events: { type: string; kv: { key: string; value: string; modRevision: number } }[];
      nextRevision: number;
    };
    if (page.events.length === 0) return seen;
    for (const e of page.events) seen.add(`${e.kv.key}=${e.kv.value}@${e.kv.modRevision}`);
    from = page.nextRevision;
  }
}

/** After the attacks: every member alive and serving, in step, with every acknowledged write. */
async function checkAfter(c: FuzzCluster, acked: Acked[], report: FuzzReport): Promise<void> {
  const { failures } = report;
  const exited = c.members.filter((m) => m.proc?.exitCode !== null);
  for (const m of exited) failures.push(`${m.id} exited (${m.proc?.exitCode})`);
  if (exited.length > 0) return;
  const leader = await c.leader(30_000);
  report.terms.after = (await c.status(leader)).current_term;
  // A last write through the leader: once every member applied it, they hold everything before it.
  const last = await c.call(`${c.apiUrl(leader)}/v1/kv/fz-last`, 'PUT', 'done');
  if (last.status !== 200) failures.push(`the leader refused a write after the attacks: ${last.status}`);
  for (const m of c.members) {
    const ready = await c.call(`${c.apiUrl(m.id)}/readyz`);
    if (ready.status !== 200) failures.push(`${m.id} is not ready after the attacks: ${ready.body}`);
  }
  const views = await eventually(
    'every member holds the same keys',
    async () => {
      const all = await Promise.all(c.members.map((m) => keysOn(c, m.id)));
      return all.every((v) => v === all[0]) ? all : undefined;
    },
    20_000,
  ).catch(async () => Promise.all(c.members.map((m) => keysOn(c, m.id))));
  if (!views.every((v) => v === views[0])) failures.push(`members differ: ${views.join(' / ')}`);
  const revisions = new Map<number, string>();
  for (const a of acked) {
    const other = revisions.get(a.revision);
    if (other !== undefined)
      failures.push(`two acknowledged writes at revision ${a.revision}: ${other}, ${a.key}`);
    revisions.set(a.revision, a.key);
  }
  for (const m of c.members) {
    const history = await historyOn(c, m.id);
    const missing = acked.filter((a) => !history.has(`${a.key}=${a.value}@${a.revision}`));
    if (missing.length > 0)
      failures.push(
        `${m.id} lacks ${missing.length} acknowledged writes, e.g. ${JSON.stringify(missing[0])}`,
      );
  }
  report.protocolErrors = (await Promise.all(c.members.map((m) => c.protocolErrors(m.id)))).reduce(
    (a, b) => a + b,
  );
}

/**
 * Runs `seconds` of attacks under a write load on a started cluster and checks it afterwards;
 * the report's `failures` lists what went wrong (empty: the run passed).
 */
export async function fuzzPeers(
  c: FuzzCluster,
  seed: number,
  seconds: number,
  writers = 3,
): Promise<FuzzReport> {
  const report: FuzzReport = {
    seed,
    attacks: 0,
    byKind: {},
    acknowledged: 0,
    unknown: 0,
    reads: 0,
    protocolErrors: 0,
    terms: { before: (await c.status(await c.leader())).current_term, after: 0 },
    linearizable: { ok: true },
    failures: [],
  };
  const load = startWriters(c, seed, writers);
  try {
    await attackUntil(c, new SeededRng(seed), performance.now() + seconds * 1000, report);
  } finally {
    await load.stop();
  }
  await checkAfter(c, load.acked, report);
  report.acknowledged = load.acked.length;
  report.unknown = load.history.filter((op) => op.input.op === 'put' && op.output === undefined).length;
  report.reads = load.history.filter((op) => op.input.op === 'get').length;
  report.linearizable = checkOperations(kvModel, load.history);
  if (report.linearizable.ok !== true)
    report.failures.push(`history: ${JSON.stringify(report.linearizable)}`);
  if (report.protocolErrors === 0) report.failures.push('no member counted a protocol error');
  return report;
}
