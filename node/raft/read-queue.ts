// ReadIndex bookkeeping for the leader (Raft thesis §6.4).
//
// A read is registered with the commit index of the moment and a sequence number unique to this
// attempt. Heartbeats carry the newest sequence; a read is confirmed once a quorum (of every config)
// answered a heartbeat carrying its sequence or a later one, which proves nobody else was leader
// when the read began. A new leader does not know the full commit index until it committed an
// entry of its own term, so reads wait for that first. Leaving leadership drops every read.

import { hasJointQuorum } from './quorum.js';
import type { NodeId, ReadState } from './types.js';

interface PendingRead {
  ctx: string;
  index: number;
  seq: number;
}

export class ReadQueue {
  private seq = 0;
  private pending: PendingRead[] = [];
  private waitingForCommit: string[] = [];
  private acks = new Map<NodeId, number>();
  private confirmed: ReadState[] = [];
  private dropped: string[] = [];

  constructor(private readonly self: NodeId) {}

  latestSeq(): number {
    return this.seq;
  }

  /** A new leadership term starts: acknowledgements from before mean nothing now. */
  startTerm(): void {
    this.acks.clear();
  }

  /** Register a read; returns its sequence, or null while it waits for the term's first commit. */
  add(ctx: string, committed: number, committedOwnTerm: boolean): number | null {
    if (!committedOwnTerm) {
      this.waitingForCommit.push(ctx);
      return null;
    }
    this.seq++;
    this.pending.push({ ctx, index: committed, seq: this.seq });
    return this.seq;
  }

  /** The leader committed an entry of its term: reads that waited for it get a sequence now. */
  termCommitted(committed: number): boolean {
    if (this.waitingForCommit.length === 0) return false;
    for (const ctx of this.waitingForCommit) this.add(ctx, committed, true);
    this.waitingForCommit = [];
    return true;
  }

  ack(from: NodeId, seq: number, configs: readonly NodeId[][]): void {
    if (seq > (this.acks.get(from) ?? 0)) this.acks.set(from, seq);
    this.release(configs);
  }

  /** Release every read a quorum has confirmed (in order: a later confirmation covers earlier reads). */
  release(configs: readonly NodeId[][]): boolean {
    let released = false;
    while (this.pending.length > 0) {
      const read = this.pending[0] as PendingRead;
      const ok = hasJointQuorum(configs, (id) => id === this.self || (this.acks.get(id) ?? 0) >= read.seq);
      if (!ok) break;
      this.pending.shift();
      this.confirmed.push({ ctx: read.ctx, index: read.index });
      released = true;
    }
    return released;
  }

  dropAll(): void {
    this.dropped.push(...this.waitingForCommit, ...this.pending.map((r) => r.ctx));
    this.waitingForCommit = [];
    this.pending = [];
    this.acks.clear();
  }

  hasOutput(): boolean {
    return this.confirmed.length > 0 || this.dropped.length > 0;
  }

  drain(): { readStates: ReadState[]; droppedReads: string[] } {
    const out = { readStates: this.confirmed, droppedReads: this.dropped };
    this.confirmed = [];
    this.dropped = [];
    return out;
  }
}
