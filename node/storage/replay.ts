// Rebuilds the durable Raft state from WAL records, in the order they were written.
//
// Rules (the same as SimDisk's, made explicit for an append-only log):
// - A header starts a segment. The first one replayed sets the base state; later ones must agree
//   with what the records before them produced (a lost or foreign segment shows up here).
// - A batch's `install` drops the whole log; its entries at index i replace every entry ≥ i.
// - A snapshot record moves the base to its index (also down: the record a node writes after it
//   fell back to an older snapshot); entries ≤ the base are dropped at the end of the replay.
// - Replay may exclude snapshots (a snapshot file found corrupt): their records are skipped, and
//   a header naming one is not held against the older base. An excluded snapshot that was
//   installed (the log before it is gone or conflicting) cannot be excluded: corruption.
// - The entries kept are contiguous. When the oldest segments were deleted, the first remaining
//   entries may start anywhere: the snapshot record that justified the deletion can come later in
//   the log than they do (it is appended when the snapshot is saved, after its entries). So the
//   log is only required to reach down to base + 1 at the end of the replay, or right away once it
//   is anchored (replay began at segment 1, or at an install). Any other gap means data is
//   missing: corruption, never a log to serve.

import type { Entry, HardState } from '../raft/types.js';
import { StorageCorruptionError } from './errors.js';
import type { SnapshotRef } from './schemas.js';
import type { WalRecord } from './wal-record.js';

export interface Location {
  file: string;
  offset: number;
}

export interface ReplayResult {
  hardState: HardState;
  snapshot: SnapshotRef | null;
  entries: Entry[];
  /** The snapshot before `snapshot`, if the replayed records name it: kept as a fallback. */
  previousSnapshot?: SnapshotRef | null;
}

const sameHardState = (a: HardState, b: HardState): boolean =>
  a.term === b.term && a.vote === b.vote && a.commit === b.commit;

export class ReplayView {
  private hardState: HardState = { term: 0, vote: null, commit: 0 };
  private snapshot: SnapshotRef | null = null;
  private previous: SnapshotRef | null = null;
  private entries: Entry[] = [];
  /** Where the first kept entry was read, for the error when the log misses entries before it. */
  private firstAt: Location | null = null;
  private started = false;
  /** Whether the entries must follow the base without a gap (see the file comment). */
  private anchored = false;

  constructor(private readonly excluded: ReadonlySet<string> = new Set()) {}

  apply(record: WalRecord, at: Location): void {
    if (!this.started && record.type !== 'header') {
      throw corrupt(at, `a segment must start with a header, found a ${record.type} record`);
    }
    switch (record.type) {
      case 'header':
        this.header(record, at);
        return;
      case 'batch':
        if (record.install) {
          if (this.excluded.has(record.install.meta.id)) {
            throw corrupt(
              at,
              `snapshot ${record.install.meta.id} was installed from the leader: no older state to use`,
            );
          }
          this.setSnapshot(record.install);
          this.entries = [];
          this.anchored = true;
        }
        if (record.entries.length > 0) this.append(record.entries, at);
        if (record.hardState) this.hardState = record.hardState;
        return;
      case 'snapshot':
        if (!this.excluded.has(record.snapshot.meta.id)) this.setSnapshot(record.snapshot);
        return;
    }
  }

  /** The recovered state; throws when the log does not reach down to the snapshot. */
  result(): ReplayResult {
    this.trim();
    const first = this.entries[0];
    if (first && this.firstAt && first.index > this.base() + 1) {
      throw corrupt(
        this.firstAt,
        `the log starts at entry ${first.index} but the snapshot ends at ${this.base()}`,
      );
    }
    return {
      hardState: this.hardState,
      snapshot: this.snapshot,
      entries: this.entries,
      previousSnapshot: this.previous,
    };
  }

  private setSnapshot(ref: SnapshotRef): void {
    if (ref.meta.id !== this.snapshot?.meta.id) this.previous = this.snapshot;
    this.snapshot = ref;
  }

  private header(h: Extract<WalRecord, { type: 'header' }>, at: Location): void {
    if (!this.started) {
      if (h.snapshot && this.excluded.has(h.snapshot.meta.id)) {
        throw corrupt(at, `the log starts after snapshot ${h.snapshot.meta.id}: no older state to use`);
      }
      this.started = true;
      this.hardState = h.hardState;
      this.snapshot = h.snapshot;
      this.anchored = h.seq === 1;
      return;
    }
    const snapId = (r: SnapshotRef | null) => r?.meta.id ?? null;
    const excluded = h.snapshot !== null && this.excluded.has(h.snapshot.meta.id);
    const sameSnapshot = excluded || snapId(h.snapshot) === snapId(this.snapshot);
    if (!sameHardState(h.hardState, this.hardState) || !sameSnapshot) {
      throw corrupt(
        at,
        `segment header (term ${h.hardState.term}, snapshot ${snapId(h.snapshot)}) disagrees with the ` +
          `preceding segments (term ${this.hardState.term}, snapshot ${snapId(this.snapshot)})`,
      );
    }
  }

  private append(batch: Entry[], at: Location): void {
    const first = (batch[0] as Entry).index;
    batch.forEach((e, i) => {
      if (e.index !== first + i) throw corrupt(at, `batch entry ${e.index} at the position of ${first + i}`);
    });
    const head = this.entries[0];
    const last = this.entries.at(-1)?.index ?? this.base();
    if ((head || this.anchored) && first > last + 1) {
      throw corrupt(at, `entry ${first} follows entry ${last}: the log has a gap`);
    }
    // In place: replaying a segment of many small batches must stay linear.
    const keep = head ? Math.max(0, first - head.index) : 0;
    this.entries.length = keep;
    for (const e of batch) this.entries.push(e);
    if (keep === 0) this.firstAt = at;
  }

  private base(): number {
    return this.snapshot?.meta.index ?? 0;
  }

  /** Drop entries the snapshot covers (once, at the end: the base may still move down). */
  private trim(): void {
    const base = this.base();
    const drop = this.entries.findIndex((e) => e.index > base);
    if (drop !== 0) this.entries = drop < 0 ? [] : this.entries.slice(drop);
  }
}

const corrupt = (at: Location, detail: string) => new StorageCorruptionError(at.file, at.offset, detail);
