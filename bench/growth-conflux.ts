// Conflux's side of the growth bench: bulk load through POST /v1/txn, backup to a file://
// destination, restore into a pristine node, and the safe add of a fourth node (POST
// /_cluster/nodes, then the operation until it succeeded), all through the public APIs.

import { join } from 'node:path';
import { CONFLUX_ELECTION_TICKS, CONFLUX_TICK_MS, type ConfluxCluster } from './conflux.js';
import { type BatchRequest, jsonRequest, keyAt, valueAt } from './growth-data.js';
import type { Member } from './load.js';
import { freePorts, httpCall, memoryKiB, type Proc, startProcess, waitUntil } from './proc.js';

/** A node's catch-up policy in the growth bench: lag 100 held for this long before promotion. */
export const CATCH_UP_STABLE_MS = 200;

/** How long the add of a fourth member may take before the step counts as failed. */
export const ADD_TIMEOUT_MS = 300_000;

export const confluxBatch: BatchRequest = (from, to) => {
  const success = [];
  for (let i = from; i < to; i++) success.push({ type: 'put', key: keyAt(i), value: valueAt(i).toString() });
  return jsonRequest('POST', '/v1/txn', { success });
};

/** A Conflux node started without any formation flags: it waits to be prepared, initialized or restored. */
export interface PristineNode {
  member: Member;
  adminUrl: string;
  addresses: { api_address: string; raft_address: string; admin_address: string };
}

export async function startPristine(
  root: string,
  dir: string,
  id: string,
  onCrash: (p: Proc, why: string) => void,
  cpuProfDir?: string,
): Promise<PristineNode> {
  const [api, raft, admin] = (await freePorts(3)).map((p) => `127.0.0.1:${p}`) as [string, string, string];
  const args = [
    ...(cpuProfDir
      ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir, '--cpu-prof-name', `conflux-${id}.cpuprofile`]
      : []),
    join(root, 'dist/node/main.js'),
    '--dev-insecure',
    '--node-id',
    id,
    '--data-dir',
    join(dir, id),
    '--api-addr',
    api,
    '--raft-addr',
    raft,
    '--admin-addr',
    admin,
    '--tick-ms',
    String(CONFLUX_TICK_MS),
    '--election-ticks',
    String(CONFLUX_ELECTION_TICKS),
    '--catch-up-stable-ms',
    String(CATCH_UP_STABLE_MS),
  ];
  const proc = startProcess(`conflux ${id}`, process.execPath, args, join(dir, `${id}.log`), onCrash);
  const member: Member = { id, proc, host: '127.0.0.1', port: Number(api.split(':')[1]) };
  const adminUrl = `http://${admin}`;
  await waitUntil(`conflux ${id} listening`, 30_000, async () => {
    if (proc.exited) throw new Error(`conflux ${id} exited`);
    const r = await httpCall(`http://${api}/healthz`, 'GET', undefined, 1000);
    return r.status === 200 || `HTTP ${r.status}`;
  });
  return { member, adminUrl, addresses: { api_address: api, raft_address: raft, admin_address: admin } };
}

const json = (r: { status: number; body: string }, what: string, ok = [200]) => {
  if (!ok.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${r.body.slice(0, 300)}`);
  return JSON.parse(r.body) as Record<string, unknown>;
};

export interface BackupResult {
  ms: number;
  bytes: number;
  uri: string;
}

export async function confluxBackup(c: ConfluxCluster, leader: Member, dir: string): Promise<BackupResult> {
  const t0 = performance.now();
  const r = await httpCall(
    `${c.adminUrl(leader)}/_cluster/backup`,
    'POST',
    JSON.stringify({ destination: `file://${dir}`, force: true }),
    600_000,
  );
  const ms = performance.now() - t0;
  const doc = json(r, 'conflux POST /_cluster/backup');
  return { ms, bytes: Number(doc.bytes), uri: String(doc.uri) };
}

export interface RestoreResult {
  /** POST /_cluster/restore until it answered (download, verify, install, one-node cluster). */
  ms: number;
  /** From starting the process until it answered a linearizable read of the last key. */
  totalMs: number;
  keys: number;
  /** RSS of the restored node once it served the last key. */
  rssKiB: number;
}

