// One seed derives every fault setting of a run (TigerBeetle VOPR style), so a seed is the whole
// reproduction recipe.

import { SeededRng } from '../rng.js';
import {
  between,
  drawNetworkFaults,
  drawReplicationLimits,
  type NetworkFaults,
  type ReplicationLimits,
} from './profile-draws.js';

export interface Profile extends NetworkFaults, ReplicationLimits {
  voters: number;
  spares: number;
  clients: number;
  keys: number;
  fsyncMsMax: number;
  nemesisMsMin: number;
  nemesisMsMax: number;
  snapshotEvery: number;
  snapshotChunkBytes: number;
  safetyMs: number;
  livenessMs: number;
}

export function deriveProfile(seed: number, overrides: Partial<Profile> = {}): Profile {
  const rng = new SeededRng(seed ^ 0x5eed);
  return {
    voters: between(rng, 3, 5),
    spares: between(rng, 0, 2),
    clients: between(rng, 2, 5),
    keys: between(rng, 1, 4),
    ...drawNetworkFaults(rng),
    fsyncMsMax: rng.pick([0, 2, 8, 30]),
    nemesisMsMin: 40,
    nemesisMsMax: rng.pick([80, 150, 400, 900]),
    snapshotEvery: rng.pick([8, 30, 100, 1_000_000]),
    snapshotChunkBytes: rng.pick([16, 128, 4096]),
    ...drawReplicationLimits(rng),
    safetyMs: 2_500,
    livenessMs: 4_000,
    ...overrides,
  };
}
