import { describe, expect, it, vi } from 'vitest';
import { skipUnless, suitesRequired } from './require.js';

describe('skipping a suite that cannot run', () => {
  it('is required on CI and with CONFLUX_REQUIRE_CLUSTER=1, not otherwise', () => {
    expect(suitesRequired({ CI: 'true' })).toBe(true);
    expect(suitesRequired({ CONFLUX_REQUIRE_CLUSTER: '1' })).toBe(true);
    expect(suitesRequired({})).toBe(false);
    expect(suitesRequired({ CI: 'false' })).toBe(false);
    expect(suitesRequired({ CI: '' })).toBe(false);
  });

  it('runs a suite that can run, skips one that cannot with a warning, fails it where required', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      expect(skipUnless(true, 'x.test.ts', 'needs root', { CI: 'true' })).toBe(false);
      expect(skipUnless(false, 'x.test.ts', 'needs root', {})).toBe(true);
      expect(warn).toHaveBeenCalledWith('x.test.ts skipped: needs root');
      expect(() => skipUnless(false, 'x.test.ts', 'needs root', { CONFLUX_REQUIRE_CLUSTER: '1' })).toThrow(
        /x\.test\.ts cannot run on this machine \(needs root\), and CI or CONFLUX_REQUIRE_CLUSTER=1 requires every suite/,
      );
    } finally {
      warn.mockRestore();
    }
  });
});
