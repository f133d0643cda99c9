// The second part of the bench: how long writes are unavailable during a planned leader transfer
// and after the leader is killed (SIGKILL), for each system.
//
// Method: WRITERS sequential clients PUT back-to-back (one request at a time each), starting on
// different members; a write that fails (non-2xx, transport error, no answer within the request
// timeout) is retried on the next member after RETRY_DELAY_MS. Every acknowledged write's
// completion time is recorded. At time T the event is triggered; the window is the longest gap
// between consecutive acknowledged writes (over all writers) from T - 1 s to 1 s after writes
// resumed (the first acknowledgement after the transfer answered / a new leader was seen). A killed
// leader is restarted with its data directory and flags, and the next trial waits until all three
// members are ready, agree on the leader and are caught up.
//
// A writer waiting on a request that never answers only notices after the request timeout, so a
// window can overstate the outage by up to about REQUEST_TIMEOUT_MS + RETRY_DELAY_MS when every
// writer is stuck at once; every trial records how many writes failed and why.

import { Agent } from 'node:http';
import type { Cluster, Member, RequestSpec } from './load.js';
import { send } from './load.js';
import { waitUntil } from './proc.js';

export const WRITERS = 4;
export const REQUEST_TIMEOUT_MS = 250;
export const RETRY_DELAY_MS = 25;
/** Steady writes before the event; also the part of the interval before T. */
const BEFORE_MS = 1000;
/** How long writes keep going after they resumed; also the part of the interval after that. */
const AFTER_MS = 1000;
/** How long a system may take to accept writes again before the trial fails. */
const RECOVERY_TIMEOUT_MS = 30_000;

export type EventKind = 'transfer' | 'kill';

export interface Trial {
  trial: number;
  kind: EventKind;
  oldLeader: string;
  newLeader: string;
  /** The longest gap between consecutive acknowledged writes in the interval. */
  windowMs: number;
  /** Where that gap starts and ends, relative to T. */
  gapStartMs: number;
  gapEndMs: number;
  /**
   * The longest gap that overlaps the event itself (T to the first acknowledgement after it was
   * done). Less than windowMs when the longest gap of the interval was an ordinary stall elsewhere.
   */
  eventGapMs: number;
  /** Transfer: when the admin call answered; kill: when a live member was first seen leading. */
  eventDoneMs: number;
  /** The first acknowledgement after eventDoneMs, relative to T. */
  resumedMs: number;
  /** Acknowledged and failed writes in the interval, and the first distinct failure reasons. */
  acked: number;
  failed: number;
  failureSamples: Record<string, number>;
  /** Kill only: the time from the restart to the restarted member being ready (serving again). */
  readyMs?: number;
  /** Kill only: the time from the restart to a healthy 3-member cluster. */
  recoveryMs?: number;
}

export interface FailoverSummary {
  trials: Trial[];
  medianMs: number;
  maxMs: number;
}

export interface SystemFailover {
  electionTimeoutMs: number;
  electionSetting: string;
  transfer: FailoverSummary;
  kill: FailoverSummary;
}

export interface FailoverReport {
  trialsPerKind: number;
  writers: number;
  requestTimeoutMs: number;
  retryDelayMs: number;
  beforeMs: number;
  afterMs: number;
  targets: { transferMs: number; failoverOverElectionTimeoutMs: number };
  systems: { conflux?: SystemFailover; etcd?: SystemFailover };
}

