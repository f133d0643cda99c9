// Probe bookkeeping as the kubelet's prober workers keep it (pure: results come in, decisions come
// out; running a probe is probes.ts's job):
//
// - a probe first runs `initialDelaySeconds` after the container started, then every
//   `periodSeconds`;
// - its result flips to success after `successThreshold` consecutive successes and to failure
//   after `failureThreshold` consecutive failures;
// - readiness starts as failure (not ready), liveness and startup as success/unknown;
// - liveness and readiness wait until the startup probe (if any) has succeeded; the startup probe
//   stops once it has.

import type { V1Probe } from '@kubernetes/client-node';

export type ProbeKind = 'startup' | 'readiness' | 'liveness';

export interface ProbeTiming {
  initialDelayMs: number;
  periodMs: number;
  timeoutMs: number;
  successThreshold: number;
  failureThreshold: number;
}

/** The probe's timing with the API's defaults (period 10 s, timeout 1 s, thresholds 1 and 3). */
export function probeTiming(probe: V1Probe): ProbeTiming {
  return {
    initialDelayMs: (probe.initialDelaySeconds ?? 0) * 1000,
    periodMs: Math.max(1, probe.periodSeconds ?? 10) * 1000,
    timeoutMs: Math.max(1, probe.timeoutSeconds ?? 1) * 1000,
    successThreshold: Math.max(1, probe.successThreshold ?? 1),
    failureThreshold: Math.max(1, probe.failureThreshold ?? 3),
  };
}

export class ProbeState {
  /** The current result: true = success. */
  result: boolean;
  private successes = 0;
  private failures = 0;
  private lastRunMs: number | null = null;

  constructor(
    readonly kind: ProbeKind,
    readonly timing: ProbeTiming,
    private startedAtMs: number,
  ) {
    this.result = kind === 'liveness';
  }

  /** Starts the schedule over from `nowMs` (readiness and liveness, once startup succeeded). */
  startAt(nowMs: number): void {
    this.startedAtMs = nowMs;
    this.lastRunMs = null;
  }

  /** When the next run is due. */
  nextRunAt(): number {
    const first = this.startedAtMs + this.timing.initialDelayMs;
    return this.lastRunMs === null ? first : Math.max(first, this.lastRunMs + this.timing.periodMs);
  }

  /** Records one run's outcome at `nowMs`; returns true when the result flipped. */
  observe(ok: boolean, nowMs: number): boolean {
    this.lastRunMs = nowMs;
    if (ok) {
      this.failures = 0;
      this.successes++;
      if (!this.result && this.successes >= this.timing.successThreshold) {
        this.result = true;
        return true;
      }
    } else {
      this.successes = 0;
      this.failures++;
      if ((this.result || this.kind !== 'liveness') && this.failures >= this.timing.failureThreshold) {
        const flipped = this.result;
        this.result = false;
        // Startup: failureThreshold failures in a row kill the container even if never succeeded.
        return flipped || this.kind === 'startup';
      }
    }
    return false;
  }
}

/** What the container's probes say: whether it started, is ready, and must be restarted. */
export interface ProbeVerdict {
  started: boolean;
  ready: boolean;
  /** Why the container must be killed (liveness or startup failure), if it must. */
  kill?: string;
}

/**
 * The probes of one container run: which probe runs next and what the results mean. Without a
 * startup probe the container counts as started at once; without a readiness probe it is ready
 * once started.
 */
export class ContainerProbes {
  readonly startup?: ProbeState;
  readonly readiness?: ProbeState;
  readonly liveness?: ProbeState;
  private startedAt: number | null = null;

  constructor(probes: { startup?: V1Probe; readiness?: V1Probe; liveness?: V1Probe }, startedAtMs: number) {
    if (probes.startup) this.startup = new ProbeState('startup', probeTiming(probes.startup), startedAtMs);
    if (probes.readiness)
      this.readiness = new ProbeState('readiness', probeTiming(probes.readiness), startedAtMs);
    if (probes.liveness)
      this.liveness = new ProbeState('liveness', probeTiming(probes.liveness), startedAtMs);
    if (!this.startup) this.startedAt = startedAtMs;
  }

  /** The probes that run now: startup alone until it succeeded, then readiness and liveness. */
  active(): ProbeState[] {
    if (this.startup && !this.startup.result) return [this.startup];
    return [this.readiness, this.liveness].filter((p): p is ProbeState => p !== undefined);
  }

  /** Records a result; the liveness and readiness schedules start when startup succeeds. */
  observe(probe: ProbeState, ok: boolean, nowMs: number): ProbeVerdict {
    const flipped = probe.observe(ok, nowMs);
    if (probe === this.startup && probe.result && this.startedAt === null) {
      this.startedAt = nowMs;
      // Kubelet: readiness and liveness probes begin once the container has started.
      for (const p of [this.readiness, this.liveness]) p?.startAt(nowMs);
    }
    const verdict = this.verdict();
    if (flipped && !probe.result && probe.kind === 'liveness') {
      return { ...verdict, kill: 'Container failed liveness probe, will be restarted' };
    }
    if (flipped && !probe.result && probe.kind === 'startup') {
      return { ...verdict, kill: 'Container failed startup probe, will be restarted' };
    }
    return verdict;
  }

  verdict(): ProbeVerdict {
    const started = this.startedAt !== null;
    return { started, ready: started && (this.readiness ? this.readiness.result : true) };
  }
}
