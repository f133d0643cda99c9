// Watches and long-polls over the store's changes.
//
// Apply never waits for a consumer and never runs consumer code: `publish` (called by apply)
// appends to the history and pushes into each caught-up watcher's bounded buffer, then schedules
// that watcher's drain on a microtask. Each watcher drains on its own: it calls the listener one
// event at a time and, when the listener returns a promise (an SSE socket applying backpressure),
// waits for it before the next. A watcher whose buffer holds more than `bufferEvents` undelivered
// events drops its buffer and goes back to reading the history from `nextRevision` (as etcd's
// unsynced watchers do): a slow consumer falls behind without losing events, and is closed with
// reason 'compacted' only if it falls out of the history altogether.
//
// A new watch starts "unsynced": its drain reads history from `fromRevision` in batches (no copy
// into the buffer, so a long replay cannot overflow) and becomes "synced" once it has read up to
// the current revision; only then do live events go into its buffer. Both happen synchronously
// between awaits, so no event is missed or delivered twice in the switch. If the history is
// trimmed past an unsynced watcher's position it is closed with reason 'compacted'.
//
// Events of one revision (a transaction) form a group: `nextRevision` only moves past a revision
// once all its events were delivered, so a watcher closed mid-group is resumed with that group
// again (a client may see an event twice, never miss one).

import { CompactedError } from './errors.js';
import { type HistoryLimits, WatchHistory } from './history.js';
import { type KeyFilter, matches, type WatchEvent } from './types.js';

export type WatchListener = (event: WatchEvent) => void | Promise<void>;

export type WatchCloseReason = 'cancelled' | 'compacted' | 'restored' | 'listener-error';

export interface WatchClose {
  reason: WatchCloseReason;
  /** Re-watch from here to continue without missing an event. */
  nextRevision: number;
  /** With 'compacted' and 'restored': the oldest revision a new watch may start from. */
  oldestRevision?: number;
  /** With 'listener-error': what the listener threw. */
  error?: unknown;
}

export interface WatchOptions {
  onClose?: (close: WatchClose) => void;
  /** Overrides the hub's bound on undelivered live events for this watcher. */
  bufferEvents?: number;
}

export interface EventsPage {
  events: WatchEvent[];
  /** Ask from here next time. */
  nextRevision: number;
  /** The store revision when the page was read. */
  revision: number;
}

export interface WatchHubOptions extends HistoryLimits {
  /** Default bound on a watcher's undelivered live events. */
  bufferEvents: number;
}

/** Events replayed from history per step of a drain. */
const REPLAY_BATCH = 256;

class Watcher {
  synced = false;
  closed = false;
  draining = false;
  scheduled = false;
  /** Undelivered live events are buffer[head..]. */
  buffer: WatchEvent[] = [];
  head = 0;

  constructor(
    readonly filter: KeyFilter,
    /** First revision not yet fully delivered. */
    public nextRevision: number,
    readonly listener: WatchListener,
    readonly maxBuffer: number,
    readonly onClose: ((close: WatchClose) => void) | undefined,
  ) {}

  get pending(): number {
    return this.buffer.length - this.head;
  }
}

interface Waiter {
  filter: KeyFilter;
  from: number;
  limit: number;
  maxBytes: number;
  settle(page: EventsPage | Error): void;
}

export class WatchHub {
  readonly history: WatchHistory;
  private readonly watchers = new Set<Watcher>();
  private readonly waiters = new Set<Waiter>();

