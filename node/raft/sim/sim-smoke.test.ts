// The simulation in the test suite: a fixed block of seeds must run clean. The seed blocks are
// split across files so the runner spreads them over the available cores.
import { describe, expect, it } from 'vitest';
import { runSeed } from './run.js';

export function runBlock(start: number, count: number): void {
  const failures: string[] = [];
  for (let seed = start; seed < start + count; seed++) {
    const r = runSeed(seed);
    if (r.violation) failures.push(`seed ${seed}: ${r.violation}\n  replay: npm run sim -- --seed ${seed}`);
  }
  expect(failures).toEqual([]);
}

describe('simulation seeds 0-499', () => {
  it('has no safety or liveness violation and every history is linearizable', () => runBlock(0, 500), 300_000);
});
