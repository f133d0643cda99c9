// A 3-node Conflux cluster of real processes on 127.0.0.1: build, start the compiled node binary
// (no tsx loader in the measured process), wait for /readyz, find the leader.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, Member, RequestSpec, Workload, WorkloadKind } from './load.js';
import { freePorts, httpCall, type Proc, startFailed, startProcess, stopProcess, waitUntil } from './proc.js';

/** `npm run build`, its output on stderr so stdout stays the report. */
export async function buildConflux(root: string): Promise<void> {
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('npm', ['run', 'build'], { cwd: root, stdio: ['ignore', 2, 2] });
    child.on('error', reject);
    child.on('exit', resolve);
  });
  if (code !== 0) throw new Error(`npm run build failed (exit ${code}); fix the build or pass --no-build`);
}

export interface ConfluxOptions {
  root: string;
  dir: string;
  onCrash: (p: Proc, why: string) => void;
  /** Directory for V8 CPU profiles of every node (written when the node stops). */
  cpuProfDir?: string;
}

export async function startConflux(opts: ConfluxOptions): Promise<Cluster> {
  const main = join(opts.root, 'dist/node/main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build (or drop --no-build)`);
  const ports = await freePorts(9);
  const ids = ['n1', 'n2', 'n3'];
  const addr = (i: number, k: 0 | 1 | 2) => `127.0.0.1:${ports[i * 3 + k]}`;
  const initialCluster = ids.map((id, i) => `${id}=${addr(i, 1)}/${addr(i, 0)}`).join(',');
  mkdirSync(opts.dir, { recursive: true });
  const members: Member[] = ids.map((id, i) => {
    const nodeArgs = opts.cpuProfDir
      ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir, '--cpu-prof-name', `conflux-${id}.cpuprofile`]
      : [];
    const args = [
      ...nodeArgs,
      main,
      '--dev-insecure',
      '--node-id',
      id,
      '--data-dir',
      join(opts.dir, id),
      '--api-addr',
      addr(i, 0),
      '--raft-addr',
      addr(i, 1),
      '--admin-addr',
      addr(i, 2),
      '--initial-cluster',
      initialCluster,
    ];
    const proc = startProcess(
      `conflux ${id}`,
      process.execPath,
      args,
      join(opts.dir, `${id}.log`),
      opts.onCrash,
    );
    return { id, proc, host: '127.0.0.1', port: ports[i * 3] as number };
  });
  const cluster = confluxCluster(members);
  try {
    for (const m of members) {
      await waitUntil(`conflux ${m.id} /readyz`, 30_000, async () => {
        if (m.proc.exited) throw new Error(`conflux ${m.id} exited`);
        const r = await httpCall(`http://${m.host}:${m.port}/readyz`, 'GET');
        return r.status === 200 || `HTTP ${r.status} ${r.body.slice(0, 200)}`;
      });
    }
    const leader = await cluster.findLeader();
    await waitUntil('conflux first write', 10_000, async () => {
      const r = await httpCall(`http://${leader.host}:${leader.port}/v1/kv/bench/probe`, 'PUT', 'ok');
      return r.status === 200 || `HTTP ${r.status} ${r.body.slice(0, 200)}`;
    });
  } catch (err) {
    await startFailed(
      () => cluster.stop(),
      members.map((m) => m.proc),
      err,
    );
  }
  return cluster;
}

function confluxCluster(members: Member[]): Cluster {
  return {
    system: 'conflux',
    members,
    async findLeader() {
      let found: Member | undefined;
      await waitUntil('conflux leader', 10_000, async () => {
        const seen: string[] = [];
        for (const m of members) {
          if (m.proc.exited) continue;
          const r = await httpCall(`http://${m.host}:${m.port}/readyz`, 'GET').catch(() => null);
          if (!r) continue;
          const body = JSON.parse(r.body) as { state?: string; leader?: string | null };
          seen.push(`${m.id}:${body.state}/${body.leader}`);
          if (body.state === 'leader') found = m;
        }
        return found !== undefined || `no node says it leads (${seen.join(' ')})`;
      });
      return found as Member;
    },
    workload: (kind, keys, values) => confluxWorkload(kind, keys, values),
    async stop() {
      await Promise.all(members.map((m) => stopProcess(m.proc)));
    },
  };
}

function confluxWorkload(kind: WorkloadKind, keys: string[], values: Buffer[]): Workload {
  const requests = keys.map((key, i): RequestSpec => {
    const path = `/v1/kv/${key}`;
    if (kind === 'write') {
      const body = values[i] as Buffer;
      return {
        method: 'PUT',
        path,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
        body,
      };
    }
    return {
      method: 'GET',
      path: kind === 'read-serializable' ? `${path}?consistency=serializable` : path,
      headers: {},
    };
  });
  return { requests };
}
