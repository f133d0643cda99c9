// Simulated time for the whole-stack simulator. The events due at one instant run one after the
// other; then every promise continuation they started runs to quiescence before time moves on. Nothing in a run may
// use real timers or real I/O (the disk, clocks and network are simulated), so the only macrotask
// is the one the loop waits on, and a seed replays the same run.

import { SeededRng } from '../raft/rng.js';
import { EventQueue } from '../raft/sim/event-queue.js';

/** A broken invariant: the run fails with this message. */
export class Violation extends Error {
  override readonly name = 'Violation';
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class World {
  readonly rng: SeededRng;
  now = 0;
  events = 0;
  private readonly queue = new EventQueue<{ fn: () => void; cancelled: boolean }>();
  /** The first violation seen: the run stops at the end of the event that found it. */
  failure: Error | null = null;

  constructor(readonly seed: number) {
    this.rng = new SeededRng(seed);
  }

  after(delayMs: number, fn: () => void): void {
    this.queue.push(this.now + Math.max(0, delayMs), { fn, cancelled: false });
  }

  /** Like `after`, but cancellable (a cancelled event costs nothing when its time comes). */
  timer(delayMs: number, fn: () => void): { cancel(): void } {
    const ev = { fn, cancelled: false };
    this.queue.push(this.now + Math.max(0, delayMs), ev);
    return { cancel: () => (ev.cancelled = true) };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  /** Record a violation found outside the event loop's call stack (in a callback or continuation). */
  fail(err: Error): void {
    this.failure ??= err;
  }

  /** Run events up to `untilMs` (or until `stop` holds); throws the first violation. */
  async run(untilMs: number, stop: () => boolean = () => false): Promise<void> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (stop()) return;
      let at = this.queue.peekTime();
      if (at === undefined || at > untilMs) {
        // Continuations still running may schedule more before the deadline.
        await settle();
        if (stop()) return;
        at = this.queue.peekTime();
        if (at === undefined || at > untilMs) {
          this.now = Math.max(this.now, untilMs);
          return;
        }
      }
      // Every event due at this instant runs, then their continuations (one settle per instant).
      this.now = at;
      let ran = false;
      while (this.queue.peekTime() === at) {
        const next = this.queue.pop() as { at: number; value: { fn: () => void; cancelled: boolean } };
        if (next.value.cancelled) continue;
        ran = true;
        this.events++;
        try {
          next.value.fn();
        } catch (err) {
          this.fail(err instanceof Error ? err : new Error(String(err)));
        }
      }
      if (ran) await settle();
    }
  }

  /** Let pending continuations run without advancing time. */
  async quiesce(): Promise<void> {
    await settle();
    if (this.failure) throw this.failure;
  }
}
