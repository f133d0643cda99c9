// `npm run sim:core -- --help`: the seeded simulator of the Raft engine. Every seed derives a whole run
// (faults, timings, cluster size); a profile pins part of it to one fault family. The last line is
// `sim:core: N seeds, V violations`; the exit code is 0 only when V is 0.

import { parseArgs } from 'node:util';
import type { Mutation } from '../raft.js';
import { replayFlags, SHARED_OPTIONS, seedOptionsUsage, seedRange } from './cli-common.js';
import type { Profile } from './profile.js';
import { runSeed } from './run.js';

/** Named fault families: overrides of what a seed would otherwise pick. */
export const PROFILES: Record<string, { about: string; overrides: Partial<Profile> }> = {
  mixed: { about: 'everything varies with the seed (the default)', overrides: {} },
  'crash-storm': { about: 'a fault every 40-80 ms', overrides: { nemesisMsMin: 40, nemesisMsMax: 80 } },
  lossy: {
    about: '15% loss, 10% duplicates, 5% long delays',
    overrides: { lossRate: 0.15, duplicateRate: 0.1, longDelayRate: 0.05 },
  },
  'five-voters': { about: 'five voters', overrides: { voters: 5 } },
  churn: { about: 'two spare nodes for membership changes', overrides: { spares: 2 } },
  'tiny-snapshots': {
    about: 'a snapshot every 8 entries, sent in 16-byte chunks',
    overrides: { snapshotEvery: 8, snapshotChunkBytes: 16 },
  },
};

const MUTATIONS: readonly Mutation[] = [
  'commit-old-term',
  'read-without-quorum',
  'ack-before-persist',
  'vote-without-log-check',
];

const USAGE = `Usage: npm run sim:core -- [options]

${seedOptionsUsage(PROFILES)}
  --mutation NAME    run a deliberately broken engine (repeatable), to prove the checkers catch it:
                       ${MUTATIONS.join(', ')}
  --verbose          print each seed's result as JSON
  --help             this text
`;

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

let values: ReturnType<typeof parse>['values'];
function parse() {
  return parseArgs({
    options: SHARED_OPTIONS,
  });
}
try {
  ({ values } = parse());
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const profileName = values.profile;
const profile = PROFILES[profileName];
if (!profile) fail(`--profile: unknown profile "${profileName}"`);
for (const m of values.mutation) {
  if (!MUTATIONS.includes(m as Mutation)) fail(`--mutation: unknown mutation "${m}"`);
}
const { start, count } = seedRange(values, fail);
const mutations = new Set(values.mutation as Mutation[]);
const replay = replayFlags(profileName, mutations);

let violations = 0;
let inconclusive = 0;
let ops = 0;
let faults = 0;
const began = performance.now();
for (let seed = start; seed < start + count; seed++) {
  const r = runSeed(seed, { mutations, profile: profile.overrides });
  ops += r.ops;
  faults += r.faults;
  if (r.inconclusive) inconclusive++;
  if (values.verbose) console.log(JSON.stringify(r));
  if (r.violation) {
    violations++;
    console.log(`seed ${seed}: VIOLATION ${r.violation}`);
    console.log(`  replay: npm run sim:core -- --seed ${seed}${replay}`);
  }
  const done = seed - start + 1;
  if (!values.verbose && done % 1000 === 0) {
    const perMin = (done / (performance.now() - began)) * 60_000;
    console.log(`... ${done} seeds, ${violations} violations, ${Math.round(perMin)} seeds/min`);
  }
}
const seconds = (performance.now() - began) / 1000;
console.log(
  `profile ${profileName}: ${ops} client operations checked, ${faults} faults injected, ${inconclusive} histories too large to decide, ` +
    `${seconds.toFixed(1)} s (${(count / seconds).toFixed(1)} seeds/s)`,
);
console.log(`sim:core: ${count} seeds, ${violations} violations`);
process.exitCode = violations === 0 ? 0 : 1;
