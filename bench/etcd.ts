// A 3-member etcd cluster on 127.0.0.1 (Debian's etcd-server, installed with apt-get when missing),
// driven through its JSON gateway: POST /v3/kv/put and /v3/kv/range with base64 keys and values.

import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { killRestart, stopMembers, waitMemberOk, whenStarted } from './cluster-ops.js';
import type { Cluster, FailoverOps, Member, RequestSpec, Workload, WorkloadKind } from './load.js';
import { freePorts, httpCall, type Proc, startProcess, waitUntil } from './proc.js';

function etcdVersion(): string | null {
  const r = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return /etcd Version: (\S+)/.exec(r.stdout)?.[1] ?? r.stdout.trim();
}

/** The installed etcd version; installs etcd-server and etcd-client with apt-get if needed. */
export function ensureEtcd(): string {
  const have = etcdVersion();
  if (have) return have;
  const manual = 'install it with: apt-get update && apt-get install -y etcd-server etcd-client';
  process.stderr.write('bench: etcd is not installed; installing etcd-server and etcd-client with apt-get\n');
  if (process.getuid?.() !== 0)
    throw new Error(`etcd is missing and the bench is not running as root; ${manual}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', 'etcd-server', 'etcd-client']]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 2, 2], env });
    if (r.error || r.status !== 0) {
      const why = r.error ? r.error.message : `exit ${r.status}`;
      throw new Error(
        `apt-get ${args.join(' ')} failed (${why}); etcd is needed for the comparison; ${manual}`,
      );
    }
  }
  const now = etcdVersion();
  if (!now) throw new Error(`apt-get installed etcd-server but \`etcd --version\` still fails; ${manual}`);
  return now;
}

export interface EtcdOptions {
  dir: string;
  onCrash: (p: Proc, why: string) => void;
}

/** etcd's defaults, given explicitly so the report can name them. */
export const ETCD_HEARTBEAT_MS = 100;
export const ETCD_ELECTION_TIMEOUT_MS = 1000;

/** An etcd bench cluster: also what adding a member needs. */
export interface EtcdCluster extends Cluster {
  /** `name=peerUrl,...` of the founding members. */
  initialCluster: string;
  token: string;
  /** The environment etcd and etcdctl run with (no ETCD_* settings from outside). */
  env: NodeJS.ProcessEnv;
}

/** A member as started, with what restarting it after a kill needs. */
interface Started {
  member: Member;
  /** Start the process; `existing` when the member rejoins with its data directory. */
  start: (state: 'new' | 'existing') => Proc;
}

export async function startEtcd(opts: EtcdOptions): Promise<EtcdCluster> {
  const ports = await freePorts(6);
  const names = ['e1', 'e2', 'e3'];
  const client = (i: number) => `http://127.0.0.1:${ports[i * 2]}`;
  const peer = (i: number) => `http://127.0.0.1:${ports[i * 2 + 1]}`;
  const initialCluster = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  const token = `bench-${process.pid}-${ports[0]}`;
  mkdirSync(opts.dir, { recursive: true });
  // Settings from the environment (ETCD_*) would change what we measure.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD')));
  const started: Started[] = names.map((name, i) => {
    const args = (state: 'new' | 'existing') => [
      '--name',
      name,
      '--data-dir',
      join(opts.dir, name),
      '--listen-client-urls',
      client(i),
      '--advertise-client-urls',
      client(i),
      '--listen-peer-urls',
      peer(i),
      '--initial-advertise-peer-urls',
      peer(i),
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-state',
      state,
      '--initial-cluster-token',
      token,
      '--heartbeat-interval',
      String(ETCD_HEARTBEAT_MS),
      '--election-timeout',
      String(ETCD_ELECTION_TIMEOUT_MS),
      '--logger',
      'zap',
    ];
    const start = (state: 'new' | 'existing') =>
      startProcess(`etcd ${name}`, 'etcd', args(state), join(opts.dir, `${name}.log`), opts.onCrash, env);
    return {
      member: { id: name, proc: start('new'), host: '127.0.0.1', port: ports[i * 2] as number },
      start,
    };
  });
  const members = started.map((s) => s.member);
  const cluster: EtcdCluster = { ...etcdCluster(started), initialCluster, token, env };
  await whenStarted(members, cluster.stop, async () => {
    for (const m of members) await waitWritable(m, 30_000);
  });
  return cluster;
}

/** A member answers a put (the gateway forwards it to the leader, so there is one). */
async function waitWritable(m: Member, timeoutMs: number): Promise<void> {
  const probe = JSON.stringify({ key: b64('bench/probe'), value: b64('ok') });
  await waitMemberOk('etcd', m, 'POST', '/v3/kv/put', timeoutMs, probe);
}

export function b64(s: string | Buffer): string {
  return Buffer.from(s).toString('base64');
}

/** The fields of POST /v3/maintenance/status the bench reads (uint64s arrive as strings). */
export interface EtcdStatus {
  header?: { member_id?: string };
  leader?: string;
  raftTerm?: string;
  raftIndex?: string;
  raftAppliedIndex?: string;
}

