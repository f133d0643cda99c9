// A 3-member etcd cluster on 127.0.0.1 (Debian's etcd-server, installed with apt-get when missing),
// driven through its JSON gateway: POST /v3/kv/put and /v3/kv/range with base64 keys and values.

import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, Member, RequestSpec, Workload, WorkloadKind } from './load.js';
import { freePorts, httpCall, type Proc, startFailed, startProcess, stopProcess, waitUntil } from './proc.js';

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

export async function startEtcd(opts: EtcdOptions): Promise<Cluster> {
  const ports = await freePorts(6);
  const names = ['e1', 'e2', 'e3'];
  const client = (i: number) => `http://127.0.0.1:${ports[i * 2]}`;
  const peer = (i: number) => `http://127.0.0.1:${ports[i * 2 + 1]}`;
  const initialCluster = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  mkdirSync(opts.dir, { recursive: true });
  // Settings from the environment (ETCD_*) would change what we measure.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD')));
  const members: Member[] = names.map((name, i) => {
    const args = [
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
      'new',
      '--initial-cluster-token',
      `bench-${process.pid}`,
      '--logger',
      'zap',
    ];
    const proc = startProcess(`etcd ${name}`, 'etcd', args, join(opts.dir, `${name}.log`), opts.onCrash, env);
    return { id: name, proc, host: '127.0.0.1', port: ports[i * 2] as number };
  });
  const cluster = etcdCluster(members);
  try {
    const probe = JSON.stringify({ key: b64('bench/probe'), value: b64('ok') });
    for (const m of members) {
      await waitUntil(`etcd ${m.id} /v3/kv/put`, 30_000, async () => {
        if (m.proc.exited) throw new Error(`etcd ${m.id} exited`);
        const r = await httpCall(`http://${m.host}:${m.port}/v3/kv/put`, 'POST', probe);
        return r.status === 200 || `HTTP ${r.status} ${r.body.slice(0, 200)}`;
      });
    }
  } catch (err) {
    await startFailed(
      () => cluster.stop(),
      members.map((m) => m.proc),
      err,
    );
  }
  return cluster;
}

function b64(s: string | Buffer): string {
  return Buffer.from(s).toString('base64');
}

function etcdCluster(members: Member[]): Cluster {
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
          const r = await httpCall(`http://${m.host}:${m.port}/v3/maintenance/status`, 'POST', '{}').catch(
            () => null,
          );
          if (r?.status !== 200) continue;
          const s = JSON.parse(r.body) as { header?: { member_id?: string }; leader?: string };
          if (s.header?.member_id) ids.set(s.header.member_id, m);
          if (s.leader && s.leader !== '0') leader = s.leader;
        }
        found = leader === undefined ? undefined : ids.get(leader);
        return found !== undefined || `no leader known (leader id ${leader ?? 'none'})`;
      });
      return found as Member;
    },
    workload: (kind, keys, values) => etcdWorkload(kind, keys, values),
    async stop() {
      await Promise.all(members.map((m) => stopProcess(m.proc)));
    },
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
