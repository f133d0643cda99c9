// The pure lease logic. The elector and the Lease API client run against the real API server in
// e2e/cluster/leader-election.test.ts.

import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { decideLease, LeaderElector, type LeaseRecord, nextLeaseRecord } from './leader-election.js';

const silent = pino({ level: 'silent' });
const t0 = new Date('2030-01-01T00:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);
const DEFAULT = { defaultLeaseDurationMs: 15_000 };

describe('decideLease', () => {
  const held = (holder: string | undefined, renewMs: number, durationS = 15): LeaseRecord => ({
    ...(holder ? { holderIdentity: holder } : {}),
    leaseDurationSeconds: durationS,
    acquireTime: t0,
    renewTime: at(renewMs),
    leaseTransitions: 2,
  });

  it.each([
    ['no lease: create it', null, 0, undefined, { action: 'create' }],
    [
      'released (no holder): take it',
      held(undefined, 0),
      1_000,
      undefined,
      { action: 'acquire', reason: 'released' },
    ],
    ['ours: renew', held('me', 0), 1_000, undefined, { action: 'renew' }],
    ['ours, even if expired: renew', held('me', 0), 60_000, undefined, { action: 'renew' }],
    [
      'theirs, live: wait',
      held('them', 0),
      14_999,
      undefined,
      { action: 'wait', holder: 'them', expiresAt: at(15_000) },
    ],
    [
      'theirs, expired by renewTime: take it',
      held('them', 0),
      15_000,
      undefined,
      { action: 'acquire', reason: 'expired' },
    ],
    [
      'theirs, old renewTime but only just observed: wait (clock skew)',
      held('them', -3_600_000),
      0,
      at(-1_000),
      { action: 'wait', holder: 'them', expiresAt: at(14_000) },
    ],
    [
      'theirs, observed unchanged for a whole duration: take it',
      held('them', 5_000),
      20_000,
      at(5_000),
      { action: 'acquire', reason: 'expired' },
    ],
    [
      'their own duration counts (5 s)',
      held('them', 0, 5),
      5_000,
      undefined,
      { action: 'acquire', reason: 'expired' },
    ],
    [
      'theirs without any time: take it',
      { holderIdentity: 'them' },
      0,
      undefined,
      { action: 'acquire', reason: 'expired' },
    ],
  ] as const)('%s', (_, lease, nowMs, observedAt, expected) => {
    const decision = decideLease(lease, 'me', at(nowMs), {
      ...DEFAULT,
      ...(observedAt ? { observedAt } : {}),
    });
    expect(decision).toEqual(expected);
  });

  it('a missing duration falls back to the default', () => {
    const lease = { holderIdentity: 'them', renewTime: t0 };
    expect(decideLease(lease, 'me', at(9_999), { defaultLeaseDurationMs: 10_000 }).action).toBe('wait');
    expect(decideLease(lease, 'me', at(10_000), { defaultLeaseDurationMs: 10_000 }).action).toBe('acquire');
  });
});

describe('nextLeaseRecord', () => {
  const theirs: LeaseRecord = {
    holderIdentity: 'them',
    leaseDurationSeconds: 15,
    acquireTime: t0,
    renewTime: t0,
    leaseTransitions: 4,
  };
  it('create: held by us, no transitions yet', () => {
    expect(nextLeaseRecord({ action: 'create' }, null, 'me', at(1), 15_000)).toEqual({
      holderIdentity: 'me',
      leaseDurationSeconds: 15,
      acquireTime: at(1),
      renewTime: at(1),
      leaseTransitions: 0,
    });
  });
  it('acquire from another holder counts a transition', () => {
    const r = nextLeaseRecord({ action: 'acquire', reason: 'expired' }, theirs, 'me', at(20_000), 15_000);
    expect(r).toMatchObject({ holderIdentity: 'me', acquireTime: at(20_000), leaseTransitions: 5 });
  });
  it('renew moves only renewTime', () => {
    const ours = { ...theirs, holderIdentity: 'me' };
    expect(nextLeaseRecord({ action: 'renew' }, ours, 'me', at(2_000), 15_000)).toEqual({
      ...ours,
      renewTime: at(2_000),
    });
  });
  it('durations round up to whole seconds', () => {
    expect(nextLeaseRecord({ action: 'create' }, null, 'me', t0, 1_500).leaseDurationSeconds).toBe(2);
  });
});

describe('LeaderElector', () => {
  // Its runs against real Leases are in e2e/cluster/leader-election.test.ts.
  it('refuses timings that could let two leaders overlap', () => {
    const unused = async (): Promise<never> => {
      throw new Error('not called');
    };
    const base = {
      lease: { get: unused, create: unused, update: unused },
      identity: 'x',
      logger: silent,
      onStartedLeading: () => {},
      onStoppedLeading: () => {},
    };
    expect(() => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 })).toThrow(
      /leaseDurationMs > renewDeadlineMs > retryPeriodMs/,
    );
    expect(() => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 })).toThrow(
      /leaseDurationMs > renewDeadlineMs > retryPeriodMs/,
    );
  });
});
