// npm run bench [-- --seconds 5 --warmup 1 --rounds 3 --in-flight 1,16,64 --keys 1000 --json FILE
//                  --failover-trials 5 --no-failover --no-auth --no-build --cpu-prof DIR --keep
//                  --growth | --only growth  --sizes 10000,100000,1000000 --png FILE
//                  --growth-trials 1 --watchers 1000 --systems conflux,etcd
//                  --render FILE (print the growth tables and draw the PNG of an earlier --json)]
// Conflux and etcd side by side in one run: a 3-node cluster of each on 127.0.0.1, the same load
// generator, key space and 100-byte values; writes, linearizable and serializable reads at each
// in-flight count, systems alternating per round; the median round is reported with the floor of
// a write on this machine. Then (unless --no-failover) the write-unavailability windows during leader
// transfers and leader kills, --failover-trials of each per system (see failover.ts), and (unless
// --no-auth) the cost of client authorization on one TLS node (see client-auth.ts). Exit code is
// non-zero only on errors: the numbers are not asserted.
// With --growth (after the above) or --only growth (instead of it): how the costs grow with the
// data size, both systems at each of --sizes keys (see growth.ts), tables on stdout and the curves
// drawn to --png (default bench/results/growth.png).

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type AuthCost, renderAuthCost, runClientAuthBench } from './client-auth.js';
import { buildConflux, startConflux } from './conflux.js';
import { ensureEtcd, startEtcd } from './etcd.js';
import { type FailoverReport, runFailover } from './failover.js';
import { measureFloor } from './floor.js';
import { type GrowthReport, runGrowth } from './growth.js';
import { writeGrowthPng } from './growth-chart.js';
import { renderGrowth } from './growth-report.js';
import { WATCHERS } from './growth-watch.js';
import { type Cluster, type Member, runLoad, WORKLOADS } from './load.js';
import { cpuMs, killAllSync, logTail, memoryKiB, type Proc } from './proc.js';
import { type Cell, type MemberMemory, type Report, renderReport, type System, writeJson } from './report.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

function options() {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '3' },
      'in-flight': { type: 'string', default: '1,16,64' },
      keys: { type: 'string', default: '1000' },
      json: { type: 'string' },
      'no-build': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      keep: { type: 'boolean', default: false },
      'failover-trials': { type: 'string', default: '5' },
      'no-failover': { type: 'boolean', default: false },
      'no-auth': { type: 'boolean', default: false },
      growth: { type: 'boolean', default: false },
      only: { type: 'string' },
      sizes: { type: 'string', default: '10000,100000,1000000' },
      png: { type: 'string', default: join(root, 'bench/results/growth.png') },
      'growth-trials': { type: 'string', default: '1' },
      watchers: { type: 'string', default: String(WATCHERS) },
      systems: { type: 'string', default: 'conflux,etcd' },
      render: { type: 'string' },
    },
    strict: true,
  });
  const positive = (name: string, v: string, int = true) => {
    const n = Number(v);
    if (!(n > 0) || (int && !Number.isInteger(n)))
      throw new Error(`--${name}: expected a positive number, got ${v}`);
    return n;
  };
  if (values.only !== undefined && values.only !== 'growth')
    throw new Error(`--only: the only part that runs alone is growth, got ${values.only}`);
  const systems = values.systems.split(',').map((x) => x.trim());
  for (const x of systems)
    if (x !== 'conflux' && x !== 'etcd') throw new Error(`--systems: expected conflux and/or etcd, got ${x}`);
  return {
    render: values.render,
    throughput: values.only === undefined,
    growth: values.growth || values.only === 'growth',
    sizes: values.sizes.split(',').map((x) => positive('sizes', x.trim())),
    png: resolve(values.png),
    growthTrials: values['growth-trials'] === '0' ? 0 : positive('growth-trials', values['growth-trials']),
    watchers: positive('watchers', values.watchers),
    systems: systems as System[],
    seconds: positive('seconds', values.seconds, false),
    warmup: values.warmup === '0' ? 0 : positive('warmup', values.warmup, false),
    rounds: positive('rounds', values.rounds),
    inFlight: values['in-flight'].split(',').map((s) => positive('in-flight', s.trim())),
    keys: positive('keys', values.keys),
    json: values.json,
    build: !values['no-build'],
    cpuProf: values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined,
    keep: values.keep,
    failoverTrials: values['no-failover'] ? 0 : positive('failover-trials', values['failover-trials']),
    auth: !values['no-auth'] && values.only === undefined,
  };
}

const clusters: Cluster[] = [];
const abort = new AbortController();
let crash: string | null = null;
let tmp: string | undefined;
let keep = false;

function onCrash(p: Proc, why: string): void {
  crash = `${p.name} ${why}; the end of its log (${p.logPath}):\n${logTail(p)}`;
  log(`ERROR: ${crash}`);
  abort.abort();
}

async function cleanup(): Promise<void> {
  for (const c of clusters.splice(0)) await c.stop().catch((err) => log(`stopping ${c.system}: ${err}`));
  if (tmp && !keep) rmSync(tmp, { recursive: true, force: true });
  else if (tmp) log(`kept data and logs in ${tmp}`);
}

