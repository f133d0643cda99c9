// The one load generator both systems get: node:http with a keep-alive agent and a fixed number of
// request loops (the in-flight count), a warm-up, then a measured window. Latencies are kept as a
// sorted array of samples; every non-2xx answer, transport error or failed check is a failure.

import { Agent, request } from 'node:http';
import type { Proc } from './proc.js';

export type WorkloadKind = 'write' | 'read-linearizable' | 'read-serializable';

export const WORKLOADS: { kind: WorkloadKind; label: string }[] = [
  { kind: 'write', label: 'write' },
  { kind: 'read-linearizable', label: 'read linearizable' },
  { kind: 'read-serializable', label: 'read serializable' },
];

export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT';
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

/** What a workload sends: one prepared request per key, and a check of a 2xx answer's body. */
export interface Workload {
  requests: RequestSpec[];
  /** Returns why a 2xx answer is still wrong, or null. */
  check?: (body: Buffer) => string | null;
}

export interface Member {
  id: string;
  proc: Proc;
  host: string;
  port: number;
}

export interface Cluster {
  system: 'conflux' | 'etcd';
  members: Member[];
  findLeader(): Promise<Member>;
  workload(kind: WorkloadKind, keys: string[], values: Buffer[]): Workload;
  failover: FailoverOps;
  stop(): Promise<void>;
}

/** What the failover part of the bench (failover.ts) needs from a system. */
export interface FailoverOps {
  /** The configured (base) election timeout; followers campaign after a random time in [T, 2T). */
  electionTimeoutMs: number;
  /** How that timeout is set, for the report. */
  electionSetting: string;
  /** The live member that says it leads (the highest term wins); undefined if none does. */
  currentLeader(): Promise<Member | undefined>;
  /** Ask `leader` to hand leadership to another member; resolves with the new leader's id. */
  transferLeader(leader: Member): Promise<string>;
  /** SIGKILL, not reported as a crash; resolves once the process exited. */
  kill(m: Member): Promise<void>;
  /** Start a killed member again with the same data directory and flags. */
  restart(m: Member): Promise<void>;
  /** Every member running and ready, one leader they all agree on, the followers caught up. */
  waitHealthy(timeoutMs: number): Promise<Member>;
  /** One write for the failover writers. */
  write(key: string, value: Buffer): RequestSpec;
}

export interface LoadResult {
  ops: number;
  failures: number;
  opsPerSec: number;
  seconds: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** The first few distinct failure reasons, with how often each occurred. */
  failureSamples: Record<string, number>;
}

export interface LoadOptions {
  inFlight: number;
  warmupMs: number;
  durationMs: number;
  signal?: AbortSignal;
  /** Called when the measured window opens and closes (for CPU snapshots). */
  onMeasureStart?: () => void;
  onMeasureEnd?: () => void;
  timeoutMs?: number;
  /** Send exactly this many requests (one per prepared request), the duration being a deadline. */
  count?: number;
}

export interface Outcome {
  ok: boolean;
  reason?: string;
}

export function send(
  agent: Agent,
  target: Member,
  spec: RequestSpec,
  w: Workload,
  timeoutMs: number,
): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    const req = request(
      {
        agent,
        host: target.host,
        port: target.port,
        method: spec.method,
        path: spec.path,
        headers: spec.headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => resolve({ ok: false, reason: `response: ${err.message}` }));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const body = Buffer.concat(chunks);
          if (status < 200 || status > 299) {
            resolve({ ok: false, reason: `HTTP ${status} ${body.toString('utf8').slice(0, 160)}` });
            return;
          }
          const wrong = w.check?.(body) ?? null;
          resolve(wrong === null ? { ok: true } : { ok: false, reason: wrong });
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ ok: false, reason: err.message }));
    req.end(spec.body);
  });
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

/** Run `opts.inFlight` loops against `target` for warm-up + duration; measure only the latter. */
export async function runLoad(target: Member, w: Workload, opts: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.inFlight, maxFreeSockets: opts.inFlight });
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const samples: number[] = [];
  const failureSamples: Record<string, number> = {};
  let failures = 0;
  let next = 0;
  const t0 = performance.now();
  const measureStart = t0 + opts.warmupMs;
  const end = measureStart + opts.durationMs;
  // Each hook runs exactly once, on time or, if its timer is late, when the loops finish.
  let started = false;
  let ended = false;
  const measureStarted = () => {
    if (!started) opts.onMeasureStart?.();
    started = true;
  };
  const measureEnded = () => {
    measureStarted();
    if (!ended) opts.onMeasureEnd?.();
    ended = true;
  };
  const startTimer = setTimeout(measureStarted, opts.warmupMs);
  const endTimer = setTimeout(measureEnded, opts.warmupMs + opts.durationMs);

  const loop = async () => {
    while (!opts.signal?.aborted) {
      const begin = performance.now();
      if (begin >= end || (opts.count !== undefined && next >= opts.count)) return;
      const spec = w.requests[next++ % w.requests.length] as RequestSpec;
      const out = await send(agent, target, spec, w, timeoutMs);
      const done = performance.now();
      if (done < measureStart || done > end) continue;
      if (out.ok) {
        samples.push(done - begin);
      } else {
        failures++;
        const reason = out.reason ?? 'unknown';
        if (reason in failureSamples || Object.keys(failureSamples).length < 5)
          failureSamples[reason] = (failureSamples[reason] ?? 0) + 1;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.inFlight }, loop));
    measureEnded();
  } finally {
    clearTimeout(startTimer);
    clearTimeout(endTimer);
    agent.destroy();
  }
  if (opts.signal?.aborted) throw new Error('load aborted');

  const sorted = Float64Array.from(samples).sort();
  const seconds = opts.durationMs / 1000;
  const sum = samples.reduce((a, b) => a + b, 0);
  return {
    ops: samples.length,
    failures,
    opsPerSec: samples.length / seconds,
    seconds,
    latencyMs: {
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: sorted.length ? (sorted[sorted.length - 1] as number) : NaN,
      mean: samples.length ? sum / samples.length : NaN,
    },
    failureSamples,
  };
}
