// The simulation in the test suite: a fixed block of seeds must run clean. The seed blocks are
// split across files so the runner spreads them over the available cores.
import { describe, it } from 'vitest';
import { runBlock } from './run-block.js';

describe('simulation seeds 0-499', () => {
  it(
    'has no safety or liveness violation and every history is linearizable',
    () => runBlock(0, 500),
    300_000,
  );
});
