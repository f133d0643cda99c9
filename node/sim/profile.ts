// One seed derives every setting of a whole-stack run; a named profile pins some of them.

import { SeededRng } from '../raft/rng.js';
import {
  between,
  drawNetworkFaults,
  drawReplicationLimits,
  type NetworkFaults,
  type ReplicationLimits,
} from '../raft/sim/profile-draws.js';

export interface StackProfile extends NetworkFaults, ReplicationLimits {
  voters: number;
  clients: number;
  /** Distinct keys the clients use (drawn from a pool of awkward Unicode keys). */
  keys: number;
  watchers: number;
  fsyncMsMax: number;
  nemesisMsMin: number;
  nemesisMsMax: number;
  /** A node snapshots every this many applied entries (the server's --snapshot-entries). */
  snapshotEvery: number;
  snapshotChunkBytes: number;
  /** WAL segment size: small, so segments rotate and get deleted. */
  segmentBytes: number;
  historyRevisions: number;
  watchBufferEvents: number;
  /** Clock rates are drawn from [1 - clockSkew, 1 + clockSkew]. */
  clockSkew: number;
  /** ENOSPC, EIO and slow disks. */
  diskFaults: boolean;
  /** Misdirected writes (silent corruption), on one node at a time. */
  corruption: boolean;
  /** Half of the faults are kills and power losses (single nodes and the whole cluster). */
  powerLosses: boolean;
  /** Process pauses (GC, SIGSTOP). */
  pauses: boolean;
  /** Membership changes and leadership transfers. */
  admin: boolean;
  /** Backup of the running cluster restored into a new cluster. */
  restore: boolean;
  /** A quorum lost for good at a quiet moment, recovered with force-new-cluster. */
  forceNewCluster: boolean;
  /** A last scripted fault before the faults heal. */
  finale: 'none' | 'joint-transfer';
  safetyMs: number;
  livenessMs: number;
}

export function deriveStackProfile(seed: number, overrides: Partial<StackProfile> = {}): StackProfile {
  const rng = new SeededRng(seed ^ 0x51ac);
  return {
    voters: rng.pick([3, 3, 5]),
    clients: between(rng, 2, 4),
    keys: between(rng, 3, 7),
    watchers: between(rng, 1, 3),
    ...drawNetworkFaults(rng),
    fsyncMsMax: rng.pick([0, 2, 8, 20]),
    nemesisMsMin: 30,
    nemesisMsMax: rng.pick([80, 150, 300, 600]),
    snapshotEvery: rng.pick([8, 25, 100, 10_000]),
    snapshotChunkBytes: rng.pick([64, 512, 4096, 1 << 20]),
    ...drawReplicationLimits(rng),
    segmentBytes: rng.pick([1024, 8192, 65536]),
    historyRevisions: rng.pick([10, 40, 1000]),
    watchBufferEvents: rng.pick([2, 16, 1000]),
    clockSkew: rng.pick([0, 0.05, 0.2]),
    diskFaults: rng.chance(0.7),
    corruption: rng.chance(0.15),
    powerLosses: rng.chance(0.25),
    pauses: rng.chance(0.5),
    admin: rng.chance(0.85),
    restore: rng.chance(0.15),
    forceNewCluster: rng.chance(0.1),
    finale: rng.chance(0.1) ? 'joint-transfer' : 'none',
    safetyMs: 1_500,
    livenessMs: 10_000,
    ...overrides,
  };
}

/** Named fault families: overrides of what a seed would otherwise pick. */
export const STACK_PROFILES: Record<string, { about: string; overrides: Partial<StackProfile> }> = {
  mixed: { about: 'everything varies with the seed (the default)', overrides: {} },
  disk: {
    about: 'disk faults on every seed: ENOSPC, EIO, slow fsyncs, misdirected writes, many power losses',
    overrides: { diskFaults: true, corruption: true, powerLosses: true, fsyncMsMax: 8 },
  },
  power: {
    about: 'half of the faults are kills and power losses, often of the whole cluster',
    overrides: { powerLosses: true, nemesisMsMax: 150 },
  },
  lossy: {
    about: '15% loss, 10% duplicates, 5% long delays',
    overrides: { lossRate: 0.15, duplicateRate: 0.1, longDelayRate: 0.05 },
  },
  admin: {
    about: 'membership changes, transfers, restores into a new cluster and force-new-cluster',
    overrides: { admin: true, restore: true, forceNewCluster: true, nemesisMsMax: 150 },
  },
  'tiny-snapshots': {
    about: 'a snapshot every 8 entries, sent in 64-byte chunks, 1 KiB WAL segments',
    overrides: { snapshotEvery: 8, snapshotChunkBytes: 64, segmentBytes: 1024 },
  },
  watch: {
    about: 'three watchers, tiny watch buffers and history: overflow, compaction, reconnects',
    overrides: { watchers: 3, watchBufferEvents: 2, historyRevisions: 10, snapshotEvery: 25 },
  },
  'joint-transfer': {
    about: 'ends with a transfer that times out during a joint configuration change',
    overrides: { admin: false, finale: 'joint-transfer', voters: 5 },
  },
  quick: {
    about: 'short runs without admin operations (smoke tests)',
    overrides: { safetyMs: 800, admin: false, restore: false, forceNewCluster: false },
  },
};