export async function status(m: Member, timeoutMs = 3000): Promise<EtcdStatus | null> {
  const r = await httpCall(`http://${m.host}:${m.port}/v3/maintenance/status`, 'POST', '{}', timeoutMs).catch(
    () => null,
  );
  return r?.status === 200 ? (JSON.parse(r.body) as EtcdStatus) : null;
}

function etcdCluster(started: Started[]): Cluster {
  const members = started.map((s) => s.member);
  const failover: FailoverOps = {
    electionTimeoutMs: ETCD_ELECTION_TIMEOUT_MS,
    electionSetting: `--election-timeout ${ETCD_ELECTION_TIMEOUT_MS} (--heartbeat-interval ${ETCD_HEARTBEAT_MS})`,
    async currentLeader() {
      let best: { m: Member; term: bigint } | undefined;
      for (const m of members) {
        if (m.proc.exited) continue;
        const s = await status(m, 1000);
        if (!s?.header?.member_id || s.leader !== s.header.member_id) continue;
        const term = BigInt(s.raftTerm ?? '0');
        if (!best || term > best.term) best = { m, term };
      }
      return best?.m;
    },
    async transferLeader(leader) {
      // The gateway's MoveLeader: sent to the leader, it answers once the target has taken over.
      const ids = new Map<string, Member>();
      for (const m of members) {
        const s = await status(m);
        if (!s?.header?.member_id) throw new Error(`etcd ${m.id}: no status before the transfer`);
        ids.set(s.header.member_id, m);
      }
      const target = [...ids].find(([, m]) => m !== leader);
      if (!target) throw new Error('etcd: no other member to hand leadership to');
      const r = await httpCall(
        `http://${leader.host}:${leader.port}/v3/maintenance/transfer-leadership`,
        'POST',
        JSON.stringify({ targetID: target[0] }),
        15_000,
      );
      if (r.status !== 200)
        throw new Error(`etcd ${leader.id} transfer-leadership: HTTP ${r.status} ${r.body.slice(0, 200)}`);
      return target[1].id;
    },
    ...killRestart(
      'etcd',
      started,
      (s) => s.start('existing'),
      (m) => waitWritable(m, 30_000),
    ),
    async waitHealthy(timeoutMs) {
      let leader: Member | undefined;
      await waitUntil('etcd: 3 members agreeing on a leader, followers caught up', timeoutMs, async () => {
        leader = undefined;
        const all: { m: Member; s: EtcdStatus }[] = [];
        for (const m of members) {
          if (m.proc.exited) return `${m.id} is not running`;
          const s = await status(m, 1000);
          if (!s?.header?.member_id) return `${m.id} does not answer /v3/maintenance/status`;
          all.push({ m, s });
        }
        const named = new Set(all.map((x) => x.s.leader));
        if (named.size !== 1 || named.has('0') || named.has(undefined))
          return `members name different leaders or none (${[...named].join(', ')})`;
        const l = all.find((x) => x.s.header?.member_id === x.s.leader);
        if (!l) return 'the leader they name is not one of the members';
        const committed = BigInt(l.s.raftIndex ?? '0');
        const behind = all.filter((x) => BigInt(x.s.raftAppliedIndex ?? '0') < committed);
        if (behind.length)
          return `catching up: ${behind.map((x) => `${x.m.id} applied ${x.s.raftAppliedIndex} < ${committed}`).join(', ')}`;
        leader = l.m;
        return true;
      });
      return leader as Member;
    },
    write(key, value) {
      const body = Buffer.from(JSON.stringify({ key: b64(key), value: b64(value) }));
      return {
        method: 'POST',
        path: '/v3/kv/put',
        headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
        body,
      };
    },
  };
  return {
    system: 'etcd',
    members,
    async findLeader() {
      let found: Member | undefined;
      await waitUntil('etcd leader', 10_000, async () => {
        const ids = new Map<string, Member>();
        let leader: string | undefined;
        for (const m of members) {
          if (m.proc.exited) continue;
          const s = await status(m);
          if (!s) continue;
          if (s.header?.member_id) ids.set(s.header.member_id, m);
          if (s.leader && s.leader !== '0') leader = s.leader;
        }
        found = leader === undefined ? undefined : ids.get(leader);
        return found !== undefined || `no leader known (leader id ${leader ?? 'none'})`;
      });
      return found as Member;
    },
    workload: (kind, keys, values) => etcdWorkload(kind, keys, values),
    failover,
    stop: () => stopMembers(members),
  };
}

function etcdWorkload(kind: WorkloadKind, keys: string[], values: Buffer[]): Workload {
  const json = (path: string, doc: unknown): RequestSpec => {
    const body = Buffer.from(JSON.stringify(doc));
    return {
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
      body,
    };
  };
  const requests = keys.map((key, i) => {
    if (kind === 'write') return json('/v3/kv/put', { key: b64(key), value: b64(values[i] as Buffer) });
    return json('/v3/kv/range', {
      key: b64(key),
      ...(kind === 'read-serializable' ? { serializable: true } : {}),
    });
  });
  // The gateway answers 200 with no "kvs" for a missing key; a read must find its key.
  const check =
    kind === 'write' ? undefined : (body: Buffer) => (body.includes('"kvs"') ? null : 'key not found');
  return { requests, ...(check ? { check } : {}) };
}
