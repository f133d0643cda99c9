import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from './backoff.js';

describe('backoffDelayMs', () => {
  it('stays within [min, min * 2^(attempt+1)] capped at max, jittered by random', () => {
    expect(backoffDelayMs(0, 50, 2000, () => 0)).toBe(50);
    expect(backoffDelayMs(0, 50, 2000, () => 0.999999)).toBe(100);
    expect(backoffDelayMs(2, 50, 2000, () => 0.999999)).toBe(400);
    expect(backoffDelayMs(20, 50, 2000, () => 0.999999)).toBe(2000);
    expect(backoffDelayMs(1000, 50, 2000, () => 0.5)).toBe(1025);
    for (let attempt = 0; attempt < 40; attempt++) {
      const d = backoffDelayMs(attempt, 50, 2000, Math.random);
      expect(d).toBeGreaterThanOrEqual(50);
      expect(d).toBeLessThanOrEqual(2000);
    }
  });
});
