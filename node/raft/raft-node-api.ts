// What the Raft host loop (raft-node.ts) is given and gives: the injected storage, state machine,
// transport and clock, its options, and the shapes of its answers and listeners.

import type { RaftConfig, RaftState } from './raft.js';
import type { Entry, Membership, Message, NodeId, RaftMetrics, Ready, SnapshotMeta } from './types.js';

/** The durable part of a Ready. */
export type DurableReady = Pick<Ready, 'hardState' | 'entries' | 'snapshot' | 'snapshotChunks'>;

/** Durable log, hard state and snapshot store. `save` calls never overlap each other. */
export interface RaftStorage {
  /**
   * Make one Ready durable, in this order: stage `snapshotChunks` (offset 0 restarts staging);
   * if `snapshot` is set, the staged bytes become the current snapshot and the whole log is
   * dropped; write `entries` (entry i replaces every durable entry ≥ i); then `hardState`.
   */
  save(rd: DurableReady): Promise<void>;
  /** Bytes [offset, offset + length) of the current snapshot if its id is `meta.id`, else null. */
  readSnapshotChunk(meta: SnapshotMeta, offset: number, length: number): Uint8Array | null;
  /**
   * The whole of that snapshot, as `readSnapshotChunk(meta, 0, meta.sizeBytes)`, but free to read
   * it in slices that let the event loop run (one read is 0.1 s at 1M keys).
   */
  readSnapshot(meta: SnapshotMeta): Promise<Uint8Array | null>;
  /**
   * Store a snapshot this node made; entries ≤ meta.index may be dropped afterwards. May overlap a
   * `save`; when the current snapshot is at least as new, ignore it.
   */
  saveSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void>;
}

export interface StateMachine<R> {
  /** Apply entry `applied + 1`, of any type (so `applied` follows the log); the client response. */
  apply(entry: Entry): R;
  /** The serialised state at `applied` (`index` must equal `applied`). */
  snapshot(): { index: number; data: Uint8Array };
  /** Replace the whole state by a snapshot's bytes; afterwards `applied === meta.index`. */
  restore(meta: SnapshotMeta, data: Uint8Array): void;
  /** Optional: `snapshot()` in slices with the event loop free in between, of the state at the call. */
  snapshotAsync?(): Promise<{ index: number; data: Uint8Array }>;
  /** Optional: `restore` in slices; the node applies nothing until it resolved. */
  restoreAsync?(meta: SnapshotMeta, data: Uint8Array): Promise<void>;
  readonly applied: number;
}

export interface Transport {
  /** Best effort, never blocking: Raft retries whatever is lost. */
  send(messages: Message[]): void;
}

export interface Timer {
  cancel(): void;
}

export interface Clock {
  setInterval(fn: () => void, ms: number): Timer;
  setTimeout(fn: () => void, ms: number): Timer;
  /** Milliseconds on a monotonic clock, for durations (default performance.now()). */
  nowMs?(): number;
}

/** Node's own timers. */
export const realClock: Clock = {
  setInterval: (fn, ms) => {
    const t = setInterval(fn, ms);
    return { cancel: () => clearInterval(t) };
  },
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
  nowMs: () => performance.now(),
};

export interface RaftNodeOptions<R> {
  config: RaftConfig;
  /** What storage recovered (EMPTY_STATE for a new node). Its `applied` is ignored: the state machine's counts. */
  state?: RaftState;
  storage: RaftStorage;
  /** If it is behind `state.snapshot`, it is restored from the storage's snapshot first. */
  stateMachine: StateMachine<R>;
  transport: Transport;
  clock: Clock;
  /** Real time of one core tick. */
  tickMs: number;
  /** Told how long each batch of committed entries took to apply (for a latency histogram). */
  onApplied?: (entries: number, durationMs: number) => void;
}

export type ClientWriteResponse<R> = { index: number; response: R };
/** A committed membership; `index` is null when nothing had to change. */
export type MembershipChange = { index: number | null; membership: Membership };

export type LeaderListener = (leader: NodeId | null, term: number) => void;
export type MetricsListener = (metrics: RaftMetrics) => void;

// The host loop's pending calls, each answered once its entry applies or it fails.
export type Waiter<T> = { resolve(value: T): void; reject(err: Error): void };

export type WriteWaiter<R> = Waiter<ClientWriteResponse<R>> & { term: number };
export type TransferWaiter = Waiter<void> & { target: NodeId; timer: Timer };
/** `seen`: the own entry was applied; `untilFinal`: then wait for the next non-joint config. */
export type ConfWaiter = Waiter<MembershipChange> & {
  index: number;
  term: number;
  untilFinal: boolean;
  seen: boolean;
};
