// A checker that never fails proves nothing: each deliberately broken engine must be caught.
import { describe, expect, it } from 'vitest';
import type { Mutation } from '../raft.js';
import { runSeed } from './run.js';

function firstCaught(mutation: Mutation, maxSeeds: number): { seed: number; violation: string } | null {
  for (let seed = 0; seed < maxSeeds; seed++) {
    const r = runSeed(seed, { mutations: new Set([mutation]) });
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

  it('acknowledging appends before they are durable is caught after crashes', () => {
    expect(firstCaught('ack-before-persist', 400)).not.toBeNull();
  });

  it('the same seed replays the same run', () => {
    expect(runSeed(7)).toEqual(runSeed(7));
  });
});