/** Server CPU of all members plus this process's own, sampled at the edges of a measured window. */
function cpuProbe(members: Member[]) {
  let serverStart = 0;
  let clientStart = process.cpuUsage();
  let wallStart = 0;
  let server = 0;
  let client = 0;
  const total = () => members.reduce((a, m) => a + cpuMs(m.proc.pid), 0);
  return {
    start() {
      serverStart = total();
      clientStart = process.cpuUsage();
      wallStart = performance.now();
    },
    end() {
      server = total() - serverStart;
      const d = process.cpuUsage(clientStart);
      client = (100 * (d.user + d.system)) / 1000 / (performance.now() - wallStart);
    },
    result: () => ({ serverMs: server, clientPct: client }),
  };
}

/** Print the growth tables of an earlier --json document and draw its PNG. */
function render(file: string, png: string): void {
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { growth?: GrowthReport };
  if (!doc.growth?.rows)
    throw new Error(`${file} holds no growth results (run with --growth or --only growth)`);
  process.stdout.write(`${renderGrowth(doc.growth)}\n`);
  writeGrowthPng(doc.growth, png);
  log(`wrote ${png}`);
}

async function main(): Promise<void> {
  const opts = options();
  if (opts.render) return render(opts.render, opts.png);
  keep = opts.keep;
  const loadAtStart = loadavg()[0] as number;
  tmp = mkdtempSync(join(tmpdir(), 'conflux-bench-'));
  log(`temp dir ${tmp}`);

  log('measuring the floor (fsync, loopback round trip)');
  const floor = await measureFloor(tmp);
  const etcdVersion = ensureEtcd();
  if (opts.build) {
    log('npm run build');
    await buildConflux(root);
  }
  if (opts.cpuProf) mkdirSync(opts.cpuProf, { recursive: true });
  const report = opts.throughput ? await throughput(opts, floor, etcdVersion, loadAtStart, tmp) : undefined;
  let authCost: AuthCost | undefined;
  if (opts.auth) {
    log('client authorization: off and on, alternating rounds on one TLS node');
    authCost = await runClientAuthBench(opts.seconds, 16);
  }
  let growth: GrowthReport | undefined;
  if (opts.growth) {
    log(`growth: ${opts.sizes.join(', ')} keys, ${opts.systems.join(' and ')}`);
    growth = await runGrowth({
      root,
      dir: join(tmp, 'growth'),
      sizes: opts.sizes,
      systems: opts.systems,
      failoverTrials: opts.growthTrials,
      watchers: opts.watchers,
      signal: abort.signal,
      onCrash,
      ...(opts.cpuProf ? { cpuProfDir: opts.cpuProf } : {}),
      check: () => {
        if (crash) throw new Error(crash);
      },
      log,
    });
    growth.meta = {
      date: new Date().toISOString(),
      node: process.version,
      etcdVersion,
      cpus: cpus().length,
      command: process.argv.slice(2).join(' '),
      ...growth.meta,
    };
  }
  await cleanup();
  if (report) process.stdout.write(`${renderReport(report)}\n`);
  if (authCost) process.stdout.write(`\n${renderAuthCost(authCost)}\n`);
  if (growth) {
    process.stdout.write(`${report ? '\n' : ''}${renderGrowth(growth)}\n`);
    writeGrowthPng(growth, opts.png);
    log(`wrote ${opts.png}`);
  }
  if (opts.json) {
    writeJson(opts.json, {
      ...(report ?? {}),
      ...(authCost ? { authCost } : {}),
      ...(growth ? { growth } : {}),
    } as Report);
    log(`wrote ${opts.json}`);
  }
  if (opts.cpuProf) log(`CPU profiles of the Conflux nodes in ${opts.cpuProf}`);
}

