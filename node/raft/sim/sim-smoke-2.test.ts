import { describe, it } from 'vitest';
import { runBlock } from './run-block.js';

describe('simulation seeds 500-999', () => {
  it(
    'has no safety or liveness violation and every history is linearizable',
    () => runBlock(500, 500),
    300_000,
  );
});
