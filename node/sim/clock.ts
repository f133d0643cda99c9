// A node's clock: the Raft node's ticks and timeouts run on simulated time, at the node's own rate
// (clock skew), and not at all while the process is paused (a GC pause, a stopped container).

import type { Clock, Timer } from '../raft/raft-node.js';
import type { World } from './world.js';

/** Runs `fn` after `delayMs` of this process's time, if the process still lives then. */
export interface ProcessGate {
  post(delayMs: number, fn: () => void): void;
}

export class SimClock implements Clock {
  constructor(
    private readonly world: World,
    private readonly gate: ProcessGate,
    /** Local milliseconds per simulated millisecond. */
    readonly rate: number,
  ) {}

  setInterval(fn: () => void, ms: number): Timer {
    let live = true;
    // Re-armed when it fires, so a paused process gets one late tick, not a burst (as Node's).
    const arm = () =>
      this.gate.post(ms / this.rate, () => {
        if (!live) return;
        arm();
        fn();
      });
    arm();
    return { cancel: () => (live = false) };
  }

  setTimeout(fn: () => void, ms: number): Timer {
    let live = true;
    this.gate.post(ms / this.rate, () => {
      if (live) fn();
    });
    return { cancel: () => (live = false) };
  }

  nowMs(): number {
    return this.world.now * this.rate;
  }
}
