// `npm run sim -- --help`: the seeded simulator of the whole node stack (RaftNode, KvStore,
// DiskStorage on a simulated disk, clock and network). Every seed derives a whole run; a profile
// pins part of it. Seeds run in `--jobs` worker processes. The output ends with a coverage summary,
// the throughput, and `sim: N seeds, V violations`; the exit code is 0 only when V is 0.

import { fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  nonNegativeInt,
  replayFlags,
  SHARED_OPTIONS,
  seedOptionsUsage,
  seedRange,
} from '../raft/sim/cli-common.js';
import { addCoverage, type Coverage, emptyCoverage, formatCoverage } from './coverage.js';
import { isStackMutation, STACK_MUTATIONS, type StackMutation } from './mutations.js';
import { STACK_PROFILES } from './profile.js';
import type { StackRunResult } from './run.js';

const USAGE = `Usage: npm run sim -- [options]

${seedOptionsUsage(STACK_PROFILES)}
  --mutation NAME    run a deliberately broken stack (repeatable), to prove the checkers catch it:
${Object.entries(STACK_MUTATIONS)
  .map(([name, about]) => `                       ${name.padEnd(21)} ${about}`)
  .join('\n')}
  --jobs N           worker processes (default: the number of CPUs, at most 4)
  --verbose          print each seed's result as JSON
  --help             this text
`;

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function parse() {
  return parseArgs({
    options: {
      ...SHARED_OPTIONS,
      jobs: { type: 'string' },
      worker: { type: 'boolean', default: false },
    },
  });
}

interface Job {
  seeds: number[];
  profile: string;
  mutations: StackMutation[];
}

/** One seed of a run, as the parent hands it to a worker. */
type SeedJob = Omit<Job, 'seeds'> & { seed: number };
/** What the parent sends a worker: a seed to run, or that there are no more. */
type WorkerMessage = SeedJob | { done: true };

// The stack is imported where seeds run (a worker, or a run with one job): the parent of workers
// only deals seeds and sums results, and need not load it.
async function runOne(job: SeedJob): Promise<StackRunResult> {
  const { runStackSeed } = await import('./run.js');
  const profile = STACK_PROFILES[job.profile]?.overrides ?? {};
  return runStackSeed(job.seed, { profile, mutations: new Set(job.mutations) });
}

async function runJob(job: Job, report: (r: StackRunResult) => void): Promise<void> {
  for (const seed of job.seeds) report(await runOne({ ...job, seed }));
}

/** The run the options ask for; exits with the usage on a bad one. */
function settingsOf(values: ReturnType<typeof parse>['values']) {
  const profileName = values.profile;
  if (!STACK_PROFILES[profileName]) fail(`--profile: unknown profile "${profileName}"`);
  for (const m of values.mutation) if (!isStackMutation(m)) fail(`--mutation: unknown mutation "${m}"`);
  const mutations = values.mutation as StackMutation[];
  const { start, count } = seedRange(values, fail);
  const jobs = Math.max(
    1,
    Math.min(
      count,
      values.jobs ? nonNegativeInt('jobs', values.jobs, fail) : Math.min(4, availableParallelism()),
    ),
  );
  return { profileName, mutations, start, count, jobs };
}

/**
 * `seeds` dealt to `jobs` worker processes (this script with --worker), one at a time to whichever
 * is free: seeds differ several-fold in cost, and a fixed share would leave a worker idle.
 */
async function runInWorkers(
  seeds: number[],
  jobs: number,
  run: Omit<Job, 'seeds'>,
  children: ReturnType<typeof fork>[],
  report: (r: StackRunResult) => void,
): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  let next = 0;
  await Promise.all(
    Array.from({ length: jobs }, () => {
      return new Promise<void>((resolve, reject) => {
        const child = fork(self, ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(child);
        const deal = () => {
          const seed = seeds[next++];
          const job: WorkerMessage = seed === undefined ? { done: true } : { ...run, seed };
          child.send(job);
        };
        child.on('message', (r: StackRunResult) => {
          report(r);
          deal();
        });
        child.on('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`)),
        );
        deal();
      });
    }),
  );
}

/** What an interrupted run did: the seeds done without a gap from `start`, and how to go on. */
function interruptedNote(start: number, count: number, done: number, finished: Set<number>): string {
  let upTo = start;
  while (finished.has(upTo)) upTo++;
  return (
    `INTERRUPTED after ${done} of ${count} seeds (every seed from ${start} to ${upTo - 1} done; ` +
    `continue with --start-seed ${upTo} --seeds ${start + count - upTo})`
  );
}

async function main(): Promise<void> {
  let values: ReturnType<typeof parse>['values'];
  try {
    ({ values } = parse());
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.worker) {
    // A worker: one seed at a time from the parent, its result back, until there are no more.
    process.on('message', (job: WorkerMessage) => {
      if ('done' in job) process.disconnect();
      else void runOne(job).then((r) => process.send?.(r));
    });
    return;
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const { profileName, mutations, start, count, jobs } = settingsOf(values);
  const replay = replayFlags(profileName, mutations);

  const coverage: Coverage = emptyCoverage();
  let done = 0;
  let violations = 0;
  let inconclusive = 0;
  let ops = 0;
  const began = performance.now();
  const finished = new Set<number>();
  const report = (r: StackRunResult) => {
    done++;
    finished.add(r.seed);
    ops += r.ops;
    if (r.inconclusive) inconclusive++;
    addCoverage(coverage, r.coverage);
    if (values.verbose) console.log(JSON.stringify({ ...r, coverage: undefined }));
    if (r.violation) {
      violations++;
      console.log(`seed ${r.seed}: VIOLATION ${r.violation}`);
      console.log(`  replay: npm run sim -- --seed ${r.seed}${replay}`);
    }
    if (!values.verbose && done % 100 === 0) {
      const perSec = done / ((performance.now() - began) / 1000);
      console.log(`... ${done} seeds, ${violations} violations, ${perSec.toFixed(1)} seeds/s`);
    }
  };
  const seeds = Array.from({ length: count }, (_, i) => start + i);
  const children: ReturnType<typeof fork>[] = [];
  const summary = (interrupted: boolean) => {
    const seconds = (performance.now() - began) / 1000;
    console.log(formatCoverage(coverage));
    console.log(
      `profile ${profileName}: ${ops} client operations checked, ${inconclusive} histories too large to decide, ` +
        `${seconds.toFixed(1)} s with ${jobs} jobs (${(done / seconds).toFixed(1)} seeds/s)`,
    );
    if (interrupted) console.log(interruptedNote(start, count, done, finished));
    console.log(`sim: ${done} seeds, ${violations} violations`);
  };
  // Stopped early (Ctrl-C, a time limit): what ran so far still counts, and says so.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const c of children) c.kill();
      summary(true);
      process.exit(violations === 0 ? 130 : 1);
    });
  }
  if (jobs === 1) await runJob({ seeds, profile: profileName, mutations }, report);
  else await runInWorkers(seeds, jobs, { profile: profileName, mutations }, children, report);
  summary(false);
  process.exitCode = violations === 0 ? 0 : 1;
}

await main();
