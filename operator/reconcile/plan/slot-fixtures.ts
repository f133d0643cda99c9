// Test support for plan() and its rules seen whole: a world described slot by slot (what kind of
// node each ordinal holds), observed as the operator would, and a table of one-step cases.

import { expect } from 'vitest';
import type {
  ClusterStatus as ClusterStatusDoc,
  InternalStatus,
  Operation,
} from '../../../node/api/admin-contract.js';
import {
  API_VERSION,
  type ClusterStatus,
  type ConfluxCluster,
  clusterStatusSchema,
  confluxClusterSchema,
} from '../../api/cluster.js';
import type { MemberPod } from '../../platform/platform.js';
import { findCondition } from '../conditions.js';
import { plan } from '../plan.js';
import type { Action, Observation, Plan, SlotView } from '../types.js';
import { internalStatus } from './member-fixtures.js';

// -- Factories -----------------------------------------------------------------------------------

export const NAME = 'demo';
export const CID = 'cluster-1111';
export const NOW = new Date('2025-06-01T12:00:00.000Z');
export const EARLIER = '2025-06-01T11:00:00.000Z';

/** Node ids are random and kept in the volume: deliberately unlike the pod names. */
export const nid = (ordinal: number) => `n${(ordinal * 7919 + 4242).toString(16)}`;
export const podOf = (ordinal: number) => `${NAME}-${ordinal}`;

export interface SpecOptions {
  replicas?: number;
  paused?: boolean;
  restore?: { snapshotUri: string; expectedClusterId?: string };
  reclaimPolicy?: 'Retain' | 'Delete';
}

export function makeCluster(spec: SpecOptions = {}, status?: ClusterStatus, generation = 3): ConfluxCluster {
  return confluxClusterSchema.parse({
    apiVersion: API_VERSION,
    kind: 'ConfluxCluster',
    metadata: { name: NAME, namespace: 'default', generation },
    spec: {
      replicas: spec.replicas ?? 3,
      paused: spec.paused ?? false,
      ...(spec.restore ? { restore: spec.restore } : {}),
      storage: { reclaimPolicy: spec.reclaimPolicy ?? 'Delete' },
    },
    ...(status ? { status } : {}),
  });
}

export function pod(ordinal: number, running = true, ready = running): MemberPod {
  const host = `${podOf(ordinal)}.${NAME}-headless`;
  return {
    ordinal,
    name: podOf(ordinal),
    running,
    ready,
    addresses: { api: `${host}:7000`, raft: `${host}:7001`, admin: `${host}:7002` },
  };
}

export function nodeView(ordinal: number, o: Partial<InternalStatus> = {}): InternalStatus {
  return internalStatus(nid(ordinal), o);
}

/** A slot whose node answers uninitialized (a fresh volume). */
export const fresh = (ordinal: number): SlotView => ({ pod: pod(ordinal), node: nodeView(ordinal) });
/** A slot whose pod runs but whose node does not answer. */
export const silent = (ordinal: number): SlotView => ({
  pod: pod(ordinal, true, false),
  node: null,
  error: 'timeout',
});
/** A slot whose pod is not running. */
export const stopped = (ordinal: number): SlotView => ({
  pod: pod(ordinal, false),
  node: null,
  error: 'not running',
});

/**
 * voter/learner: a member of CID; fresh: answers uninitialized; prepared: uninitialized but told
 * the cluster id it is about to join; removed: was a member of CID, removed; foreign: a member of
 * another cluster; silent: the pod runs, the node does not answer; stopped: the pod does not run.
 */
export type SlotKind =
  | 'voter'
  | 'learner'
  | 'fresh'
  | 'prepared'
  | 'silent'
  | 'stopped'
  | 'foreign'
  | 'removed';

export interface World {
  spec?: SpecOptions;
  /** The kind of each slot, by ordinal (the set size is this length unless setSize says). */
  slots: SlotKind[];
  setSize?: number;
  volumes?: number[];
  /** Ordinal of the leader (default: the lowest voter). */
  leader?: number | null;
  /** Members the aggregated status reports unreachable (by ordinal). */
  unreachable?: number[];
  /** Members that no slot holds any more (node ids). */
  orphans?: string[];
  /** Fields of the previous status (default: a bootstrapped cluster's, when any slot is a member). */
  prev?: ClusterStatus;
  operation?: Operation | null;
  /** Drop the aggregated status (no member answered it). */
  noStatus?: boolean;
  generation?: number;
}

export const isMember = (k: SlotKind) => k === 'voter' || k === 'learner';