export interface FailoverOptions {
  trials: number;
  signal: AbortSignal;
  /** Throws if a process crashed (checked between trials). */
  check: () => void;
  log: (s: string) => void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

interface Failure {
  at: number;
  reason: string;
}

/** WRITERS sequential writers over the members; acknowledgements in completion order. */
function startWriters(c: Cluster, signal: AbortSignal) {
  const acks: number[] = [];
  const failures: Failure[] = [];
  const members = c.members;
  const value = Buffer.alloc(100, 'v');
  let stopped = false;
  const loop = async (w: number) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let target = w % members.length;
    let seq = 0;
    try {
      while (!stopped && !signal.aborted) {
        const m = members[target] as Member;
        const spec: RequestSpec = c.failover.write(`bench/failover/w${w}/k${seq++ % 100}`, value);
        const out = await send(agent, m, spec, { requests: [] }, REQUEST_TIMEOUT_MS);
        const at = performance.now();
        if (out.ok) {
          acks.push(at);
          continue;
        }
        failures.push({ at, reason: `${m.id}: ${normalize(out.reason ?? 'unknown')}` });
        target = (target + 1) % members.length;
        await sleep(RETRY_DELAY_MS);
      }
    } finally {
      agent.destroy();
    }
  };
  const loops = Array.from({ length: WRITERS }, (_, w) => loop(w));
  return {
    acks,
    failures,
    /** The first acknowledgement after `t`, waiting up to `timeoutMs` for it. */
    async firstAckAfter(t: number, timeoutMs: number): Promise<number> {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const i = acks.findIndex((a) => a > t);
        if (i >= 0) return acks[i] as number;
        if (signal.aborted) throw new Error('aborted');
        if (performance.now() > deadline) {
          const recent = summarize(failures.filter((f) => f.at > t));
          throw new Error(
            `${c.system}: no write was acknowledged within ${timeoutMs} ms (failures since: ${JSON.stringify(recent)})`,
          );
        }
        await sleep(5);
      }
    },
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/**
 * A failure reason, short: `HTTP 503 TRANSFER_IN_PROGRESS: leadership is being transferred to n2`
 * rather than the JSON body, and without the addresses that make every one distinct.
 */
export function normalize(reason: string): string {
  const http = /^HTTP (\d+) (.*)$/s.exec(reason);
  let out = reason;
  if (http) {
    const body = http[2] ?? '';
    const code = /"code":"([A-Z_]+)"/.exec(body)?.[1];
    const message = /"message":"([^"]*)/.exec(body)?.[1] ?? /"error":"([^"]*)/.exec(body)?.[1];
    out = `HTTP ${http[1]}${code ? ` ${code}` : ''}${message ? `: ${message}` : body ? ` ${body}` : ''}`;
  }
  return out.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, '<addr>').slice(0, 120);
}

function summarize(fs: Failure[], limit = 6): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of fs) {
    if (f.reason in out || Object.keys(out).length < limit) out[f.reason] = (out[f.reason] ?? 0) + 1;
  }
  return out;
}

async function oneTrial(c: Cluster, kind: EventKind, trial: number, opts: FailoverOptions): Promise<Trial> {
  const f = c.failover;
  const leader = await f.waitHealthy(60_000);
  const writers = startWriters(c, opts.signal);
  let t = 0;
  let eventDone = 0;
  let resumed = 0;
  let newLeader = '';
  try {
    await sleep(BEFORE_MS + 200);
    const warm = writers.acks.filter((a) => a > performance.now() - BEFORE_MS).length;
    if (warm === 0)
      throw new Error(
        `${c.system}: no writes acknowledged in the second before the ${kind} (failures: ${JSON.stringify(summarize(writers.failures))})`,
      );
    t = performance.now();
    if (kind === 'transfer') {
      newLeader = await f.transferLeader(leader);
      eventDone = performance.now();
    } else {
      await f.kill(leader);
      let seen: Member | undefined;
      await waitUntil(
        `${c.system}: a new leader after killing ${leader.id}`,
        RECOVERY_TIMEOUT_MS,
        async () => {
          seen = await f.currentLeader();
          return (seen !== undefined && seen !== leader) || `leader: ${seen?.id ?? 'none'}`;
        },
      );
      eventDone = performance.now();
      newLeader = (seen as Member).id;
    }
    resumed = await writers.firstAckAfter(eventDone, RECOVERY_TIMEOUT_MS);
    const endAt = resumed + AFTER_MS;
    while (performance.now() < endAt) await sleep(endAt - performance.now());
  } finally {
    await writers.stop();
  }

  const from = t - BEFORE_MS;
  const to = resumed + AFTER_MS;
  const inside = writers.acks.filter((a) => a >= from && a <= to);
  let best = { gap: 0, start: from, end: from };
  let eventGap = 0;
  for (let i = 1; i < inside.length; i++) {
    const a = inside[i - 1] as number;
    const b = inside[i] as number;
    if (b - a > best.gap) best = { gap: b - a, start: a, end: b };
    if (b >= t && a < resumed) eventGap = Math.max(eventGap, b - a);
  }
  const failures = writers.failures.filter((x) => x.at >= from && x.at <= to);
  const result: Trial = {
    trial,
    kind,
    oldLeader: leader.id,
    newLeader,
    windowMs: best.gap,
    gapStartMs: best.start - t,
    gapEndMs: best.end - t,
    eventGapMs: eventGap,
    eventDoneMs: eventDone - t,
    resumedMs: resumed - t,
    acked: inside.length,
    failed: failures.length,
    failureSamples: summarize(failures),
  };
  if (kind === 'kill') {
    const r0 = performance.now();
    await f.restart(leader);
    result.readyMs = performance.now() - r0;
    await f.waitHealthy(60_000);
    result.recoveryMs = performance.now() - r0;
  }
  return result;
}

