// The kubelet's crash-loop back-off (client-go's flowcontrol.Backoff as kuberuntime uses it),
// as a pure state machine on millisecond timestamps:
//
// - the first exit restarts at once and arms the back-off at `initialMs` (10 s);
// - a later exit waits until `finishedAt + backoff`, and the restart doubles it, up to `maxMs`
//   (5 min);
// - an exit more than 2 x maxMs (10 min) after the last restart starts over, as after a reset.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const KUBELET_BACKOFF: BackoffOptions = { initialMs: 10_000, maxMs: 300_000 };

export class CrashBackoff {
  private entry: { backoffMs: number; lastUpdateMs: number } | null = null;

  constructor(private readonly o: BackoffOptions = KUBELET_BACKOFF) {}

  /** How long after `finishedAtMs` the container may start again (0: at once). */
  delayAfterExit(finishedAtMs: number): number {
    const e = this.entry;
    if (!e || this.expired(finishedAtMs)) return 0;
    return e.backoffMs;
  }

  /** Records a restart of a container that exited at `finishedAtMs`, at `nowMs`. */
  restarted(finishedAtMs: number, nowMs: number): void {
    const e = this.entry;
    if (!e || this.expired(finishedAtMs)) this.entry = { backoffMs: this.o.initialMs, lastUpdateMs: nowMs };
    else this.entry = { backoffMs: Math.min(e.backoffMs * 2, this.o.maxMs), lastUpdateMs: nowMs };
  }

  /** The back-off the next exit would wait (for status messages). */
  current(): number {
    return this.entry?.backoffMs ?? 0;
  }

  private expired(eventMs: number): boolean {
    return this.entry !== null && eventMs - this.entry.lastUpdateMs > 2 * this.o.maxMs;
  }
}
