// The leader's view of one follower or learner (etcd's tracker.Progress).
//
// - probe: we do not know where the follower's log matches ours; send one append at a time and
//   wait for its answer (or a heartbeat answer) before sending the next.
// - replicate: the follower is in sync; stream appends optimistically, at most `maxInflight`
//   unacknowledged messages, advancing `next` as we send.
// - snapshot: the follower needs entries we compacted; send the snapshot in chunks, nothing else.

import type { SnapshotMeta } from './types.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe: an append is outstanding, wait before sending another. */
  probeSent = false;
  /** In replicate: the last index of each unacknowledged append, oldest first. */
  inflights: number[] = [];
  /** In snapshot: the snapshot index being sent and the offset the follower acknowledged. */
  pendingSnapshot = 0;
  snapshotOffset = 0;
  /**
   * In snapshot: the snapshot being sent. It stays the one the transfer started with when the
   * leader takes newer ones meanwhile, so a transfer slower than the snapshot interval finishes.
   */
  snapshotMeta: SnapshotMeta | null = null;
  /** In snapshot: heartbeat answers since the follower last acknowledged a new chunk. */
  snapshotStalls = 0;
  /** In snapshot: times this transfer started over with a newer snapshot. */
  snapshotRestarts = 0;
  /**
   * In snapshot: the offset of the chunk last sent (null: none). An answer asking for it again
   * answers a copy of it, and is not a reason to send one more.
   */
  snapshotInflight: number | null = null;
  /** The commit index last sent in an append. */
  sentCommit = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  lastContactTick: number | null = null;

  constructor(
    lastIndex: number,
    private readonly maxInflight: number,
  ) {
    this.next = lastIndex + 1;
  }

  private reset(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.inflights = [];
    this.pendingSnapshot = 0;
    this.snapshotOffset = 0;
    this.snapshotInflight = null;
    this.snapshotMeta = null;
    this.snapshotStalls = 0;
    this.snapshotRestarts = 0;
  }

  becomeProbe(): void {
    // Leaving snapshot state, continue right after the snapshot the follower now holds.
    const next =
      this.state === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1;
    this.reset('probe');
    this.next = next;
  }

  becomeReplicate(): void {
    this.reset('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(meta: SnapshotMeta, restarts = 0): void {
    this.reset('snapshot');
    this.pendingSnapshot = meta.index;
    this.snapshotMeta = meta;
    this.snapshotRestarts = restarts;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.length >= this.maxInflight;
      case 'snapshot':
        return true;
    }
  }

  /** Record an append covering up to `lastIndex` that was just sent. */
  sent(lastIndex: number, entryCount: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflights.push(lastIndex);
      }
    } else {
      this.probeSent = true;
    }
  }

  /** A successful append answer; true when it taught us something new. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    while (this.inflights.length > 0 && (this.inflights[0] as number) <= index) this.inflights.shift();
    return updated;
  }

  /**
   * A rejected append at `rejected`; `probeFrom` is where the follower's hint says to probe.
   * Returns false for a stale rejection (answers to appends we already moved past).
   */
  maybeDecrTo(rejected: number, probeFrom: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, probeFrom + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }
}
