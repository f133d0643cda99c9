// Prometheus metrics of one node (prom-client), on a registry of its own so several nodes can
// live in one process in tests.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { RaftMetrics } from './raft/types.js';

const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

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
  private leader: string | null = null;

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry, prefix: 'conflux_process_' });
  }

  observeRaft(m: RaftMetrics): void {
    this.term.set(m.currentTerm);
    this.isLeader.set(m.state === 'leader' ? 1 : 0);
    this.commitIndex.set(m.committed);
    this.appliedIndex.set(m.lastApplied);
    this.lastLogIndex.set(m.lastLogIndex);
    if (m.currentLeader !== this.leader) {
      if (m.currentLeader !== null) this.leaderChanges.inc();
      this.leader = m.currentLeader;
    }
  }
}
