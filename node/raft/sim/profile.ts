// One seed derives every fault setting of a run (TigerBeetle VOPR style), so a seed is the whole
// reproduction recipe.

import { SeededRng } from '../rng.js';

export interface Profile {
  voters: number;
  spares: number;
  clients: number;
  keys: number;
  lossRate: number;
  duplicateRate: number;
  delayMsMax: number;
  /** Chance that a message is held back a long time (reordering across heartbeats). */
  longDelayRate: number;
  fsyncMsMax: number;
  nemesisMsMin: number;
  nemesisMsMax: number;
  snapshotEvery: number;
  snapshotChunkBytes: number;
  maxInflight: number;
  maxEntriesPerAppend: number;
  safetyMs: number;
  livenessMs: number;
}

export function deriveProfile(seed: number, overrides: Partial<Profile> = {}): Profile {
  const rng = new SeededRng(seed ^ 0x5eed);
  const between = (lo: number, hi: number) => lo + rng.int(hi - lo + 1);
  return {
    voters: between(3, 5),
    spares: between(0, 2),
    clients: between(2, 5),
    keys: between(1, 4),
    lossRate: rng.pick([0, 0.01, 0.05, 0.15]),
    duplicateRate: rng.pick([0, 0.02, 0.1]),
    delayMsMax: rng.pick([2, 10, 30]),
    longDelayRate: rng.pick([0, 0.01, 0.05]),
    fsyncMsMax: rng.pick([0, 2, 8, 30]),
    nemesisMsMin: 40,
    nemesisMsMax: rng.pick([80, 150, 400, 900]),
    snapshotEvery: rng.pick([8, 30, 100, 1_000_000]),
    snapshotChunkBytes: rng.pick([16, 128, 4096]),
    maxInflight: rng.pick([1, 4, 64]),
    maxEntriesPerAppend: rng.pick([1, 3, 64]),
    safetyMs: 2_500,
    livenessMs: 4_000,
    ...overrides,
  };
}
