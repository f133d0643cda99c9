// A 3-node Conflux cluster of real processes on 127.0.0.1: build, start the compiled node binary
// (no tsx loader in the measured process), wait for /readyz, find the leader.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { killRestart, startedOf, stopMembers, waitMemberOk, whenStarted } from './cluster-ops.js';
import type { Cluster, FailoverOps, Member, RequestSpec, Workload, WorkloadKind } from './load.js';
import { freePorts, type HttpAnswer, httpCall, type Proc, startProcess, waitUntil } from './proc.js';

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
  /** Flags added to every node's command line. */
  extraArgs?: string[];
}

/** A Conflux bench cluster: also each member's admin API, for cluster operations. */
export interface ConfluxCluster extends Cluster {
  adminUrl(m: Member): string;
}

/** Raft timing of the bench cluster (the node's defaults, given explicitly so the report can name them). */
export const CONFLUX_TICK_MS = 50;
export const CONFLUX_ELECTION_TICKS = 10;

/** Written through the leader and read back from every member to see that they caught up. */
const MARKER = 'bench/failover/marker';

/** A member as started: what restarting it after a kill needs, and its admin API port. */
interface Started {
  member: Member;
  adminPort: number;
  start: () => Proc;
}

export async function startConflux(opts: ConfluxOptions): Promise<ConfluxCluster> {
  const main = join(opts.root, 'dist/node/main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build (or drop --no-build)`);
  const ports = await freePorts(9);
  const ids = ['n1', 'n2', 'n3'];
  const addr = (i: number, k: 0 | 1 | 2) => `127.0.0.1:${ports[i * 3 + k]}`;
  const initialCluster = ids.map((id, i) => `${id}=${addr(i, 1)}/${addr(i, 0)}/${addr(i, 2)}`).join(',');
  mkdirSync(opts.dir, { recursive: true });
  const started: Started[] = ids.map((id, i) => {
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
      '--tick-ms',
      String(CONFLUX_TICK_MS),
      '--election-ticks',
      String(CONFLUX_ELECTION_TICKS),
      // The load generator is one client on 127.0.0.1 holding up to a thousand watch streams.
      '--max-watchers-per-client',
      '1024',
      '--max-connections-per-client',
      '2048',
      // ... and opens them all at once (the default lets 125 in at once per listener).
      '--max-new-connections-per-second',
      '4000',
      ...(opts.extraArgs ?? []),
    ];
    // The same command restarts a killed node: its data directory makes it rejoin, not re-initialize.
    const start = () =>
      startProcess(`conflux ${id}`, process.execPath, args, join(opts.dir, `${id}.log`), opts.onCrash);
    const member = { id, proc: start(), host: '127.0.0.1', port: ports[i * 3] as number };
    return { member, adminPort: ports[i * 3 + 2] as number, start };
  });
  const members = started.map((s) => s.member);
  const cluster = confluxCluster(started);
  await whenStarted(members, cluster.stop, async () => {
    for (const m of members) await waitReady(m, 30_000);
    const leader = await cluster.findLeader();
    await waitUntil('conflux first write', 10_000, async () => {
      const r = await httpCall(`http://${leader.host}:${leader.port}/v1/kv/bench/probe`, 'PUT', 'ok');
      return r.status === 200 || `HTTP ${r.status} ${r.body.slice(0, 200)}`;
    });
  });
  return cluster;
}

async function waitReady(m: Member, timeoutMs: number): Promise<void> {
  await waitMemberOk('conflux', m, 'GET', '/readyz', timeoutMs);
}

