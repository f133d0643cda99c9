// etcd's side of the growth bench: bulk load through the gateway's POST /v3/kv/txn, `etcdctl
// snapshot save`, `etcdctl snapshot restore` + start, and `etcdctl member add` + start until the
// new member applied everything the leader had when it was added.

import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { b64, ETCD_ELECTION_TIMEOUT_MS, ETCD_HEARTBEAT_MS, type EtcdCluster, status } from './etcd.js';
import {
  ADD_TIMEOUT_MS,
  type AddNodeResult,
  type BackupResult,
  type RestoreResult,
} from './growth-conflux.js';
import { type BatchRequest, jsonRequest, keyAt, valueAt } from './growth-data.js';
import type { Member } from './load.js';
import { freePorts, httpCall, memoryKiB, type Proc, startProcess, waitUntil } from './proc.js';

export const etcdBatch: BatchRequest = (from, to) => {
  const success = [];
  for (let i = from; i < to; i++)
    success.push({ request_put: { key: b64(keyAt(i)), value: b64(valueAt(i)) } });
  return jsonRequest('POST', '/v3/kv/txn', { success });
};

const clientUrl = (m: Member) => `http://${m.host}:${m.port}`;

/** Run etcdctl (API v3) to completion; throws with its output when it fails. */
async function etcdctl(c: EtcdCluster, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('etcdctl', args, { env: { ...c.env, ETCDCTL_API: '3' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`etcdctl ${args[0]} ${args[1]} exited ${code}: ${out.slice(-400)}`)),
    );
  });
}

function etcdArgs(name: string, dir: string, client: string, peer: string, cluster: string, token: string) {
  return [
    '--name',
    name,
    '--data-dir',
    dir,
    '--listen-client-urls',
    client,
    '--advertise-client-urls',
    client,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    cluster,
    '--initial-cluster-token',
    token,
    '--heartbeat-interval',
    String(ETCD_HEARTBEAT_MS),
    '--election-timeout',
    String(ETCD_ELECTION_TIMEOUT_MS),
    '--logger',
    'zap',
  ];
}

export async function etcdBackup(c: EtcdCluster, leader: Member, dir: string): Promise<BackupResult> {
  const path = join(dir, 'etcd.snapshot.db');
  const t0 = performance.now();
  await etcdctl(c, ['--endpoints', clientUrl(leader), 'snapshot', 'save', path]);
  const ms = performance.now() - t0;
  return { ms, bytes: statSync(path).size, uri: path };
}

/** `etcdctl snapshot restore` into a new data directory, start a one-member cluster on it, read the last key. */
export async function etcdRestore(
  c: EtcdCluster,
  dir: string,
  snapshot: string,
  n: number,
  onCrash: (p: Proc, why: string) => void,
  started: Member[],
): Promise<RestoreResult> {
  const [cp, pp] = (await freePorts(2)) as [number, number];
  const client = `http://127.0.0.1:${cp}`;
  const peer = `http://127.0.0.1:${pp}`;
  const cluster = `r1=${peer}`;
  const data = join(dir, 'r1');
  const token = `${c.token}-restored`;
  const t0 = performance.now();
  await etcdctl(c, [
    'snapshot',
    'restore',
    snapshot,
    '--name',
    'r1',
    '--data-dir',
    data,
    '--initial-cluster',
    cluster,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster-token',
    token,
  ]);
  const ms = performance.now() - t0;
  const args = [...etcdArgs('r1', data, client, peer, cluster, token), '--initial-cluster-state', 'new'];
  const proc = startProcess('etcd r1', 'etcd', args, join(dir, 'r1.log'), onCrash, c.env);
  const member: Member = { id: 'r1', proc, host: '127.0.0.1', port: cp };
  started.push(member);
  await lastKeyReadable(member, n);
  const totalMs = performance.now() - t0;
  return { ms, totalMs, keys: n, rssKiB: memoryKiB(proc.pid)?.rssKiB ?? Number.NaN };
}

async function lastKeyReadable(m: Member, n: number): Promise<void> {
  const body = JSON.stringify({ key: b64(keyAt(n - 1)) });
  await waitUntil(`etcd ${m.id} serves the last key`, 120_000, async () => {
    if (m.proc.exited) throw new Error(`etcd ${m.id} exited`);
    const r = await httpCall(`${clientUrl(m)}/v3/kv/range`, 'POST', body, 2000);
    return (
      (r.status === 200 && r.body.includes(b64(valueAt(n - 1)))) || `HTTP ${r.status} ${r.body.slice(0, 100)}`
    );
  });
}

/** `etcdctl member add e4`, start e4, wait until it applied the leader's index at the time of the add. */
export async function etcdAddMember(
  c: EtcdCluster,
  dir: string,
  onCrash: (p: Proc, why: string) => void,
  started: Member[],
): Promise<AddNodeResult> {
  const [cp, pp] = (await freePorts(2)) as [number, number];
  const client = `http://127.0.0.1:${cp}`;
  const peer = `http://127.0.0.1:${pp}`;
  const leader = await c.findLeader();
  // etcd refuses a member add until every member has been up for a while (a leader just
  // restarted by the failover part): retry, and time from the add that was accepted.
  let t0 = performance.now();
  await waitUntil('etcdctl member add e4', 60_000, async () => {
    t0 = performance.now();
    await etcdctl(c, ['--endpoints', clientUrl(leader), 'member', 'add', 'e4', `--peer-urls=${peer}`]);
    return true;
  });
  const target = BigInt((await status(leader))?.raftIndex ?? '0');
  const cluster = `${c.initialCluster},e4=${peer}`;
  const args = [
    ...etcdArgs('e4', join(dir, 'e4'), client, peer, cluster, c.token),
    '--initial-cluster-state',
    'existing',
  ];
  const t1 = performance.now();
  const proc = startProcess('etcd e4', 'etcd', args, join(dir, 'e4.log'), onCrash, c.env);
  const member: Member = { id: 'e4', proc, host: '127.0.0.1', port: cp };
  started.push(member);
  await waitUntil('etcd e4 caught up', ADD_TIMEOUT_MS, async () => {
    if (proc.exited) throw new Error('etcd e4 exited');
    const s = await status(member, 2000);
    const applied = BigInt(s?.raftAppliedIndex ?? '0');
    return applied >= target || `applied ${applied} of ${target}`;
  });
  const end = performance.now();
  return { ms: end - t0, catchUpMs: end - t1 };
}
