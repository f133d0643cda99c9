// What the command lines of both seeded simulators (`npm run sim:core`, `npm run sim`) share: the
// options that choose the seeds and the fault family, and the replay line printed for a violation.

/** Prints a message with the usage and exits; each command line has its own usage text. */
export type Fail = (message: string) => never;

/** The usage lines of --seeds, --start-seed, --seed and --profile with every named profile. */
export function seedOptionsUsage(profiles: Record<string, { about: string }>): string {
  return `  --seeds N          run N seeds (default 100)
  --start-seed S     first seed (default 0)
  --seed S           run one seed (a replay)
  --profile NAME     pin a fault family (default mixed):
${Object.entries(profiles)
  .map(([name, p]) => `                       ${name.padEnd(15)} ${p.about}`)
  .join('\n')}`;
}

/** The value of option `--name` as a non-negative integer; a bad one fails with the usage. */
export function nonNegativeInt(name: string, text: string, fail: Fail): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) fail(`--${name} must be a non-negative integer, got "${text}"`);
  return n;
}

/** The seeds the options ask for: one with --seed (a replay), else --seeds from --start-seed. */
export function seedRange(
  values: { seed?: string; seeds?: string; 'start-seed': string },
  fail: Fail,
): { start: number; count: number } {
  if (values.seed !== undefined) return { start: nonNegativeInt('seed', values.seed, fail), count: 1 };
  return {
    start: nonNegativeInt('start-seed', values['start-seed'], fail),
    count: nonNegativeInt('seeds', values.seeds ?? '100', fail),
  };
}

/** The options that replay a seed as it ran: its profile (unless the default) and its mutations. */
export function replayFlags(profileName: string, mutations: Iterable<string>): string {
  return [
    profileName === 'mixed' ? '' : ` --profile ${profileName}`,
    ...[...mutations].map((m) => ` --mutation ${m}`),
  ].join('');
}

/** The parseArgs options both command lines take (each adds its own). */
export const SHARED_OPTIONS = {
  seeds: { type: 'string' },
  'start-seed': { type: 'string', default: '0' },
  seed: { type: 'string' },
  profile: { type: 'string', default: 'mixed' },
  mutation: { type: 'string', multiple: true, default: [] as string[] },
  verbose: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false },
} as const;