function confluxCluster(started: Started[]): ConfluxCluster {
  const members = started.map((s) => s.member);
  const adminUrl = (m: Member) => `http://${m.host}:${startedOf('conflux', started, m).adminPort}`;
  const json = <T>(r: HttpAnswer, what: string): T => {
    if (r.status !== 200) throw new Error(`${what}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
    return JSON.parse(r.body) as T;
  };
  const failover: FailoverOps = {
    electionTimeoutMs: CONFLUX_TICK_MS * CONFLUX_ELECTION_TICKS,
    electionSetting: `--tick-ms ${CONFLUX_TICK_MS} x --election-ticks ${CONFLUX_ELECTION_TICKS}`,
    async currentLeader() {
      // GET /_cluster/leader on every live member's admin port; a member naming itself leads.
      let best: { m: Member; term: number } | undefined;
      for (const m of members) {
        if (m.proc.exited) continue;
        const r = await httpCall(`${adminUrl(m)}/_cluster/leader`, 'GET', undefined, 1000).catch(() => null);
        if (r?.status !== 200) continue;
        const doc = JSON.parse(r.body) as { leader_id?: string; term?: number };
        if (doc.leader_id === m.id && (!best || (doc.term ?? 0) > best.term))
          best = { m, term: doc.term ?? 0 };
      }
      return best?.m;
    },
    async transferLeader(leader) {
      // The node picks the most caught-up voter and answers once it sees that voter lead.
      const r = await httpCall(`${adminUrl(leader)}/_cluster/leader/transfer`, 'POST', undefined, 15_000);
      const doc = json<{ leader_id?: string }>(r, `conflux ${leader.id} POST /_cluster/leader/transfer`);
      if (!doc.leader_id || doc.leader_id === leader.id)
        throw new Error(
          `conflux transfer answered 200 but names leader ${doc.leader_id ?? 'none'}: ${r.body}`,
        );
      return doc.leader_id;
    },
    ...killRestart(
      'conflux',
      started,
      (s) => s.start(),
      (m) => waitReady(m, 30_000),
    ),
    async waitHealthy(timeoutMs) {
      // Only the client API (/readyz, serializable reads), which is stable, not the admin internals.
      const deadline = Date.now() + timeoutMs;
      const left = () => Math.max(1, deadline - Date.now());
      let leader: Member | undefined;
      await waitUntil('conflux: 3 ready members agreeing on one leader', left(), async () => {
        leader = undefined;
        const views: { m: Member; state?: string; leader?: string | null }[] = [];
        for (const m of members) {
          if (m.proc.exited) return `${m.id} is not running`;
          const r = await httpCall(`http://${m.host}:${m.port}/readyz`, 'GET', undefined, 1000);
          if (r.status !== 200) return `${m.id} /readyz HTTP ${r.status} ${r.body.slice(0, 120)}`;
          views.push({ m, ...(JSON.parse(r.body) as { state?: string; leader?: string | null }) });
        }
        const named = new Set(views.map((v) => v.leader));
        if (named.size !== 1) return `members name different leaders (${[...named].join(', ')})`;
        const l = views.find((v) => v.m.id === v.leader && v.state === 'leader');
        if (!l) return `no member leads (${views.map((v) => `${v.m.id}:${v.state}`).join(' ')})`;
        leader = l.m;
        return true;
      });
      // Caught up: a marker written through the leader is in every member's local state.
      const l = leader as Member;
      const marker = `${Date.now()}-${Math.random()}`;
      await waitUntil('conflux: marker write through the leader', left(), async () => {
        const r = await httpCall(`http://${l.host}:${l.port}/v1/kv/${MARKER}`, 'PUT', marker, 1000);
        return r.status === 200 || `HTTP ${r.status} ${r.body.slice(0, 120)}`;
      });
      await waitUntil('conflux: every member applied the marker (serializable read)', left(), async () => {
        for (const m of members) {
          const url = `http://${m.host}:${m.port}/v1/kv/${MARKER}?consistency=serializable&raw=1`;
          const r = await httpCall(url, 'GET', undefined, 1000);
          if (r.status !== 200 || r.body !== marker)
            return `${m.id} has not applied it yet (HTTP ${r.status} ${r.body.slice(0, 80)})`;
        }
        return true;
      });
      return l;
    },
    write(key, value) {
      return {
        method: 'PUT',
        path: `/v1/kv/${key}`,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(value.length) },
        body: value,
      };
    },
  };
  return {
    system: 'conflux',
    members,
    adminUrl,
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
    failover,
    stop: () => stopMembers(members),
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
