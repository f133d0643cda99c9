// A block of seeds as one test assertion: every failure is listed with its replay command.
import { expect } from 'vitest';
import { runSeed } from './run.js';

export function runBlock(start: number, count: number): void {
  const failures: string[] = [];
  for (let seed = start; seed < start + count; seed++) {
    const r = runSeed(seed);
    if (r.violation)
      failures.push(`seed ${seed}: ${r.violation}\n  replay: npm run sim:core -- --seed ${seed}`);
  }
  expect(failures).toEqual([]);
}