  constructor(private readonly opts: WatchHubOptions) {
    this.history = new WatchHistory(opts);
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /**
   * Deliver every event matching `filter` with revision ≥ fromRevision (undefined or 0: from the
   * next revision), first from history, then live, until cancelled or closed. Throws
   * CompactedError when fromRevision is older than the history. Returns `cancel`.
   */
  watch(
    filter: KeyFilter,
    fromRevision: number | undefined,
    listener: WatchListener,
    opts: WatchOptions = {},
  ): () => void {
    const from = fromRevision && fromRevision > 0 ? fromRevision : this.history.revision + 1;
    if (from <= this.history.compactedRevision) throw new CompactedError(from, this.history.oldestRevision);
    const w = new Watcher(filter, from, listener, opts.bufferEvents ?? this.opts.bufferEvents, opts.onClose);
    this.watchers.add(w);
    this.schedule(w);
    return () => this.close(w, { reason: 'cancelled', nextRevision: this.resumePoint(w) });
  }

  /**
   * Events available now (for a long-poll), whole revisions within `limit` events and `maxBytes`
   * of answer (see WatchHistory.read). Throws CompactedError like `watch`.
   */
  eventsSince(
    filter: KeyFilter,
    fromRevision: number,
    limit: number,
    maxBytes = Number.POSITIVE_INFINITY,
  ): EventsPage {
    const r = this.history.read(filter, Math.max(1, fromRevision), limit, maxBytes);
    return { ...r, revision: this.history.revision };
  }

  /**
   * Like `eventsSince`, but when nothing is available yet, wait for the next matching revision.
   * An aborted `signal` (e.g. `AbortSignal.timeout(ms)`) answers with what is available: usually
   * an empty page, which is a normal long-poll outcome, not an error.
   */
  waitForEvents(
    filter: KeyFilter,
    fromRevision: number,
    limit: number,
    signal?: AbortSignal,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Promise<EventsPage> {
    const now = this.eventsSince(filter, fromRevision, limit, maxBytes);
    if (now.events.length > 0 || signal?.aborted) return Promise.resolve(now);
    return new Promise<EventsPage>((resolve, reject) => {
      const onAbort = () => waiter.settle(this.tryEventsSince(waiter));
      const waiter: Waiter = {
        filter,
        from: now.nextRevision,
        limit,
        maxBytes,
        settle: (page) => {
          this.waiters.delete(waiter);
          signal?.removeEventListener('abort', onAbort);
          if (page instanceof Error) reject(page);
          else resolve(page);
        },
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Called by apply once per data-changing revision with all its events. Never throws. */
  publish(revision: number, events: WatchEvent[]): void {
    this.history.append(revision, events);
    for (const w of this.watchers) {
      if (!w.synced) {
        this.schedule(w); // its drain reads the history
        continue;
      }
      if (revision < w.nextRevision) continue; // it asked to start at a future revision
      let added = false;
      for (const e of events) {
        if (!matches(w.filter, e.kv.key)) continue;
        w.buffer.push(e);
        added = true;
      }
      if (w.pending > w.maxBuffer) {
        // Too far behind to buffer: forget the buffer and replay from history instead. A drain in
        // progress finishes the events it holds (nextRevision follows them), then reads history.
        w.synced = false;
        w.buffer = [];
        w.head = 0;
        this.schedule(w);
      } else if (added) this.schedule(w);
    }
    for (const waiter of this.waiters) {
      if (revision < waiter.from) continue;
      if (events.some((e) => matches(waiter.filter, e.kv.key))) waiter.settle(this.tryEventsSince(waiter));
    }
  }

  /** The store was replaced by a snapshot at `revision`: history is gone, every watcher closes. */
  reset(revision: number): void {
    this.history.reset(revision);
    for (const w of this.watchers) {
      this.close(w, {
        reason: 'restored',
        nextRevision: w.nextRevision,
        oldestRevision: this.history.oldestRevision,
      });
    }
    for (const waiter of this.waiters) {
      const page = this.tryEventsSince(waiter);
      if (page instanceof Error || page.events.length > 0) waiter.settle(page);
    }
  }

  private tryEventsSince(w: Waiter): EventsPage | Error {
    try {
      return this.eventsSince(w.filter, w.from, w.limit, w.maxBytes);
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  /** Where a closed watcher resumes: a synced one with nothing pending has seen everything. */
  private resumePoint(w: Watcher): number {
    return w.synced && w.pending === 0 ? Math.max(w.nextRevision, this.history.revision + 1) : w.nextRevision;
  }

  private close(w: Watcher, close: WatchClose): void {
    if (w.closed) return;
    w.closed = true;
    w.buffer = [];
    w.head = 0;
    this.watchers.delete(w);
    if (!w.onClose) return;
    const onClose = w.onClose;
    // Consumer code never runs inside apply, and a throwing onClose must not take the node down
    // (an exception in a microtask would be uncaught): the watcher is gone either way.
    queueMicrotask(() => {
      try {
        onClose(close);
      } catch {
        // nothing to do: the consumer was told all it can be told
      }
    });
  }

  private schedule(w: Watcher): void {
    if (w.draining || w.scheduled || w.closed) return;
    w.scheduled = true;
    queueMicrotask(() => {
      w.scheduled = false;
      void this.drain(w);
    });
  }

  private async drain(w: Watcher): Promise<void> {
    if (w.draining) return;
    w.draining = true;
    try {
      while (!w.closed) {
        if (!w.synced) {
          if (w.nextRevision <= this.history.compactedRevision) {
            const oldestRevision = this.history.oldestRevision;
            this.close(w, { reason: 'compacted', nextRevision: w.nextRevision, oldestRevision });
            return;
          }
          const r = this.history.read(w.filter, w.nextRevision, REPLAY_BATCH);
          await this.deliver(w, r.events, r.events.length);
          if (w.closed) return;
          w.nextRevision = Math.max(w.nextRevision, r.nextRevision);
          // Synchronously after the check: later publishes see `synced` and fill the buffer.
          if (w.nextRevision > this.history.revision) w.synced = true;
          continue;
        }
        if (w.pending === 0) {
          w.buffer = [];
          w.head = 0;
          return;
        }
        // Drop delivered events (amortised O(1) per event), then deliver what is pending now;
        // events published meanwhile are appended to the same array and taken next round.
        if (w.head > 0) {
          w.buffer = w.buffer.slice(w.head);
          w.head = 0;
        }
        await this.deliver(w, w.buffer, w.buffer.length);
      }
    } catch (error) {
      this.close(w, { reason: 'listener-error', nextRevision: w.nextRevision, error });
    } finally {
      w.draining = false;
    }
  }

  /**
   * Deliver events[0..end). When `events` is the live buffer, `head` follows delivery so that
   * `pending` counts only undelivered events. `nextRevision` moves past a revision only once its
   * whole group is delivered (a group is always published, hence buffered, at once).
   */
  private async deliver(w: Watcher, events: WatchEvent[], end: number): Promise<void> {
    const live = events === w.buffer;
    for (let i = 0; i < end; i++) {
      const e = events[i]!;
      const r = w.listener(e);
      if (r instanceof Promise) await r;
      if (w.closed) return;
      if (live) w.head = i + 1;
      const next = events[i + 1];
      if (!next || next.revision !== e.revision) w.nextRevision = e.revision + 1;
    }
  }
}