/** The throughput and failover part: both clusters side by side. */
async function throughput(
  opts: ReturnType<typeof options>,
  floor: Awaited<ReturnType<typeof measureFloor>>,
  etcdVersion: string,
  loadAtStart: number,
  tmp: string,
): Promise<Report> {
  log('starting 3 Conflux nodes');
  clusters.push(
    await startConflux({
      root,
      dir: join(tmp, 'conflux'),
      onCrash,
      ...(opts.cpuProf ? { cpuProfDir: opts.cpuProf } : {}),
    }),
  );
  log('starting 3 etcd members');
  clusters.push(await startEtcd({ dir: join(tmp, 'etcd'), onCrash }));
  const [conflux, etcd] = clusters as [Cluster, Cluster];

  const keys = Array.from({ length: opts.keys }, (_, i) => `bench/k${i}`);
  const values = keys.map(() => Buffer.from(randomBytes(75).toString('base64'))); // 100 bytes
  const leaders = new Map<Cluster, Member>();
  const warnings: string[] = [];
  const leaderOf = async (c: Cluster) => {
    const l = await c.findLeader();
    const before = leaders.get(c);
    if (before && before !== l) {
      warnings.push(`${c.system} leader changed from ${before.id} to ${l.id} during the run`);
      log(`WARNING: ${warnings.at(-1)}`);
    }
    leaders.set(c, l);
    return l;
  };

  for (const c of clusters) {
    log(`${c.system}: writing ${keys.length} keys before the reads`);
    const r = await runLoad(await leaderOf(c), c.workload('write', keys, values), {
      inFlight: 16,
      warmupMs: 0,
      durationMs: 300_000,
      count: keys.length,
      signal: abort.signal,
    });
    if (r.ops !== keys.length) {
      const why = Object.keys(r.failureSamples).join('; ');
      throw new Error(
        `${c.system}: only ${r.ops} of ${keys.length} keys were written (${r.failures} failed: ${why})`,
      );
    }
  }

  const cells: Cell[] = [];
  const cellOf = (c: Cluster, kind: (typeof WORKLOADS)[number], inFlight: number) => {
    let cell = cells.find(
      (x) => x.system === c.system && x.workload === kind.kind && x.inFlight === inFlight,
    );
    if (!cell) {
      cell = { workload: kind.kind, label: kind.label, inFlight, system: c.system, rounds: [] };
      cells.push(cell);
    }
    return cell;
  };
  for (let round = 1; round <= opts.rounds; round++) {
    const order = round % 2 === 1 ? [conflux, etcd] : [etcd, conflux];
    for (const w of WORKLOADS) {
      const workloads = new Map(order.map((c) => [c, c.workload(w.kind, keys, values)]));
      for (const inFlight of opts.inFlight) {
        for (const c of order) {
          if (crash) throw new Error(crash);
          const target = await leaderOf(c);
          const probe = cpuProbe(c.members);
          const r = await runLoad(target, workloads.get(c) as ReturnType<Cluster['workload']>, {
            inFlight,
            warmupMs: opts.warmup * 1000,
            durationMs: opts.seconds * 1000,
            signal: abort.signal,
            onMeasureStart: probe.start,
            onMeasureEnd: probe.end,
          });
          const { serverMs, clientPct } = probe.result();
          cellOf(c, w, inFlight).rounds.push({
            ...r,
            round,
            target: target.id,
            serverCpuUsPerOp: r.ops ? (serverMs * 1000) / r.ops : NaN,
            clientCpuPct: clientPct,
          });
          const fail = r.failures ? `, ${r.failures} FAILED` : '';
          log(
            `round ${round}/${opts.rounds} ${c.system.padEnd(7)} ${w.label.padEnd(17)} x${String(inFlight).padEnd(3)} ` +
              `${Math.round(r.opsPerSec)} ops/s p50 ${r.latencyMs.p50.toFixed(2)} ms p99 ${r.latencyMs.p99.toFixed(2)} ms${fail}`,
          );
        }
      }
    }
  }
  if (crash) throw new Error(crash);

  const memory: MemberMemory[] = [];
  for (const c of clusters) {
    const leader = await c.findLeader();
    for (const m of c.members) {
      const mem = memoryKiB(m.proc.pid) ?? { rssKiB: NaN, peakKiB: NaN };
      memory.push({ system: c.system, id: m.id, leader: m === leader, ...mem });
    }
  }
  // The load average of the throughput part (the failover part restarts processes).
  const loadAtEnd = loadavg()[0] as number;

  let failover: FailoverReport | undefined;
  if (opts.failoverTrials > 0) {
    log(
      `failover: ${opts.failoverTrials} leader transfers and ${opts.failoverTrials} leader kills per system`,
    );
    if (opts.cpuProf)
      log(
        'note: a killed Conflux node writes no CPU profile; its restarted process writes one under the same name',
      );
    failover = await runFailover([conflux, etcd], {
      trials: opts.failoverTrials,
      signal: abort.signal,
      check: () => {
        if (crash) throw new Error(crash);
      },
      log,
    });
  }
  const report: Report = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      etcdVersion,
      cpus: cpus().length,
      seconds: opts.seconds,
      warmup: opts.warmup,
      rounds: opts.rounds,
      inFlight: opts.inFlight,
      keys: opts.keys,
      valueBytes: 100,
      loadAverageAtStart: Number(loadAtStart.toFixed(2)),
      loadAverageAtEnd: Number(loadAtEnd.toFixed(2)),
      command: process.argv.slice(2).join(' '),
      warnings,
    },
    floor,
    cells,
    memory,
    ...(failover ? { failover } : {}),
  };
  for (const c of clusters.splice(0)) await c.stop();
  return report;
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping every cluster`);
    abort.abort();
    cleanup().finally(() => process.exit(130));
  });
}
process.on('exit', () => {
  killAllSync();
  if (tmp && !keep) rmSync(tmp, { recursive: true, force: true });
});

main().catch(async (err: unknown) => {
  if (interrupted) return;
  if (crash) {
    // The crashed process's log was printed when it died.
    log(`FAILED: ${crash.split(';')[0]}`);
  } else {
    log(`FAILED: ${(err as Error).message ?? String(err)}`);
    for (const c of clusters) {
      for (const m of c.members)
        log(`end of ${m.proc.name}'s log (${m.proc.logPath}):\n${logTail(m.proc, 8)}`);
    }
  }
  await cleanup();
  process.exit(1);
});
