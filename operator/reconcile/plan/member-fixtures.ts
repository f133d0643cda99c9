// Test support for the replacement and recovery rules: observations built member by member, with
// the aggregated status computed from who answers (as a member's /_cluster/status would).

import type {
  ClusterStatus as ClusterStatusDoc,
  InternalStatus,
  Operation,
} from '../../../node/api/admin-contract.js';
import { API_VERSION, type ClusterStatus, confluxClusterSchema } from '../../api/cluster.js';
import type { MemberPod } from '../../platform/platform.js';
import type { Observation, SlotView } from '../types.js';

export const NAME = 'demo';
export const CID = 'c-old';
export const NOW = new Date('2026-02-01T12:00:00.000Z');

export const podOf = (ordinal: number) => `${NAME}-${ordinal}`;

function pod(ordinal: number, running = true): MemberPod {
  const host = `${podOf(ordinal)}.${NAME}-headless`;
  return {
    ordinal,
    name: podOf(ordinal),
    running,
    ready: running,
    addresses: { api: `${host}:7000`, raft: `${host}:7001`, admin: `${host}:7002` },
  };
}

/** What a member answers on /_internal/status: a pristine follower unless `o` says more. */
export function internalStatus(id: string, o: Partial<InternalStatus> = {}): InternalStatus {
  return {
    node_id: id,
    cluster_id: null,
    initialized: false,
    status: 'Follower',
    current_term: 0,
    leader_id: null,
    log_index: 0,
    committed: 0,
    last_applied_log: 0,
    voters: [],
    learners: [],
    nodes: {},
    replication: null,
    restored_from: null,
    ...o,
  };
}

export interface MemberOptions {
  leader?: string | null;
  cluster?: string;
  term?: number;
  index?: number;
  role?: InternalStatus['status'];
  recoveredFrom?: InternalStatus['recovered_from'];
}

/** Slot `ordinal` holds initialized node `id` of CID (or `cluster`). */
export function member(ordinal: number, id: string, o: MemberOptions = {}): SlotView {
  return {
    pod: pod(ordinal),
    node: internalStatus(id, {
      cluster_id: o.cluster ?? CID,
      initialized: true,
      status: o.role ?? (o.leader === id ? 'Leader' : 'Follower'),
      current_term: o.term ?? 4,
      leader_id: o.leader ?? null,
      log_index: o.index ?? 10,
      last_log_term: o.term ?? 4,
      committed: o.index ?? 10,
      last_applied_log: o.index ?? 10,
      recovered_from: o.recoveredFrom ?? null,
    }),
  };
}

/** Slot `ordinal` holds a pristine node `id` (a new volume). */
export const pristine = (ordinal: number, id: string): SlotView => ({
  pod: pod(ordinal),
  node: internalStatus(id),
});

/** Slot `ordinal`'s pod does not run. */
export const down = (ordinal: number): SlotView => ({
  pod: pod(ordinal, false),
  node: null,
  error: 'not running',
});

export interface DocMember {
  reachable: boolean;
  voter?: boolean;
}

/** The aggregated status over `members` (fault tolerance from the reachable voters). */
export function doc(
  members: Record<string, DocMember>,
  leader: string | null,
  clusterId = CID,
): ClusterStatusDoc {
  const nodes: ClusterStatusDoc['nodes'] = {};
  for (const [id, m] of Object.entries(members)) {
    nodes[id] = {
      status: m.reachable ? (id === leader ? 'Leader' : 'Follower') : 'Unknown',
      is_reachable: m.reachable,
      log_index: m.reachable ? 10 : null,
      last_applied_log: m.reachable ? 10 : null,
      lag: m.reachable ? 0 : null,
      voter: m.voter ?? true,
      api_address: null,
      admin_address: null,
      leader_id: leader,
      term: 4,
    };
  }
  const voters = Object.values(nodes).filter((n) => n.voter);
  const ft = voters.filter((n) => n.is_reachable).length - (Math.floor(voters.length / 2) + 1);
  return {
    cluster_id: clusterId,
    leader_id: leader,
    current_term: 4,
    last_applied_log: 10,
    nodes,
    voters: voters.length,
    fault_tolerance: voters.length === 0 ? -1 : ft,
    healthy: ft >= 0 && leader !== null && voters.every((n) => n.is_reachable),
    errors: [],
    restored_from: null,
  };
}

export interface WorldOptions {
  slots: SlotView[];
  doc: ClusterStatusDoc | null;
  prev: ClusterStatus;
  recovery?: string;
  replicas?: number;
  operation?: Operation | null;
}

export function world(w: WorldOptions): Observation {
  const cluster = confluxClusterSchema.parse({
    apiVersion: API_VERSION,
    kind: 'ConfluxCluster',
    metadata: { name: NAME, namespace: 'default', generation: 2 },
    spec: {
      replicas: w.replicas ?? w.slots.length,
      ...(w.recovery ? { recovery: { forceNewClusterFrom: w.recovery } } : {}),
    },
    status: w.prev,
  });
  return {
    now: NOW,
    cluster,
    setSize: w.slots.length,
    slots: w.slots,
    volumes: w.slots.map((s) => s.pod.ordinal),
    status: w.doc,
    operation: w.operation ?? null,
  };
}

/** The previous status: `members` maps member id -> ordinal of the pod it ran in. */
export function prevStatus(
  members: Record<string, number>,
  extra: Partial<ClusterStatus> = {},
): ClusterStatus {
  return {
    clusterId: CID,
    members: Object.entries(members).map(([id, o]) => ({
      id,
      pod: podOf(o),
      role: 'Follower',
      reachable: true,
    })),
    ...extra,
  };
}

export function failedOp(kind: Operation['kind'], nodeId: string, code: string, finishedAt: Date): Operation {
  return {
    id: 'op-00000000-0000-0000-0000-000000000001',
    kind,
    node_id: nodeId,
    state: 'failed',
    step: 'removing',
    created_at: finishedAt.toISOString(),
    finished_at: finishedAt.toISOString(),
    error: { code, message: 'refused' },
    lag: null,
  };
}
