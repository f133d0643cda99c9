// `npm run sim -- --seeds N [--start-seed S]` or `npm run sim -- --seed S` (add `--mutation NAME`
// to run a deliberately broken engine). The last line is `sim: N seeds, V violations`; the exit code
// is 0 only when V is 0.

import { parseArgs } from 'node:util';
import type { Mutation } from '../raft.js';
import { runSeed } from './run.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string' },
    'start-seed': { type: 'string', default: '0' },
    seed: { type: 'string' },
    mutation: { type: 'string', multiple: true, default: [] },
    verbose: { type: 'boolean', default: false },
  },
});

function int(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got "${text}"`);
    process.exit(2);
  }
  return n;
}

const start = values.seed !== undefined ? int('seed', values.seed) : int('start-seed', values['start-seed']);
const count = values.seed !== undefined ? 1 : int('seeds', values.seeds ?? '100');
const mutations = new Set(values.mutation as Mutation[]);
const mutationFlags = [...mutations].map((m) => ` --mutation ${m}`).join('');

let violations = 0;
let inconclusive = 0;
let ops = 0;
let faults = 0;
const began = performance.now();
for (let seed = start; seed < start + count; seed++) {
  const r = runSeed(seed, { mutations });
  ops += r.ops;
  faults += r.faults;
  if (r.inconclusive) inconclusive++;
  if (values.verbose) console.log(JSON.stringify(r));
  if (r.violation) {
    violations++;
    console.log(`seed ${seed}: VIOLATION ${r.violation}`);
    console.log(`  replay: npm run sim -- --seed ${seed}${mutationFlags}`);
  }
  const done = seed - start + 1;
  if (!values.verbose && done % 1000 === 0) {
    const perMin = (done / (performance.now() - began)) * 60_000;
    console.log(`... ${done} seeds, ${violations} violations, ${Math.round(perMin)} seeds/min`);
  }
}
const seconds = (performance.now() - began) / 1000;
console.log(
  `${ops} client operations checked, ${faults} faults injected, ${inconclusive} histories too large to decide, ` +
    `${seconds.toFixed(1)} s (${Math.round((count / seconds) * 60)} seeds/min)`,
);
console.log(`sim: ${count} seeds, ${violations} violations`);
process.exitCode = violations === 0 ? 0 : 1;
