// The settings both seeded simulators (the Raft engine's, `npm run sim:core`, and the whole stack's,
// `npm run sim`) draw alike from a seed: the network's faults and the leader's replication limits.
// Each simulator's profile draws the rest itself; the order of draws is part of a seed's recipe.

import type { SeededRng } from '../rng.js';

/** What the simulated network does to a message. */
export interface NetworkFaults {
  lossRate: number;
  duplicateRate: number;
  delayMsMax: number;
  /** Chance that a message is held back a long time (reordering across heartbeats). */
  longDelayRate: number;
}

/** How much a leader sends a follower ahead of its acknowledgements. */
export interface ReplicationLimits {
  maxInflight: number;
  maxEntriesPerAppend: number;
}

/** A whole number from `lo` to `hi`, both included. */
export function between(rng: SeededRng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

export function drawNetworkFaults(rng: SeededRng): NetworkFaults {
  return {
    lossRate: rng.pick([0, 0.01, 0.05, 0.15]),
    duplicateRate: rng.pick([0, 0.02, 0.1]),
    delayMsMax: rng.pick([2, 10, 30]),
    longDelayRate: rng.pick([0, 0.01, 0.05]),
  };
}

export function drawReplicationLimits(rng: SeededRng): ReplicationLimits {
  return {
    maxInflight: rng.pick([1, 4, 64]),
    maxEntriesPerAppend: rng.pick([1, 3, 64]),
  };
}