/** An observation of a whole world: slots, their nodes, and the status they aggregate to. */
export function observe(w: World): Observation {
  const memberOrdinals = w.slots.flatMap((k, o) => (isMember(k) ? [o] : []));
  const voterOrdinals = w.slots.flatMap((k, o) => (k === 'voter' ? [o] : []));
  const silentMembers = w.slots.flatMap((k, o) =>
    k === 'silent' || k === 'stopped' ? (w.prev?.members?.some((m) => m.pod === podOf(o)) ? [o] : []) : [],
  );
  const bootstrapped = memberOrdinals.length > 0;
  const leader = w.leader === undefined ? (voterOrdinals[0] ?? null) : w.leader;
  const voters = [...voterOrdinals, ...silentMembers].map(nid);
  const slots = w.slots.map((kind, o): SlotView => {
    switch (kind) {
      case 'fresh':
        return fresh(o);
      case 'silent':
        return silent(o);
      case 'stopped':
        return stopped(o);
      case 'foreign':
        return {
          pod: pod(o),
          node: nodeView(o, { cluster_id: 'other-cluster', initialized: true, status: 'Follower' }),
        };
      case 'removed':
        return { pod: pod(o), node: nodeView(o, { cluster_id: CID, initialized: true }) };
      case 'prepared':
        return { pod: pod(o), node: nodeView(o, { cluster_id: CID }) };
      default:
        return {
          pod: pod(o),
          node: nodeView(o, {
            cluster_id: CID,
            initialized: true,
            status: o === leader ? 'Leader' : kind === 'learner' ? 'Learner' : 'Follower',
            leader_id: leader === null ? null : nid(leader),
            voters: [voters],
            learners: w.slots.flatMap((k, i) => (k === 'learner' ? [nid(i)] : [])),
          }),
        };
    }
  });
  const unreachable = new Set([
    ...(w.unreachable ?? []).map(nid),
    ...(w.orphans ?? []),
    ...silentMembers.map(nid),
  ]);
  const nodes: ClusterStatusDoc['nodes'] = {};
  const add = (id: string, voter: boolean, role: ClusterStatusDoc['nodes'][string]['status']) => {
    const reachable = !unreachable.has(id);
    nodes[id] = {
      status: reachable ? role : 'Unknown',
      is_reachable: reachable,
      log_index: reachable ? 10 : null,
      last_applied_log: reachable ? 10 : null,
      lag: reachable ? 0 : null,
      voter,
      api_address: null,
      admin_address: null,
      leader_id: leader === null ? null : nid(leader),
      term: 4,
    };
  };
  for (const o of memberOrdinals) {
    add(
      nid(o),
      w.slots[o] === 'voter',
      o === leader ? 'Leader' : w.slots[o] === 'voter' ? 'Follower' : 'Learner',
    );
  }
  for (const o of silentMembers) add(nid(o), true, 'Follower');
  for (const id of w.orphans ?? []) add(id, true, 'Follower');
  const allVoters = Object.entries(nodes).filter(([, n]) => n.voter);
  const reachableVoters = allVoters.filter(([, n]) => n.is_reachable).length;
  const ft = allVoters.length === 0 ? -1 : reachableVoters - (Math.floor(allVoters.length / 2) + 1);
  const errors = [...unreachable].sort().map((id) => `${id} is unreachable`);
  if (leader === null) errors.unshift('no leader');
  const doc: ClusterStatusDoc | null =
    bootstrapped && !w.noStatus
      ? {
          cluster_id: CID,
          leader_id: leader === null ? null : nid(leader),
          current_term: 4,
          last_applied_log: 10,
          nodes,
          voters: allVoters.length,
          fault_tolerance: ft,
          healthy: errors.length === 0 && ft >= 0 && leader !== null,
          errors,
          restored_from: null,
        }
      : null;
  const prev: ClusterStatus | undefined =
    w.prev ??
    (bootstrapped
      ? {
          clusterId: CID,
          members: memberOrdinals.map((o) => ({
            id: nid(o),
            pod: podOf(o),
            role: 'Follower',
            reachable: true,
          })),
        }
      : undefined);
  return {
    now: NOW,
    cluster: makeCluster(w.spec, prev, w.generation),
    setSize: w.setSize ?? w.slots.length,
    slots,
    volumes: w.volumes ?? slots.map((s) => s.pod.ordinal),
    status: doc,
    operation: w.operation ?? null,
  };
}

export function op(o: Partial<Operation> & Pick<Operation, 'kind' | 'node_id' | 'state'>): Operation {
  return {
    id: 'op-1',
    step: o.state === 'failed' ? 'removing' : 'queued',
    created_at: EARLIER,
    finished_at: o.state === 'failed' || o.state === 'succeeded' ? EARLIER : null,
    error: null,
    lag: null,
    ...o,
  };
}

export const prevMembers = (ordinals: number[]) =>
  ordinals.map((o) => ({ id: nid(o), pod: podOf(o), role: 'Follower', reachable: true }));

export const cond = (p: Plan, type: string) => findCondition(p.status.conditions, type);
export const eventReasons = (p: Plan) => p.events.map((e) => e.reason);

// -- Table-driven branches -----------------------------------------------------------------------

export interface Case {
  name: string;
  world: World;
  action: Action | ((a: Action) => void);
  check?: (p: Plan) => void;
}

export const waitAction = (a: Action) => expect(a.type).toBe('wait');

/** One step of plan() on a case's world: the action it decides, a valid status, the case's checks. */
export function runCase({ world, action, check }: Case): void {
  const p = plan(observe(world));
  if (typeof action === 'function') action(p.action);
  else expect(p.action).toEqual(action);
  expect(clusterStatusSchema.parse(p.status)).toEqual(p.status);
  check?.(p);
}
