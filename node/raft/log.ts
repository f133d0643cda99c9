// The engine's view of the replicated log: a compacted prefix (the snapshot) followed by entries.
// Durability is tracked, not performed: `stable` is the highest index the host has made durable.
//
// Invariants:
// - entries[i].index === snapshotIndex + 1 + i (no gaps);
// - committed ≤ lastIndex(); entries ≤ committed never change (asserted on every append);
// - applied ≤ committed.

import type { Entry, SnapshotMeta } from './types.js';

export class RaftLog {
  snapshot: SnapshotMeta | null;
  entries: Entry[];
  committed: number;
  applied: number;
  stable: number;

  constructor(snapshot: SnapshotMeta | null, entries: Entry[], committed: number, applied: number) {
    this.snapshot = snapshot;
    this.entries = entries;
    const first = this.firstIndex();
    entries.forEach((e, i) => {
      if (e.index !== first + i) throw new Error(`log gap: entry ${e.index} at position of ${first + i}`);
    });
    this.stable = this.lastIndex();
    // A durable commit index is only ever written with the entries it covers: one beyond the log
    // means committed entries were lost, which no clamping can make safe.
    if (committed > this.lastIndex())
      throw new Error(`commit index ${committed} is beyond the last entry ${this.lastIndex()}`);
    this.committed = Math.max(committed, this.snapshotIndex());
    this.applied = Math.max(applied, this.snapshotIndex());
    if (this.applied > this.committed)
      throw new Error(`applied ${applied} beyond committed ${this.committed}`);
  }

  snapshotIndex(): number {
    return this.snapshot?.index ?? 0;
  }

  firstIndex(): number {
    return this.snapshotIndex() + 1;
  }

  lastIndex(): number {
    return this.snapshotIndex() + this.entries.length;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) as number;
  }

  /** The term of entry `index`, or undefined when it is compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapshotIndex()) return this.snapshot?.term ?? 0;
    return this.entry(index)?.term;
  }

  entry(index: number): Entry | undefined {
    return this.entries[index - this.firstIndex()];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Whether a log ending at (lastIndex, lastTerm) is at least as up to date as this one (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [lo, hi), at most `maxCount` and about `maxBytes` (always at least one). */
  slice(
    lo: number,
    hi: number,
    maxCount = Number.POSITIVE_INFINITY,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi && out.length < maxCount; i++) {
      const e = this.entry(i);
      if (!e) break;
      bytes += entrySize(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  append(entry: Entry): void {
    if (entry.index !== this.lastIndex() + 1)
      throw new Error(`append of ${entry.index} after ${this.lastIndex()}`);
    this.entries.push(entry);
  }

  /**
   * A follower's AppendEntries consistency check and append (§5.3). Returns the index of the last
   * entry that now matches the leader, or null when (prevIndex, prevTerm) does not match.
   * Conflicting entries are truncated; a conflict at or below `committed` is a safety violation.
   */
  tryAppend(prevIndex: number, prevTerm: number, entries: readonly Entry[]): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    for (const e of entries) {
      if (e.index <= this.snapshotIndex()) continue;
      const mine = this.term(e.index);
      if (mine === e.term) continue;
      if (mine !== undefined) {
        if (e.index <= this.committed) {
          throw new Error(`safety: entry ${e.index} conflicts with committed ${this.committed}`);
        }
        this.entries.length = e.index - this.firstIndex();
        this.stable = Math.min(this.stable, e.index - 1);
      }
      this.entries.push(e);
    }
    return prevIndex + entries.length;
  }

  /** The last index ≤ `index` whose term is ≤ `term` (etcd's findConflictByTerm), for fast back-off. */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex());
    for (;;) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term || i <= this.snapshotIndex()) return { index: i, term: t };
      i--;
    }
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    if (index > this.lastIndex()) throw new Error(`commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  unstableEntries(): Entry[] {
    return this.entries.slice(this.stable - this.snapshotIndex());
  }

  /** After the host made `persisted` durable: advance `stable` over the prefix still in the log. */
  stableTo(persisted: readonly Entry[]): void {
    for (let i = persisted.length - 1; i >= 0; i--) {
      const e = persisted[i] as Entry;
      // Log matching: the same (index, term) here means the whole prefix is the one persisted.
      if (this.matchTerm(e.index, e.term)) {
        this.stable = Math.max(this.stable, e.index);
        return;
      }
    }
  }

  /** Replace the whole log by a snapshot (a follower installing one from the leader). */
  restore(meta: SnapshotMeta): void {
    this.snapshot = meta;
    this.entries = [];
    this.committed = meta.index;
    this.stable = meta.index;
  }

  /** Drop entries ≤ meta.index: they are in the host's snapshot now. */
  compact(meta: SnapshotMeta): void {
    if (meta.index <= this.snapshotIndex()) return;
    if (meta.index > this.applied)
      throw new Error(`compaction at ${meta.index} beyond applied ${this.applied}`);
    this.entries = this.entries.slice(meta.index - this.snapshotIndex());
    this.snapshot = meta;
  }
}

export function entrySize(e: Entry): number {
  return 24 + (e.type === 'normal' ? e.data.byteLength : e.type === 'membership' ? 256 : 0);
}
