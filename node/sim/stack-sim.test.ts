// The whole-stack simulator (`npm run sim`): a few seeds must pass, and every deliberately broken variant of the
// stack must be caught by the checker that stands for its class of bug within a few seeds.

import { describe, expect, it } from 'vitest';
import type { StackMutation } from './mutations.js';
import { STACK_PROFILES, type StackProfile } from './profile.js';
import { runStackSeed } from './run.js';

const quick = STACK_PROFILES.quick?.overrides as Partial<StackProfile>;

describe('the whole-stack simulator', () => {
  it('passes a few quick seeds, exercising faults, snapshots and clients', async () => {
    let writes = 0;
    let installs = 0;
    let crashes = 0;
    let http = 0;
    let forwarded = 0;
    for (let seed = 0; seed < 4; seed++) {
      const r = await runStackSeed(seed, { profile: quick });
      expect(r.violation, `seed ${seed}`).toBeNull();
      expect(r.livenessMs).not.toBeNull();
      writes += r.coverage.writes;
      installs += r.coverage.snapshotInstalls;
      crashes += r.coverage.kills + r.coverage.powerLosses + r.coverage.failStops;
      http += r.coverage.httpRequests;
      forwarded += r.coverage.forwarded;
    }
    expect(writes).toBeGreaterThan(100);
    expect(installs).toBeGreaterThan(0);
    expect(crashes).toBeGreaterThan(0);
    // Client operations also go through the real HTTP API, and followers forward to the leader.
    expect(http).toBeGreaterThan(50);
    expect(forwarded).toBeGreaterThan(0);
  });

  it('replays a seed exactly', async () => {
    const a = await runStackSeed(7, { profile: quick });
    const b = await runStackSeed(7, { profile: quick });
    expect({ ...b, coverage: b.coverage }).toEqual({ ...a, coverage: a.coverage });
  });
});

/** The first of `seeds` seeds on which the mutated stack fails, and why. */
async function firstCaught(mutation: StackMutation, profile: Partial<StackProfile>, seeds: number) {
  for (let seed = 0; seed < seeds; seed++) {
    const r = await runStackSeed(seed, { profile, mutations: new Set([mutation]) });
    if (r.violation) return { seed, violation: r.violation };
  }
  return null;
}

describe('every checker catches the bug it stands for', () => {
  it('replica byte-equality catches a snapshot decoder that drops a leading U+FEFF', async () => {
    const caught = await firstCaught(
      'bom-snapshot',
      { ...quick, snapshotEvery: 8, snapshotChunkBytes: 64 },
      8,
    );
    expect(caught?.violation).toMatch(/replica byte-equality|replicas diverge/);
  });

  it('the watch checker catches a watch that skips an event', async () => {
    const caught = await firstCaught('watch-skip', quick, 6);
    expect(caught?.violation).toMatch(/watch \d+ .*missed the event/);
  });

  it('liveness catches a timed-out transfer that leaves a joint configuration behind', async () => {
    const caught = await firstCaught(
      'transfer-keeps-joint',
      STACK_PROFILES['joint-transfer']?.overrides ?? {},
      6,
    );
    expect(caught?.violation).toMatch(/^liveness: adding and promoting a fresh node did not succeed/);
  });

  it('the HTTP answers are checked: JSON that drops a leading U+FEFF is caught', async () => {
    const caught = await firstCaught('json-drops-bom', quick, 4);
    expect(caught?.violation).toMatch(/answered the key|linearizability/);
  });

  it('a storage that never fsyncs is caught after power losses', async () => {
    const caught = await firstCaught(
      'no-fsync',
      { ...quick, ...STACK_PROFILES.power?.overrides, safetyMs: 1_500 },
      6,
    );
    expect(caught?.violation).toBeTruthy();
  });
});
