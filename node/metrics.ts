// Prometheus metrics of one node (prom-client), on a registry of its own so several nodes can
// live in one process in tests.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { RaftMetrics } from './raft/types.js';

const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

/** Upper bounds in seconds; bounded, so the metric's size never grows with what it saw. */
export const EVENT_LOOP_DELAY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/** At most this many corrective samples per late tick (a 10 ms sampler: 100 s of stall). */
const MAX_FILL = 10_000;

export class NodeMetrics {
  readonly registry = new Registry();
  readonly term = new Gauge({
    name: 'conflux_raft_term',
    help: 'Current Raft term',
    registers: [this.registry],
  });
  readonly isLeader = new Gauge({
    name: 'conflux_raft_is_leader',
    help: '1 when this node leads',
    registers: [this.registry],
  });
  readonly commitIndex = new Gauge({
    name: 'conflux_raft_commit_index',
    help: 'Highest committed log index',
    registers: [this.registry],
  });
  readonly appliedIndex = new Gauge({
    name: 'conflux_raft_applied_index',
    help: 'Highest applied log index',
    registers: [this.registry],
  });
  readonly lastLogIndex = new Gauge({
    name: 'conflux_raft_last_log_index',
    help: 'Last log index',
    registers: [this.registry],
  });
  readonly leaderChanges = new Counter({
    name: 'conflux_raft_leader_changes_total',
    help: 'Times the known leader changed',
    registers: [this.registry],
  });
  readonly proposals = new Counter({
    name: 'conflux_raft_proposals_total',
    help: 'Client proposals by outcome',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly fsync = new Histogram({
    name: 'conflux_storage_fsync_seconds',
    help: 'Duration of WAL fsyncs (one per Ready)',
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly apply = new Histogram({
    name: 'conflux_kv_apply_seconds',
    help: 'Duration of applying one batch of committed entries',
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly snapshots = new Counter({
    name: 'conflux_snapshots_total',
    help: 'Snapshots taken by this node',
    registers: [this.registry],
  });
  readonly snapshotSeconds = new Histogram({
    name: 'conflux_snapshot_seconds',
    help: 'Duration of taking and storing a snapshot',
    buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly http = new Histogram({
    name: 'conflux_http_request_duration_seconds',
    help: 'HTTP requests by route, method and status code',
    labelNames: ['route', 'method', 'code'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly members = new Gauge({
    name: 'conflux_cluster_members',
    help: 'Members of the committed membership by role (voter, learner)',
    labelNames: ['role'],
    registers: [this.registry],
  });
  readonly membershipChanges = new Counter({
    name: 'conflux_membership_changes_total',
    help: 'Membership operations this node ran, by kind (add-node, remove-node) and outcome',
    labelNames: ['kind', 'outcome'],
    registers: [this.registry],
  });
  readonly membershipChangeSeconds = new Histogram({
    name: 'conflux_membership_change_seconds',
    help: 'Duration of membership operations, learner catch-up included',
    labelNames: ['kind'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly transfers = new Counter({
    name: 'conflux_leader_transfers_total',
    help: 'Leadership transfers requested on this node, by outcome',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly transferSeconds = new Histogram({
    name: 'conflux_leader_transfer_seconds',
    help: 'Time from a transfer request until the new leader was known',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly backups = new Counter({
    name: 'conflux_backups_total',
    help: 'Backups by outcome (succeeded, skipped, failed)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly backupSeconds = new Histogram({
    name: 'conflux_backup_seconds',
    help: 'Duration of a backup: snapshot, upload and retention',
    buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300],
    registers: [this.registry],
  });
  readonly backupBytes = new Counter({
    name: 'conflux_backup_bytes_total',
    help: 'Snapshot bytes uploaded by backups',
    registers: [this.registry],
  });
  readonly lastBackupTimestamp = new Gauge({
    name: 'conflux_backup_last_success_timestamp_seconds',
    help: 'Unix time of the last successful backup taken on this node',
    registers: [this.registry],
  });
  readonly restores = new Counter({
    name: 'conflux_restores_total',
    help: 'Restores by outcome (succeeded, refused, failed)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly restoreSeconds = new Histogram({
    name: 'conflux_restore_seconds',
    help: 'Duration of a restore: download, verification and install',
    buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300],
    registers: [this.registry],
  });
  readonly restoreBytes = new Counter({
    name: 'conflux_restore_bytes_total',
    help: 'Snapshot bytes downloaded by restores',
    registers: [this.registry],
  });
  readonly peerProtocolErrors = new Counter({
    name: 'conflux_peer_protocol_errors_total',
    help: 'Peer connections closed for a frame or a peer no correct member sends, by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly storedBytes = new Gauge({
    name: 'conflux_kv_db_bytes',
    help: 'Stored bytes the storage quota counts: keys, values and a fixed overhead per key',
    registers: [this.registry],
  });
  readonly quotaBytes = new Gauge({
    name: 'conflux_kv_quota_bytes',
    help: 'The storage quota (--quota-bytes)',
    registers: [this.registry],
  });
  readonly quotaAlarm = new Gauge({
    name: 'conflux_kv_quota_alarm',
    help: '1 while the stored bytes are at or above the quota: writes that add data are refused (NO_SPACE)',
    registers: [this.registry],
  });
  readonly watchers = new Gauge({
    name: 'conflux_watchers',
    help: 'Open watches on this node: SSE streams and waiting long-polls',
    registers: [this.registry],
  });
  readonly limitRefusals = new Counter({
    name: 'conflux_limit_refusals_total',
    help: 'Requests and connections refused by a limit (rate, response_bytes, quota, watchers, body_bytes, connections)',
    labelNames: ['limit'],
    registers: [this.registry],
  });
  readonly eventLoopDelay = new Histogram({
    name: 'conflux_event_loop_delay_seconds',
    help: 'How late a timer due every 10 ms ran (a stall counted once for every sample it swallowed)',
    buckets: EVENT_LOOP_DELAY_BUCKETS,
    registers: [this.registry],
  });
  /** Null without default metrics (tests that build many nodes in one process). */
  private readonly sampler: EventLoopDelaySampler | null;
  private leader: string | null = null;

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry, prefix: 'conflux_process_' });
    this.sampler = defaults ? new EventLoopDelaySampler(this.eventLoopDelay) : null;
  }

  /** Stop the timers this object started. */
  close(): void {
    this.sampler?.stop();
  }

  observeLimits(l: { storedBytes: number; quotaBytes: number; alarm: boolean; watchers: number }): void {
    this.storedBytes.set(l.storedBytes);
    this.quotaBytes.set(l.quotaBytes);
    this.quotaAlarm.set(l.alarm ? 1 : 0);
    this.watchers.set(l.watchers);
  }

  observeRaft(m: RaftMetrics): void {
    this.term.set(m.currentTerm);
    this.isLeader.set(m.state === 'leader' ? 1 : 0);
    this.commitIndex.set(m.committed);
    this.appliedIndex.set(m.lastApplied);
    this.lastLogIndex.set(m.lastLogIndex);
    this.members.set({ role: 'voter' }, new Set(m.membership.configs.flat()).size);
    this.members.set({ role: 'learner' }, m.membership.learners.length);
    if (m.currentLeader !== this.leader) {
      if (m.currentLeader !== null) this.leaderChanges.inc();
      this.leader = m.currentLeader;
    }
  }
}

// Event-loop delay as a Prometheus histogram (conflux_event_loop_delay_seconds): a timer asks to run every `intervalMs` and records how late it ran. A stall of
// D ms swallows D / intervalMs samples, so the sampler records those too (D - intervalMs,
// D - 2 × intervalMs, ... as HdrHistogram's "expected interval" correction does): the histogram then
// counts time, and its p99.9 is the delay 0.1 % of the time is worse than, whatever the stall length.

export interface DelayClock {
  nowMs(): number;
  setInterval(fn: () => void, ms: number): { cancel(): void };
}

const realClock: DelayClock = {
  nowMs: () => performance.now(),
  setInterval: (fn, ms) => {
    const t = setInterval(fn, ms);
    t.unref(); // never keeps a process alive
    return { cancel: () => clearInterval(t) };
  },
};

export class EventLoopDelaySampler {
  private readonly timer: { cancel(): void };
  private last: number;

  constructor(
    readonly histogram: Histogram,
    private readonly intervalMs = 10,
    private readonly clock: DelayClock = realClock,
  ) {
    if (!(intervalMs > 0))
      throw new RangeError(`event-loop sampling interval must be > 0 ms, got ${intervalMs}`);
    this.last = clock.nowMs();
    this.timer = clock.setInterval(() => this.sample(), intervalMs);
  }

  /** Record one timer firing (called by the timer; public for tests with a manual clock). */
  sample(): void {
    const now = this.clock.nowMs();
    const delayMs = Math.max(0, now - this.last - this.intervalMs);
    this.last = now;
    this.histogram.observe(delayMs / 1000);
    let missed = delayMs - this.intervalMs;
    for (let n = 0; missed > 0 && n < MAX_FILL; n++, missed -= this.intervalMs) {
      this.histogram.observe(missed / 1000);
    }
  }

  stop(): void {
    this.timer.cancel();
  }
}

/** One histogram's cumulative bucket counts, as `/metrics` prints them: `le` → count. */
export type BucketCounts = ReadonlyMap<number, number>;

/** Parse the cumulative buckets of `name` from Prometheus text exposition. */
export function parseHistogramBuckets(text: string, name: string): Map<number, number> {
  const out = new Map<number, number>();
  const prefix = `${name}_bucket{`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const m = /le="([^"]+)"[^}]*}\s+(\S+)/.exec(line);
    if (!m) continue;
    const le = m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]);
    out.set(le, (out.get(le) ?? 0) + Number(m[2]));
  }
  return out;
}

/**
 * The quantile `q` of the samples between two scrapes (`before` may be empty), as the upper bound
 * of the bucket it falls in (Infinity past the last bound); null when no sample was taken.
 */
export function bucketQuantile(after: BucketCounts, before: BucketCounts, q: number): number | null {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Number.POSITIVE_INFINITY) ?? 0) - (before.get(Number.POSITIVE_INFINITY) ?? 0);
  if (total <= 0) return null;
  for (const le of bounds) {
    const count = (after.get(le) ?? 0) - (before.get(le) ?? 0);
    if (count >= q * total) return le;
  }
  return Number.POSITIVE_INFINITY;
}
