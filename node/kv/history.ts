// The recent past of the store, for watches and long-polls that start from an old revision.
//
// One group per data-changing revision (a transaction writes several keys at one revision), in
// revision order. The window is bounded by a count of revisions and by an estimate of the bytes the
// events retain; the oldest groups are dropped first.
//
// Invariants: groups are strictly increasing by revision and all > compactedRevision; every event
// of every revision in (compactedRevision, revision] is in `groups`. So a read from any revision
// > compactedRevision is complete, and a read from ≤ compactedRevision is refused with
// CompactedError (oldestRevision = compactedRevision + 1).

import { eventAnswerBytes } from './answer-size.js';
import { CompactedError } from './errors.js';
import { EventRing } from './event-ring.js';
import { type KeyFilter, matches, type WatchEvent } from './types.js';

/** One data-changing revision: its events are ring sequence numbers [start, end). */
interface RevisionGroup {
  revision: number;
  start: number;
  end: number;
  bytes: number;
}

export interface HistoryLimits {
  /** Most data-changing revisions kept. */
  maxRevisions: number;
  /** Most bytes (estimated: keys, values and previous values, plus overhead) kept. */
  maxBytes: number;
}

export interface HistoryRead {
  /** Matching events, whole revisions only, in revision order. */
  events: WatchEvent[];
  /** Where the next read should start: every revision before it was scanned. */
  nextRevision: number;
}

/**
 * The estimate a budget is counted in: what an event cost as objects (headers, revisions, the key
 * twice). Events now sit in columns (event-ring.ts) at about a third of it; the estimate is kept so
 * that a configured budget keeps its meaning (docs/performance.md, "Store layout").
 */
const EVENT_OVERHEAD_BYTES = 160;

const eventBytes = (e: WatchEvent): number =>
  EVENT_OVERHEAD_BYTES + 2 * e.kv.key.length + e.kv.value.byteLength + (e.prevKv?.value.byteLength ?? 0);

export class WatchHistory {
  private groups: RevisionGroup[] = [];
  /** Every kept event, as columns (event-ring.ts): no objects per event. */
  private readonly ring = new EventRing();
  /** groups[head..] are live; dropped ones are spliced off in bulk. */
  private head = 0;
  private bytes = 0;
  private compacted = 0;
  private last = 0;

  constructor(private readonly limits: HistoryLimits) {}

  /** Highest revision whose events may be gone. */
  get compactedRevision(): number {
    return this.compacted;
  }

  /** The oldest revision a watch may start from. */
  get oldestRevision(): number {
    return this.compacted + 1;
  }

  /** The last revision appended (or reset to). */
  get revision(): number {
    return this.last;
  }

  get size(): { revisions: number; bytes: number } {
    return { revisions: this.groups.length - this.head, bytes: this.bytes };
  }

  append(revision: number, events: WatchEvent[]): void {
    if (revision <= this.last) throw new Error(`history: revision ${revision} after ${this.last}`);
    let bytes = 0;
    const start = this.ring.end;
    for (const e of events) {
      bytes += eventBytes(e);
      this.ring.push(e);
    }
    this.groups.push({ revision, start, end: this.ring.end, bytes });
    this.bytes += bytes;
    this.last = revision;
    const { maxRevisions, maxBytes } = this.limits;
    while (
      this.head < this.groups.length &&
      (this.groups.length - this.head > maxRevisions || this.bytes > maxBytes)
    ) {
      const g = this.groups[this.head++]!;
      this.bytes -= g.bytes;
      this.compacted = g.revision;
      // The group stays in `groups` until the next splice: its events go now, or up to 1024
      // dropped revisions of events would outlive the bounds (docs/performance.md, "Store layout").
      this.ring.dropBefore(g.end);
    }
    if (this.head > 1024 && this.head * 2 > this.groups.length) {
      this.groups = this.groups.slice(this.head);
      this.head = 0;
    }
  }

  /** Forget everything: the state jumped to `revision` (a snapshot was restored). */
  reset(revision: number): void {
    this.groups = [];
    this.ring.clear();
    this.head = 0;
    this.bytes = 0;
    this.compacted = revision;
    this.last = revision;
  }

  /**
   * Events matching `filter` with revision ≥ from, stopping at the first revision boundary once
   * `limit` events were collected, or before the revision whose events would take the answer size
   * (eventAnswerBytes) past `maxBytes`. Whole revisions only, and at least one when any matches,
   * however large. Throws CompactedError when from ≤ compactedRevision.
   */
  read(filter: KeyFilter, from: number, limit: number, maxBytes = Number.POSITIVE_INFINITY): HistoryRead {
    if (from <= this.compacted) throw new CompactedError(from, this.oldestRevision);
    const events: WatchEvent[] = [];
    let bytes = 0;
    let i = this.firstAtOrAfter(from);
    for (; i < this.groups.length && events.length < limit; i++) {
      const before = events.length;
      let groupBytes = 0;
      const g = this.groups[i]!;
      for (let seq = g.start; seq < g.end; seq++) {
        if (!matches(filter, this.ring.key(seq))) continue;
        const e = this.ring.event(seq, g.revision);
        events.push(e);
        groupBytes += eventAnswerBytes(e);
      }
      if (before > 0 && bytes + groupBytes > maxBytes) {
        events.length = before; // this revision starts the next page
        break;
      }
      bytes += groupBytes;
    }
    const nextRevision = i < this.groups.length ? this.groups[i]!.revision : Math.max(from, this.last + 1);
    return { events, nextRevision };
  }

  private firstAtOrAfter(revision: number): number {
    let lo = this.head;
    let hi = this.groups.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.groups[mid]!.revision < revision) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
