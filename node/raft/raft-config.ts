// The Raft core's configuration and the state it starts from (docs/ARCHITECTURE.md §2).

import type { Rng } from './rng.js';
import type { Entry, HardState, NodeId, SnapshotMeta } from './types.js';

export interface RaftConfig {
  id: NodeId;
  rng: Rng;
  /** A follower campaigns after a random timeout in [electionTicks, 2·electionTicks). */
  electionTicks: number;
  heartbeatTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Unacknowledged appends per peer in replicate state. */
  maxInflight: number;
  maxEntriesPerAppend: number;
  maxBytesPerAppend: number;
  snapshotChunkBytes: number;
  maxApplyBatch: number;
  /**
   * Deliberately broken behaviours, used only by the simulator's self-test to prove that it
   * catches a faulty engine. Never set outside tests.
   */
  mutations?: ReadonlySet<Mutation>;
}

export type Mutation =
  | 'commit-old-term'
  | 'read-without-quorum'
  | 'ack-before-persist'
  | 'vote-without-log-check'
  /** A timed-out transfer leaves a joint configuration in place (the whole-stack simulator's). */
  | 'transfer-keeps-joint';

export const DEFAULT_CONFIG: Omit<RaftConfig, 'id' | 'rng'> = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  maxInflight: 256,
  maxEntriesPerAppend: 512,
  maxBytesPerAppend: 1 << 20,
  snapshotChunkBytes: 1 << 20,
  maxApplyBatch: 1024,
};

/** What a node recovers from its durable storage when it starts. */
export interface RaftState {
  hardState: HardState;
  snapshot: SnapshotMeta | null;
  entries: Entry[];
  /** The state machine's applied index, when it survives restarts; else the snapshot index. */
  applied?: number;
}

/** Omit over each member of a union. */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export const EMPTY_STATE: RaftState = {
  hardState: { term: 0, vote: null, commit: 0 },
  snapshot: null,
  entries: [],
};
