// A checker that never fails proves nothing: each deliberately broken engine must be caught.
import { describe, expect, it } from 'vitest';
import type { Mutation } from '../raft.js';
import type { Profile } from './profile.js';
import { runSeed } from './run.js';

/** A slow disk and crashes every few tens of milliseconds: the window for lost unsynced writes. */
const STORM: Partial<Profile> = {
  fsyncMsMax: 30,
  nemesisMsMin: 20,
  nemesisMsMax: 60,
  voters: 3,
  lossRate: 0,
};

function firstCaught(
  mutation: Mutation,
  maxSeeds: number,
  profile: Partial<Profile> = {},
): { seed: number; violation: string } | null {
  for (let seed = 0; seed < maxSeeds; seed++) {
    const r = runSeed(seed, { mutations: new Set([mutation]), profile });
    if (r.violation) return { seed, violation: r.violation };
  }
  return null;
}

describe('the simulator catches a broken engine', () => {
  it('a leader serving reads without a quorum round is caught as a linearizability violation', () => {
    expect(firstCaught('read-without-quorum', 100)?.violation).toMatch(/linearizability/);
  });

  it('granting votes without the up-to-date log check loses committed entries', () => {
    expect(firstCaught('vote-without-log-check', 100)?.violation).toMatch(
      /committed|lacks|linearizability|diverged/,
    );
  });

  it('acknowledging appends and votes before they are durable is caught in a crash storm', () => {
    // A vote lost in the crash lets a node vote twice in one term; a lost append loses a commit.
    expect(firstCaught('ack-before-persist', 300, STORM)?.violation).toMatch(
      /committed|lacks|two leaders|linearizability/,
    );
  });

  it('the real engine survives the same crash storm', () => {
    for (let seed = 0; seed < 60; seed++) expect(runSeed(seed, { profile: STORM }).violation).toBeNull();
  });

  it('the same seed replays the same run', () => {
    expect(runSeed(7)).toEqual(runSeed(7));
  });
});
