// npx tsx bench/steady-memory.ts [--seconds 120] [--sample-seconds 10] [--in-flight 8] [--keys 10000]
//                                [--systems conflux,etcd] [--no-build] [--root DIR] [--json FILE]
// Whether memory stays flat under a steady write load: for each system a fresh 3-member cluster on
// 127.0.0.1, every key written once, then writes of 100-byte values over the same keys (each key
// rewritten again and again, so the data does not grow) for --seconds, in slices of
// --sample-seconds; after each slice every member's RSS (VmRSS). What would grow without bound —
// the Raft log between snapshots, the watch history, caches — shows as a rising line; bounded ones
// level off. It reports the samples, the mean RSS of the first and last third of the run and the
// slope of a least-squares line through the samples of the last two thirds, per member.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildConflux, startConflux } from './conflux.js';
import { ensureEtcd, startEtcd } from './etcd.js';
import { type Cluster, runLoad } from './load.js';
import { killAllSync, memoryKiB } from './proc.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '120' },
    'sample-seconds': { type: 'string', default: '10' },
    'in-flight': { type: 'string', default: '8' },
    keys: { type: 'string', default: '10000' },
    systems: { type: 'string', default: 'conflux,etcd' },
    'no-build': { type: 'boolean', default: false },
    root: { type: 'string', default: '.' },
    json: { type: 'string' },
  },
});

const positive = (name: string, raw: string): number => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${raw}`);
  return n;
};
const seconds = positive('seconds', values.seconds);
const sampleSeconds = positive('sample-seconds', values['sample-seconds']);
const inFlight = positive('in-flight', values['in-flight']);
const keyCount = positive('keys', values.keys);
if (seconds < 3 * sampleSeconds) throw new Error('--seconds must cover at least three samples');
const systems = values.systems.split(',');
for (const s of systems) if (s !== 'conflux' && s !== 'etcd') throw new Error(`--systems: unknown ${s}`);
const root = resolve(values.root);
const log = (s: string) => process.stderr.write(`steady-memory: ${s}\n`);

interface MemberSeries {
  id: string;
  /** RSS in MiB after each slice. */
  rssMiB: number[];
  firstThirdMiB: number;
  lastThirdMiB: number;
  /** Least-squares slope over the last two thirds of the samples, MiB per minute. */
  slopeMiBPerMin: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Least-squares slope of ys sampled every `stepS` seconds, per minute. */
function slopePerMinute(ys: number[], stepS: number): number {
  const xs = ys.map((_, i) => i * stepS);
  const mx = mean(xs);
  const my = mean(ys);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ys.length; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60;
}

function summarize(id: string, rssMiB: number[]): MemberSeries {
  const third = Math.max(1, Math.floor(rssMiB.length / 3));
  return {
    id,
    rssMiB,
    firstThirdMiB: mean(rssMiB.slice(0, third)),
    lastThirdMiB: mean(rssMiB.slice(-third)),
    slopeMiBPerMin: slopePerMinute(rssMiB.slice(third), sampleSeconds),
  };
}

async function measure(system: string, dir: string): Promise<{ members: MemberSeries[]; writes: number }> {
  let crash: string | null = null;
  const onCrash = (_p: unknown, why: string) => {
    crash = why;
  };
  const cluster: Cluster =
    system === 'conflux'
      ? await startConflux({ root, dir: join(dir, 'conflux'), onCrash })
      : await startEtcd({ dir: join(dir, 'etcd'), onCrash });
  try {
    const keys = Array.from({ length: keyCount }, (_, i) => `bench/steady/k${i}`);
    const vals = keys.map(() => Buffer.from(randomBytes(75).toString('base64'))); // 100 bytes
    const leader = await cluster.findLeader();
    const w = cluster.workload('write', keys, vals);
    // Every key once, so what follows rewrites data that is already there.
    const fill = await runLoad(leader, w, { inFlight, warmupMs: 0, durationMs: 120_000, count: keyCount });
    if (fill.failures > 0) throw new Error(`${system}: ${fill.failures} writes failed while filling`);
    const series = cluster.members.map(() => [] as number[]);
    let writes = 0;
    for (let t = 0; t < seconds; t += sampleSeconds) {
      const r = await runLoad(leader, w, { inFlight, warmupMs: 0, durationMs: sampleSeconds * 1000 });
      if (crash) throw new Error(`${system}: a member crashed: ${crash}`);
      if (r.failures > 0) throw new Error(`${system}: ${r.failures} writes failed`);
      writes += r.ops;
      for (const [i, m] of cluster.members.entries()) {
        series[i]?.push((memoryKiB(m.proc.pid)?.rssKiB ?? Number.NaN) / 1024);
      }
      log(
        `${system} ${t + sampleSeconds} s: ${Math.round(r.opsPerSec)} writes/s, RSS ${series.map((s) => (s.at(-1) ?? 0).toFixed(0)).join(' / ')} MiB`,
      );
    }
    return { members: cluster.members.map((m, i) => summarize(m.id, series[i] ?? [])), writes };
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  if (systems.includes('conflux') && !values['no-build']) await buildConflux(root);
  if (systems.includes('etcd')) ensureEtcd();
  const dir = mkdtempSync(join(tmpdir(), 'conflux-steady-'));
  const report: Record<string, { members: MemberSeries[]; writes: number }> = {};
  try {
    for (const system of systems) report[system] = await measure(system, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    `RSS under a steady write load: ${keyCount.toLocaleString('en-US')} keys of 100-byte values rewritten ` +
      `with ${inFlight} in flight for ${seconds} s, sampled every ${sampleSeconds} s`,
  );
  for (const [system, r] of Object.entries(report)) {
    console.log(`${system}: ${r.writes.toLocaleString('en-US')} writes`);
    for (const m of r.members) {
      console.log(
        `  ${m.id}: first third ${m.firstThirdMiB.toFixed(0)} MiB, last third ${m.lastThirdMiB.toFixed(0)} MiB, ` +
          `slope ${m.slopeMiBPerMin.toFixed(1)} MiB/min; samples ${m.rssMiB.map((x) => x.toFixed(0)).join(' ')}`,
      );
    }
  }
  if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
}

main().catch((err) => {
  log(`FAILED: ${err instanceof Error ? err.message : String(err)}`);
  killAllSync();
  process.exitCode = 1;
});