const r0 = (v: number) => Math.round(v);

/** `trials` leader transfers, then `trials` leader kills, alternating the systems' order per trial. */
export async function runFailover(clusters: Cluster[], opts: FailoverOptions): Promise<FailoverReport> {
  const trials = new Map<string, Trial[]>();
  for (const kind of ['transfer', 'kill'] as const) {
    for (let i = 1; i <= opts.trials; i++) {
      const order = i % 2 === 1 ? clusters : [...clusters].reverse();
      for (const c of order) {
        opts.check();
        const t = await oneTrial(c, kind, i, opts);
        const key = `${c.system}|${kind}`;
        trials.set(key, [...(trials.get(key) ?? []), t]);
        const fails = t.failed
          ? `, ${t.failed} failed writes (${Object.keys(t.failureSamples).join('; ')})`
          : '';
        opts.log(
          `failover ${kind.padEnd(8)} ${i}/${opts.trials} ${c.system.padEnd(7)} window ${r0(t.windowMs)} ms ` +
            `(from ${r0(t.gapStartMs)} to ${r0(t.gapEndMs)} ms after T; ${r0(t.eventGapMs)} ms across the event; ` +
            `${t.oldLeader} -> ${t.newLeader}, ` +
            `event done at ${r0(t.eventDoneMs)} ms${t.recoveryMs !== undefined ? `, restarted member ready in ${r0(t.readyMs ?? Number.NaN)} ms, 3 healthy members in ${r0(t.recoveryMs)} ms` : ''})${fails}`,
        );
      }
    }
  }
  opts.check();
  const summary = (c: Cluster, kind: EventKind): FailoverSummary => {
    const ts = trials.get(`${c.system}|${kind}`) ?? [];
    const w = ts.map((t) => t.windowMs);
    return { trials: ts, medianMs: median(w), maxMs: w.length ? Math.max(...w) : NaN };
  };
  const systems: FailoverReport['systems'] = {};
  for (const c of clusters) {
    systems[c.system] = {
      electionTimeoutMs: c.failover.electionTimeoutMs,
      electionSetting: c.failover.electionSetting,
      transfer: summary(c, 'transfer'),
      kill: summary(c, 'kill'),
    };
  }
  return {
    trialsPerKind: opts.trials,
    writers: WRITERS,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    retryDelayMs: RETRY_DELAY_MS,
    beforeMs: BEFORE_MS,
    afterMs: AFTER_MS,
    targets: { transferMs: 200, failoverOverElectionTimeoutMs: 300 },
    systems,
  };
}