/**
 * Restore `uri` into a pristine node and read the last key back through it. The node is added to
 * `started` as soon as it runs, so the caller stops it whatever happens.
 */
export async function confluxRestore(
  root: string,
  dir: string,
  uri: string,
  n: number,
  onCrash: (p: Proc, why: string) => void,
  started: Member[],
  cpuProfDir?: string,
): Promise<RestoreResult> {
  const t0 = performance.now();
  const node = await startPristine(root, dir, 'r1', onCrash, cpuProfDir);
  started.push(node.member);
  const t1 = performance.now();
  const r = await httpCall(
    `${node.adminUrl}/_cluster/restore`,
    'POST',
    JSON.stringify({ snapshot_uri: uri }),
    600_000,
  );
  const ms = performance.now() - t1;
  const doc = json(r, 'conflux POST /_cluster/restore');
  const { host, port } = node.member;
  await waitUntil('conflux restored node serves the last key', 60_000, async () => {
    const g = await httpCall(`http://${host}:${port}/v1/kv/${keyAt(n - 1)}?raw=1`, 'GET', undefined, 2000);
    return (g.status === 200 && g.body === valueAt(n - 1).toString()) || `HTTP ${g.status}`;
  });
  const rssKiB = memoryKiB(node.member.proc.pid)?.rssKiB ?? Number.NaN;
  return { ms, totalMs: performance.now() - t0, keys: Number(doc.keys), rssKiB };
}

export interface AddNodeResult {
  /** From the first accepted POST /_cluster/nodes until the operation succeeded. */
  ms: number;
  /** The part spent in step `catching-up` (snapshot install and log replay, plus the stable period). */
  catchUpMs: number;
}

/** Add a pristine fourth node through the leader and wait for the operation to succeed. */
export async function confluxAddNode(
  c: ConfluxCluster,
  root: string,
  dir: string,
  onCrash: (p: Proc, why: string) => void,
  started: Member[],
  cpuProfDir?: string,
): Promise<AddNodeResult> {
  const node = await startPristine(root, dir, 'n4', onCrash, cpuProfDir);
  started.push(node.member);
  const leader = await c.findLeader();
  const body = JSON.stringify({ node_id: 'n4', ...node.addresses });
  const t0 = performance.now();
  const accepted = json(
    await httpCall(`${c.adminUrl(leader)}/_cluster/nodes`, 'POST', body, 30_000),
    'conflux POST /_cluster/nodes',
    [202],
  );
  let id = String(accepted.id);
  let catchUpStart: number | undefined;
  let catchUpEnd: number | undefined;
  await waitUntil('conflux add-node operation', ADD_TIMEOUT_MS, async () => {
    // Any member answers (a follower forwards to the leader), so a leader change is no failure.
    const live = c.members.filter((m) => !m.proc.exited);
    const m = live[Math.floor(Math.random() * live.length)] ?? leader;
    const r = await httpCall(`${c.adminUrl(m)}/_cluster/operations/${id}`, 'GET', undefined, 5000);
    if (r.status === 404 && r.body.includes('OPERATION_NOT_FOUND')) {
      // Operations live on the leader that accepted them: after a leader change, ask the new one
      // (the add is idempotent for the same node and resumes where it stopped).
      const again = await httpCall(`${c.adminUrl(m)}/_cluster/nodes`, 'POST', body, 30_000);
      id = String(json(again, 'conflux POST /_cluster/nodes again', [200, 202]).id);
      return `operation lost with a leader change; asked again (${id})`;
    }
    const op = json(r, 'conflux GET /_cluster/operations');
    const now = performance.now();
    if (op.step === 'catching-up' && catchUpStart === undefined) catchUpStart = now;
    if (op.step !== 'catching-up' && catchUpStart !== undefined && catchUpEnd === undefined) catchUpEnd = now;
    if (op.state === 'failed') throw new Error(`add-node failed: ${JSON.stringify(op.error)}`);
    return op.state === 'succeeded' || `${op.state} / ${op.step} (lag ${op.lag})`;
  });
  const ms = performance.now() - t0;
  return { ms, catchUpMs: (catchUpEnd ?? performance.now()) - (catchUpStart ?? t0) };
}
