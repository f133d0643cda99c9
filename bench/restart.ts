// npx tsx bench/restart.ts [--keys 1000000] [--systems conflux,etcd] [--no-build] [--root DIR]
//   [--cpu-prof DIR] [--node-args="--snapshot-log-mib 16"] [--keep]
// The restart and memory part of the growth bench on its own, for working on them: for each system
// a fresh 3-member cluster on 127.0.0.1, `--keys` keys of 100-byte values bulk-loaded as 128-put
// transactions (growth-data.ts), each member's RSS against the raw key+value bytes, then a kill -9
// of the leader and its restart: time from the new process to ready (Conflux: /readyz; etcd: a
// write through it, as the failover bench), to three healthy members that all applied a marker
// write, the restarted process's CPU time by then, and its RSS; for Conflux also each node's
// event-loop delay p99.9 from the kill to healthy (bench/loop-delay.ts). With `--cpu-prof DIR`
// every Conflux node writes a V8 CPU profile when it stops (the restarted one: its restart).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildConflux, startConflux } from './conflux.js';
import { startEtcd } from './etcd.js';
import { confluxBatch } from './growth-conflux.js';
import { type BatchRequest, bulkLoad, rawBytes } from './growth-data.js';
import { etcdBatch } from './growth-etcd.js';
import type { Cluster, Member } from './load.js';
import { LoopDelay } from './loop-delay.js';
import { cpuMs, logTail, memoryKiB, type Proc } from './proc.js';

const { values } = parseArgs({
  options: {
    keys: { type: 'string', default: '1000000' },
    systems: { type: 'string', default: 'conflux,etcd' },
    'no-build': { type: 'boolean', default: false },
    root: { type: 'string', default: '.' },
    'cpu-prof': { type: 'string' },
    'node-args': { type: 'string', default: '' },
    keep: { type: 'boolean', default: false },
  },
});
const n = Number(values.keys);
if (!Number.isInteger(n) || n < 1) throw new Error(`--keys must be a positive integer, got ${values.keys}`);
const systems = values.systems.split(',');
for (const s of systems)
  if (s !== 'conflux' && s !== 'etcd') throw new Error(`--systems: unknown system ${s}`);
const root = resolve(values.root);
const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

const abort = new AbortController();
let crash: string | null = null;
function onCrash(p: Proc, why: string): void {
  crash = `${p.name} ${why}; the end of its log (${p.logPath}):\n${logTail(p)}`;
  console.error(`ERROR: ${crash}`);
  abort.abort();
}

async function start(system: string, dir: string): Promise<{ cluster: Cluster; batch: BatchRequest }> {
  if (system === 'etcd') return { cluster: await startEtcd({ dir, onCrash }), batch: etcdBatch };
  const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
  // Extra settings for every Conflux node (for comparing them), appended to the bench's own.
  const extraArgs = values['node-args'].split(' ').filter((a) => a !== '');
  const cluster = await startConflux({
    root,
    dir,
    onCrash,
    extraArgs,
    ...(cpuProfDir ? { cpuProfDir } : {}),
  });
  return { cluster, batch: confluxBatch };
}

const rssOf = (m: Member) => memoryKiB(m.proc.pid)?.rssKiB ?? Number.NaN;

async function measure(system: string, dir: string): Promise<void> {
  const { cluster, batch } = await start(system, dir);
  try {
    const leader = await cluster.findLeader();
    const load = await bulkLoad(leader, n, batch, abort.signal);
    const raw = rawBytes(n);
    const rss = cluster.members.map(rssOf);
    const ratios = rss.map((kib) => ((kib * 1024) / raw).toFixed(2));
    console.log(
      `${system}: loaded ${n.toLocaleString('en-US')} keys in ${(load.ms / 1000).toFixed(1)} s; ` +
        `RSS ${rss.map(mib).join(' / ')} = ${ratios.join(' / ')} × raw ${mib(raw / 1024)}`,
    );
    const victim = (await cluster.failover.currentLeader()) ?? leader;
    const delay = system === 'conflux' ? new LoopDelay(() => cluster.members) : null;
    await delay?.reset();
    await cluster.failover.kill(victim);
    const t0 = performance.now();
    await cluster.failover.restart(victim);
    const readyMs = performance.now() - t0;
    const readyCpuMs = cpuMs(victim.proc.pid);
    await cluster.failover.waitHealthy(120_000);
    const healthyMs = performance.now() - t0;
    console.log(
      `${system}: killed leader ${victim.id} ready ${(readyMs / 1000).toFixed(2)} s after its restart ` +
        `(${(readyCpuMs / 1000).toFixed(2)} s CPU), 3 healthy members after ${(healthyMs / 1000).toFixed(2)} s ` +
        `(${(cpuMs(victim.proc.pid) / 1000).toFixed(2)} s CPU); its RSS then ${mib(rssOf(victim))}`,
    );
    if (delay) {
      const { byNode } = await delay.step();
      const each = Object.entries(byNode).map(([id, ms]) => `${id} ${ms} ms`);
      console.log(`${system}: event-loop delay p99.9 from the kill to healthy: ${each.join(', ')}`);
    }
  } finally {
    await cluster.stop();
  }
}

if (!values['no-build'] && systems.includes('conflux')) await buildConflux(root);
const tmp = mkdtempSync(join(tmpdir(), 'conflux-restart-'));
try {
  for (const system of systems) {
    await measure(system, join(tmp, system));
    if (crash) throw new Error(crash);
  }
} finally {
  if (values.keep) console.log(`kept data and logs in ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}
