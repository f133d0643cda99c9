// npx tsx bench/write-cost.ts [--in-flight 16,64] [--seconds 4] [--strace] [--cpu-prof DIR] [--no-build]
//                             [--root DIR] [--keep]
// What one acknowledged write costs each Conflux node, for working on write throughput: a fresh
// 3-node cluster on 127.0.0.1 (bench/conflux.ts), writes of 100-byte values through the leader at
// each in-flight count (bench/load.ts, after a 1.5 s warm-up), and per node the user and system
// CPU time per acknowledged write from /proc/PID/stat (what the node really burnt, unlike a V8 CPU
// profile, whose sampler also counts the time a thread waits preempted inside a system call).
// With --strace, a second run per in-flight count attaches `strace -c -f` to every node and reports
// the system calls per acknowledged write (write, writev, read, pwrite64, fdatasync, futex, ...);
// strace slows the nodes several times, so its runs give counts, never throughput. With --cpu-prof,
// each node writes a V8 CPU profile of the whole run into DIR when it stops.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildConflux, type ConfluxCluster, startConflux } from './conflux.js';
import { type LoadResult, type Member, runLoad, type Workload } from './load.js';

const { values } = parseArgs({
  options: {
    'in-flight': { type: 'string', default: '16,64' },
    seconds: { type: 'string', default: '4' },
    strace: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    root: { type: 'string', default: '.' },
    keep: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
  },
});
const inFlights = values['in-flight'].split(',').map(Number);
for (const n of inFlights) {
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--in-flight: not a positive integer: ${values['in-flight']}`);
}
const seconds = Number(values.seconds);
if (!(seconds > 0)) throw new Error(`--seconds must be a positive number, got ${values.seconds}`);
const root = resolve(values.root);
const log = (s: string) => process.stderr.write(`write-cost: ${s}\n`);
/** The system calls worth reporting; strace's other rows are summed into "other". */
const SYSCALLS = ['write', 'writev', 'read', 'pwrite64', 'fdatasync', 'futex', 'epoll_wait', 'epoll_pwait'];

if (values.strace && spawnSync('strace', ['-V']).status !== 0) {
  throw new Error('--strace needs strace on the PATH (apt-get install strace)');
}

/** User and system CPU milliseconds of a process so far (clock ticks of 10 ms). */
function cpuSplit(pid: number): { userMs: number; sysMs: number } {
  const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ');
  const tick = 1000 / 100;
  return { userMs: Number(fields[11]) * tick, sysMs: Number(fields[12]) * tick };
}

/** strace -c's table as {syscall: calls}. */
function parseStraceCounts(text: string): Map<string, number> {
  const calls = new Map<string, number>();
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const name = cols.at(-1);
    if (cols.length < 5 || !name || name === 'total' || name === 'syscall') continue;
    const n = Number(cols[3]);
    if (Number.isInteger(n)) calls.set(name, n);
  }
  return calls;
}

function describe(r: LoadResult, inFlight: number): string {
  const fail = r.failures ? `, ${r.failures} FAILED` : '';
  return `x${inFlight}: ${r.ops} acknowledged writes, ${Math.round(r.opsPerSec)} ops/s, p50 ${r.latencyMs.p50.toFixed(2)} ms, p99 ${r.latencyMs.p99.toFixed(2)} ms${fail}`;
}

async function cpuRun(c: ConfluxCluster, leader: Member, w: Workload, inFlight: number): Promise<void> {
  let before: { userMs: number; sysMs: number }[] = [];
  let after: { userMs: number; sysMs: number }[] = [];
  const r = await runLoad(leader, w, {
    inFlight,
    warmupMs: 1500,
    durationMs: seconds * 1000,
    onMeasureStart: () => {
      before = c.members.map((m) => cpuSplit(m.proc.pid));
    },
    onMeasureEnd: () => {
      after = c.members.map((m) => cpuSplit(m.proc.pid));
    },
  });
  console.log(describe(r, inFlight));
  for (const [i, m] of c.members.entries()) {
    const userUs = (((after[i]?.userMs ?? 0) - (before[i]?.userMs ?? 0)) * 1000) / r.ops;
    const sysUs = (((after[i]?.sysMs ?? 0) - (before[i]?.sysMs ?? 0)) * 1000) / r.ops;
    const role = m === leader ? 'leader  ' : 'follower';
    console.log(
      `  ${m.id} ${role} CPU per write: user ${userUs.toFixed(0)} µs, system ${sysUs.toFixed(0)} µs`,
    );
  }
}

async function straceRun(
  c: ConfluxCluster,
  leader: Member,
  w: Workload,
  inFlight: number,
  dir: string,
): Promise<void> {
  const files = c.members.map((m) => join(dir, `strace-x${inFlight}-${m.id}.txt`));
  const tracers: ChildProcess[] = c.members.map((m, i) =>
    spawn('strace', ['-c', '-f', '-o', files[i] as string, '-p', String(m.proc.pid)], { stdio: 'ignore' }),
  );
  const exited = tracers.map((t) => new Promise((done) => t.once('exit', done)));
  await new Promise((done) => setTimeout(done, 500)); // let strace attach to every thread
  const r = await runLoad(leader, w, { inFlight, warmupMs: 0, durationMs: seconds * 1000 });
  for (const t of tracers) t.kill('SIGINT');
  await Promise.all(exited);
  console.log(`strace ${describe(r, inFlight)} (slowed by strace; the counts include 0.5 s before the load)`);
  console.log(`  system calls per acknowledged write: ${[...SYSCALLS, 'other', 'total'].join(' / ')}`);
  for (const [i, m] of c.members.entries()) {
    const calls = parseStraceCounts(readFileSync(files[i] as string, 'utf8'));
    const total = [...calls.values()].reduce((a, b) => a + b, 0);
    const named = SYSCALLS.map((s) => calls.get(s) ?? 0);
    const other = total - named.reduce((a, b) => a + b, 0);
    const perWrite = [...named, other, total].map((n) => (n / r.ops).toFixed(2));
    console.log(`  ${m.id} ${m === leader ? 'leader  ' : 'follower'} ${perWrite.join(' / ')}`);
  }
}

async function main(): Promise<void> {
  if (!values['no-build']) {
    log('npm run build');
    await buildConflux(root);
  }
  const dir = mkdtempSync(join(tmpdir(), 'conflux-write-cost-'));
  let crash: string | null = null;
  const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
  const c = await startConflux({
    root,
    dir: join(dir, 'conflux'),
    onCrash: (_p, why) => (crash = why),
    ...(cpuProfDir ? { cpuProfDir } : {}),
  });
  try {
    const keys = Array.from({ length: 1000 }, (_, i) => `bench/k${i}`);
    const vals = keys.map(() => Buffer.from(randomBytes(75).toString('base64'))); // 100 bytes
    const leader = await c.findLeader();
    const w = c.workload('write', keys, vals);
    for (const inFlight of inFlights) {
      await cpuRun(c, leader, w, inFlight);
      if (values.strace) await straceRun(c, leader, w, inFlight, dir);
      if (crash) throw new Error(`a node crashed: ${crash}`);
      if ((await c.findLeader()) !== leader) throw new Error('the leader changed during the run');
    }
  } finally {
    await c.stop();
    if (values.keep) log(`kept data, logs and strace tables in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  log(`FAILED: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
