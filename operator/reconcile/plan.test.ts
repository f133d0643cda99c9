import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type {
  ClusterStatus as ClusterStatusDoc,
  InternalStatus,
  Operation,
} from '../../node/api/admin-contract.js';
import {
  API_VERSION,
  type ClusterStatus,
  type ConfluxCluster,
  clusterStatusSchema,
  confluxClusterSchema,
} from '../api/cluster.js';
import type { MemberPod } from '../platform/platform.js';
import { findCondition } from './conditions.js';
import { internalStatus } from './plan/member-fixtures.js';
import { plan, QUORUM_RETRY_MS, REQUEUE_MS, removalRisk, selectorOf } from './plan.js';
import type { Action, Observation, Plan, SlotView } from './types.js';

// -- Factories -----------------------------------------------------------------------------------

const NAME = 'demo';
const CID = 'cluster-1111';
const NOW = new Date('2025-06-01T12:00:00.000Z');
const EARLIER = '2025-06-01T11:00:00.000Z';

/** Node ids are random and kept in the volume: deliberately unlike the pod names. */
const nid = (ordinal: number) => `n${(ordinal * 7919 + 4242).toString(16)}`;
const podOf = (ordinal: number) => `${NAME}-${ordinal}`;

interface SpecOptions {
  replicas?: number;
  paused?: boolean;
  restore?: { snapshotUri: string; expectedClusterId?: string };
  reclaimPolicy?: 'Retain' | 'Delete';
}

function makeCluster(spec: SpecOptions = {}, status?: ClusterStatus, generation = 3): ConfluxCluster {
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

function pod(ordinal: number, running = true, ready = running): MemberPod {
  const host = `${podOf(ordinal)}.${NAME}-headless`;
  return {
    ordinal,
    name: podOf(ordinal),
    running,
    ready,
    addresses: { api: `${host}:7000`, raft: `${host}:7001`, admin: `${host}:7002` },
  };
}

function nodeView(ordinal: number, o: Partial<InternalStatus> = {}): InternalStatus {
  return internalStatus(nid(ordinal), o);
}

/** A slot whose node answers uninitialized (a fresh volume). */
const fresh = (ordinal: number): SlotView => ({ pod: pod(ordinal), node: nodeView(ordinal) });
/** A slot whose pod runs but whose node does not answer. */
const silent = (ordinal: number): SlotView => ({
  pod: pod(ordinal, true, false),
  node: null,
  error: 'timeout',
});
/** A slot whose pod is not running. */
const stopped = (ordinal: number): SlotView => ({
  pod: pod(ordinal, false),
  node: null,
  error: 'not running',
});

/**
 * voter/learner: a member of CID; fresh: answers uninitialized; prepared: uninitialized but told
 * the cluster id it is about to join; removed: was a member of CID, removed; foreign: a member of
 * another cluster; silent: the pod runs, the node does not answer; stopped: the pod does not run.
 */
type SlotKind = 'voter' | 'learner' | 'fresh' | 'prepared' | 'silent' | 'stopped' | 'foreign' | 'removed';

interface World {
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

const isMember = (k: SlotKind) => k === 'voter' || k === 'learner';

/** An observation of a whole world: slots, their nodes, and the status they aggregate to. */
function observe(w: World): Observation {
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

function op(o: Partial<Operation> & Pick<Operation, 'kind' | 'node_id' | 'state'>): Operation {
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

const prevMembers = (ordinals: number[]) =>
  ordinals.map((o) => ({ id: nid(o), pod: podOf(o), role: 'Follower', reachable: true }));

const cond = (p: Plan, type: string) => findCondition(p.status.conditions, type);
const eventReasons = (p: Plan) => p.events.map((e) => e.reason);

// -- Table-driven branches -----------------------------------------------------------------------

interface Case {
  name: string;
  world: World;
  action: Action | ((a: Action) => void);
  check?: (p: Plan) => void;
}

const waitAction = (a: Action) => expect(a.type).toBe('wait');

const cases: Case[] = [
  // Bootstrap
  {
    name: 'fresh cluster without slots: create 3',
    world: { slots: [] },
    action: { type: 'ensure-members', size: 3, minAvailable: 2 },
    check: (p) => {
      expect(p.status.phase).toBe('Pending');
      expect(p.status.operation).toMatchObject({ kind: 'Bootstrap', step: 'creating-members' });
      expect(cond(p, 'Bootstrapped')?.status).toBe('False');
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'True', reason: 'Bootstrapping' });
    },
  },
  {
    name: 'fewer slots than replicas before bootstrap: ensure all of them',
    world: { slots: ['fresh'] },
    action: { type: 'ensure-members', size: 3, minAvailable: 2 },
  },
  {
    name: 'slots up but not answering: wait',
    world: { slots: ['fresh', 'silent', 'stopped'] },
    action: (a) => {
      expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.progress });
      expect(a.type === 'wait' && a.reason).toContain('1 (timeout), 2 (not running)');
    },
    check: (p) => {
      expect(p.status.phase).toBe('Bootstrapping');
      expect(p.status.operation).toMatchObject({ kind: 'Bootstrap', step: 'waiting-for-members' });
    },
  },
  {
    name: 'all uninitialized: initialize [0,1,2]',
    world: { slots: ['fresh', 'fresh', 'fresh'] },
    action: { type: 'initialize', ordinals: [0, 1, 2] },
    check: (p) => {
      expect(p.status.operation).toMatchObject({ kind: 'Bootstrap', step: 'initializing' });
      expect(eventReasons(p)).toContain('Initializing');
    },
  },
  {
    name: 'one slot already in a cluster: never initialize',
    world: { slots: ['fresh', 'foreign', 'fresh'], prev: {} },
    action: (a) => expect(a.type).not.toBe('initialize'),
    check: (p) => expect(cond(p, 'Bootstrapped')?.status).toBe('True'),
  },
  {
    name: 'one slot prepared for a cluster but uninitialized: never initialize',
    world: { slots: ['fresh', 'prepared', 'fresh'], prev: {} },
    action: (a) => expect(a.type).not.toBe('initialize'),
  },
  // Restore
  {
    name: 'restore: one slot first',
    world: { spec: { restore: { snapshotUri: 's3://b/snap-1' } }, slots: [] },
    action: { type: 'ensure-members', size: 1, minAvailable: 1 },
    check: (p) => {
      expect(p.status.phase).toBe('Restoring');
      expect(p.status.operation).toMatchObject({ kind: 'Restore', step: 'creating-member', ordinal: 0 });
    },
  },
  {
    name: 'restore: shrink a never-bootstrapped set to one slot',
    world: { spec: { restore: { snapshotUri: 's3://b/snap-1' } }, slots: ['fresh', 'fresh', 'fresh'] },
    action: { type: 'ensure-members', size: 1, minAvailable: 1 },
  },
  {
    name: 'restore: wait for slot 0 to answer',
    world: { spec: { restore: { snapshotUri: 's3://b/snap-1' } }, slots: ['silent'] },
    action: waitAction,
    check: (p) => {
      expect(p.status.phase).toBe('Restoring');
      expect(p.status.operation).toMatchObject({ kind: 'Restore', step: 'waiting-for-member' });
    },
  },
  {
    name: 'restore: slot 0 answers uninitialized -> restore',
    world: {
      spec: { restore: { snapshotUri: 's3://b/snap-1', expectedClusterId: 'old-1' } },
      slots: ['fresh'],
    },
    action: { type: 'restore', snapshotUri: 's3://b/snap-1', expectedClusterId: 'old-1' },
    check: (p) => {
      expect(p.status.operation).toMatchObject({ kind: 'Restore', step: 'restoring' });
      expect(cond(p, 'Bootstrapped')).toMatchObject({ status: 'False', reason: 'Restoring' });
    },
  },
  {
    name: 'restore refused on a bootstrapped cluster: event, nothing restored, reconciling goes on',
    world: { spec: { restore: { snapshotUri: 's3://b/snap-1' } }, slots: ['voter', 'voter', 'voter'] },
    action: { type: 'none' },
    check: (p) => {
      expect(p.events).toContainEqual(
        expect.objectContaining({
          type: 'Warning',
          reason: 'RestoreRefused',
          message: expect.stringContaining(CID),
        }),
      );
      expect(cond(p, 'Stalled')?.status).toBe('False');
      expect(cond(p, 'Ready')?.status).toBe('True');
    },
  },
  {
    name: 'restored cluster growing: no RestoreRefused, grows',
    world: {
      spec: { restore: { snapshotUri: 's3://b/snap-1' } },
      slots: ['voter'],
      prev: {
        clusterId: CID,
        restoredFrom: { clusterId: 'old-1', uri: 's3://b/snap-1' },
        members: prevMembers([0]),
      },
    },
    action: { type: 'ensure-members', size: 2, minAvailable: 2 },
    check: (p) => {
      expect(eventReasons(p)).not.toContain('RestoreRefused');
      expect(p.status.restoredFrom).toEqual({ clusterId: 'old-1', uri: 's3://b/snap-1' });
      expect(cond(p, 'Bootstrapped')).toMatchObject({ status: 'True', reason: 'Restored' });
    },
  },
  // Scale up 3 -> 5, step by step
  {
    name: 'scale-up 3->5: ensure 4',
    world: { spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter'] },
    action: { type: 'ensure-members', size: 4, minAvailable: 3 },
    check: (p) => {
      expect(p.status.phase).toBe('Scaling');
      expect(p.status.operation).toMatchObject({
        kind: 'ScaleUp',
        ordinal: 3,
        step: 'growing',
        startedAt: NOW.toISOString(),
      });
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'True', reason: 'ScalingUp' });
      expect(cond(p, 'Ready')).toMatchObject({ status: 'False', reason: 'ReplicasMismatch' });
    },
  },
  {
    name: 'scale-up 3->5: slot 3 starting -> wait',
    world: { spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter', 'silent'] },
    action: waitAction,
  },
  {
    name: 'scale-up 3->5: add 3',
    world: { spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter', 'fresh'] },
    action: { type: 'add-member', ordinal: 3 },
    check: (p) => expect(p.status.operation).toMatchObject({ kind: 'ScaleUp', ordinal: 3, step: 'adding' }),
  },
  {
    name: 'scale-up 3->5: add of 3 running -> wait, operation kept',
    world: {
      spec: { replicas: 5 },
      slots: ['voter', 'voter', 'voter', 'learner'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleUp', ordinal: 3, step: 'adding', operationId: 'op-1', startedAt: EARLIER },
      },
      operation: op({ kind: 'add-node', node_id: nid(3), state: 'running', step: 'catching-up' }),
    },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.progress }),
    check: (p) =>
      expect(p.status.operation).toEqual({
        kind: 'ScaleUp',
        ordinal: 3,
        step: 'adding',
        operationId: 'op-1',
        startedAt: EARLIER,
      }),
  },
  {
    name: 'scale-up 3->5: ensure 5',
    world: { spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter', 'voter'] },
    action: { type: 'ensure-members', size: 5, minAvailable: 4 },
  },
  {
    name: 'scale-up 3->5: add 4',
    world: { spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter', 'voter', 'fresh'] },
    action: { type: 'add-member', ordinal: 4 },
  },
  {
    name: 'scale-up: a learner left by an interrupted add is added again',
    world: { spec: { replicas: 4 }, slots: ['voter', 'voter', 'voter', 'learner'] },
    action: { type: 'add-member', ordinal: 3 },
  },
  {
    name: 'scale-up: failed add -> Warning, Degraded, retried',
    world: {
      spec: { replicas: 4 },
      slots: ['voter', 'voter', 'voter', 'learner'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleUp', ordinal: 3, step: 'adding', operationId: 'op-1', startedAt: EARLIER },
      },
      operation: op({
        kind: 'add-node',
        node_id: nid(3),
        state: 'failed',
        error: { code: 'CATCH_UP_TIMEOUT', message: 'still 900 entries behind' },
      }),
    },
    action: { type: 'add-member', ordinal: 3 },
    check: (p) => {
      expect(p.events).toContainEqual(
        expect.objectContaining({ type: 'Warning', reason: 'AddMemberFailed' }),
      );
      expect(cond(p, 'Degraded')).toMatchObject({ status: 'True', reason: 'AddMemberFailed' });
      expect(p.status.operation).toMatchObject({ startedAt: EARLIER });
    },
  },
  {
    name: 'scale-up: a retired node id can never rejoin -> Stalled RetiredMember',
    world: {
      spec: { replicas: 4 },
      slots: ['voter', 'voter', 'voter', 'removed'],
      operation: op({
        kind: 'add-node',
        node_id: nid(3),
        state: 'failed',
        error: { code: 'RETIRED_NODE_ID', message: 'removed before' },
      }),
    },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.stalled }),
    check: (p) => expect(cond(p, 'Stalled')).toMatchObject({ status: 'True', reason: 'RetiredMember' }),
  },
  {
    name: "a slot holding another cluster's node: Stalled ForeignMember, no add",
    world: { spec: { replicas: 4 }, slots: ['voter', 'voter', 'voter', 'foreign'] },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.stalled }),
    check: (p) => {
      expect(cond(p, 'Stalled')).toMatchObject({ status: 'True', reason: 'ForeignMember' });
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'False', reason: 'ForeignMember' });
      expect(p.events).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'ForeignMember' }));
    },
  },
  {
    name: 'no leader: no membership change, wait',
    world: { spec: { replicas: 4 }, slots: ['voter', 'voter', 'voter', 'fresh'], leader: null },
    action: waitAction,
  },
  // Scale down 5 -> 3
  {
    name: 'scale-down 5->3: the leader is on slot 4 -> transfer first',
    world: { spec: { replicas: 3 }, slots: ['voter', 'voter', 'voter', 'voter', 'voter'], leader: 4 },
    action: { type: 'transfer-leader', ordinal: 4 },
    check: (p) => {
      expect(p.status.operation).toMatchObject({
        kind: 'ScaleDown',
        ordinal: 4,
        step: 'transferring-leader',
      });
      expect(p.status.phase).toBe('Scaling');
    },
  },
  {
    name: 'scale-down 5->3: remove slot 4',
    world: { spec: { replicas: 3 }, slots: ['voter', 'voter', 'voter', 'voter', 'voter'] },
    action: { type: 'remove-member', ordinal: 4, nodeId: nid(4) },
    check: (p) => {
      expect(p.status.operation).toMatchObject({ kind: 'ScaleDown', ordinal: 4, step: 'removing' });
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'True', reason: 'ScalingDown' });
    },
  },
  {
    name: 'scale-down 5->3: slot 4 removed -> shrink to 4',
    world: { spec: { replicas: 3 }, slots: ['voter', 'voter', 'voter', 'voter', 'removed'] },
    action: { type: 'ensure-members', size: 4, minAvailable: 3 },
    check: (p) =>
      expect(p.status.operation).toMatchObject({ kind: 'ScaleDown', ordinal: 4, step: 'shrinking' }),
  },
  {
    name: 'scale-down 5->3: shrunk, pod 4 still terminating -> wait',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter', 'removed'],
      setSize: 4,
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: waitAction,
    check: (p) =>
      expect(p.status.operation).toMatchObject({ kind: 'ScaleDown', ordinal: 4, step: 'shrinking' }),
  },
  {
    name: 'scale-down 5->3: shrunk, reclaimPolicy Delete -> delete-volume 4',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: { type: 'delete-volume', ordinal: 4 },
    check: (p) =>
      expect(p.status.operation).toEqual({
        kind: 'ScaleDown',
        ordinal: 4,
        step: 'reclaiming',
        startedAt: EARLIER,
      }),
  },
  {
    name: 'scale-down 5->3: volume 4 reclaimed -> next member (remove slot 3)',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'reclaiming', startedAt: EARLIER },
      },
    },
    action: { type: 'remove-member', ordinal: 3, nodeId: nid(3) },
    check: (p) =>
      expect(p.status.operation).toMatchObject({
        kind: 'ScaleDown',
        ordinal: 3,
        step: 'removing',
        startedAt: NOW.toISOString(),
      }),
  },
  {
    name: 'scale-down 5->3: reclaimPolicy Retain -> no delete-volume, next member',
    world: {
      spec: { replicas: 3, reclaimPolicy: 'Retain' },
      slots: ['voter', 'voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: { type: 'remove-member', ordinal: 3, nodeId: nid(3) },
    check: (p) => expect(eventReasons(p)).toContain('VolumeRetained'),
  },
  {
    name: 'scale-down done with Retain: converged, operation cleared',
    world: {
      spec: { replicas: 3, reclaimPolicy: 'Retain' },
      slots: ['voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2]),
        operation: { kind: 'ScaleDown', ordinal: 3, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: { type: 'none' },
    check: (p) => expect(p.status.operation).toBeNull(),
  },
  {
    name: 'restart mid-operation: ScaleDown shrinking of 4 and slot 4 gone -> delete-volume 4',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: { type: 'delete-volume', ordinal: 4 },
  },
  {
    name: 'a volume left beyond the set that no status remembers is reclaimed (Delete)',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter'],
      volumes: [0, 1, 2, 3],
      prev: { clusterId: CID, members: prevMembers([0, 1, 2]) },
    },
    action: { type: 'delete-volume', ordinal: 3 },
  },
  {
    name: 'a volume left beyond the set is kept with Retain',
    world: {
      spec: { replicas: 3, reclaimPolicy: 'Retain' },
      slots: ['voter', 'voter', 'voter'],
      volumes: [0, 1, 2, 3],
      prev: { clusterId: CID, members: prevMembers([0, 1, 2]) },
    },
    action: { type: 'none' },
  },
  {
    name: 'a volume left beyond the set is kept while a member is not accounted for by a slot',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter'],
      volumes: [0, 1, 2, 3],
      orphans: ['ghost'],
      prev: { clusterId: CID, members: prevMembers([0, 1, 2]) },
    },
    action: (a) => expect(a.type).not.toBe('delete-volume'),
  },
  {
    name: 'never deletes the volume of a node the last status still counts as a member',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter'],
      noStatus: true,
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 3, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: waitAction,
    check: (p) => {
      expect(p.events).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'VolumeKept' }));
      expect(p.status.operation).toBeNull();
    },
  },
  {
    name: 'reclaim comes before growing again (the removed id must not come back)',
    world: {
      spec: { replicas: 5 },
      slots: ['voter', 'voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: { type: 'delete-volume', ordinal: 4 },
  },
  {
    name: 'remove refused by the admin API (QUORUM_AT_RISK) -> Stalled, wait',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: {
          kind: 'ScaleDown',
          ordinal: 3,
          step: 'removing',
          operationId: 'op-1',
          startedAt: EARLIER,
        },
      },
      operation: op({
        kind: 'remove-node',
        node_id: nid(3),
        state: 'failed',
        finished_at: new Date(NOW.getTime() - 1_000).toISOString(),
        error: { code: 'QUORUM_AT_RISK', message: 'a quorum needs 2' },
      }),
    },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: QUORUM_RETRY_MS - 1_000 }),
    check: (p) => {
      expect(cond(p, 'Stalled')).toMatchObject({ status: 'True', reason: 'QuorumAtRisk' });
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'False', reason: 'QuorumAtRisk' });
      expect(p.status.operation).toMatchObject({
        kind: 'ScaleDown',
        ordinal: 3,
        step: 'removing',
        operationId: 'op-1',
      });
    },
  },
  {
    name: 'remove refused long ago -> retried, still Stalled until a new operation runs',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter'],
      operation: op({
        kind: 'remove-node',
        node_id: nid(3),
        state: 'failed',
        finished_at: new Date(NOW.getTime() - QUORUM_RETRY_MS - 1).toISOString(),
        error: { code: 'QUORUM_AT_RISK', message: 'a quorum needs 2' },
      }),
    },
    action: { type: 'remove-member', ordinal: 3, nodeId: nid(3) },
    check: (p) => expect(cond(p, 'Stalled')?.status).toBe('True'),
  },
  {
    name: 'removal would lose the quorum -> Stalled QuorumAtRisk without asking',
    world: { spec: { replicas: 2 }, slots: ['voter', 'voter', 'voter'], unreachable: [1] },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.stalled }),
    check: (p) => {
      expect(cond(p, 'Stalled')).toMatchObject({ status: 'True', reason: 'QuorumAtRisk' });
      expect(p.events).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'QuorumAtRisk' }));
    },
  },
  {
    name: 'scale-down of a down member whose id the status recorded: remove it',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter', 'stopped'],
      prev: { clusterId: CID, members: prevMembers([0, 1, 2, 3, 4]) },
    },
    action: { type: 'remove-member', ordinal: 4, nodeId: nid(4) },
  },
  {
    name: 'scale-down of a silent slot whose node is unknown while a member is unaccounted for: wait',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter', 'silent'],
      orphans: ['nlost'],
    },
    action: waitAction,
  },
  {
    name: 'scale-down of a never-added slot: shrink directly',
    world: { spec: { replicas: 3 }, slots: ['voter', 'voter', 'voter', 'fresh'] },
    action: { type: 'ensure-members', size: 3, minAvailable: 2 },
  },
  {
    name: 'remove operation running: wait for it',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: {
          kind: 'ScaleDown',
          ordinal: 3,
          step: 'removing',
          operationId: 'op-1',
          startedAt: EARLIER,
        },
      },
      operation: op({ kind: 'remove-node', node_id: nid(3), state: 'running', step: 'removing' }),
    },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.progress }),
    check: (p) => expect(cond(p, 'Progressing')).toMatchObject({ status: 'True', reason: 'ScalingDown' }),
  },
  // Paused
  {
    name: 'paused: wait, nothing else',
    world: {
      spec: { replicas: 5, paused: true },
      slots: ['voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2]),
        operation: { kind: 'ScaleUp', ordinal: 3, step: 'growing', startedAt: EARLIER },
      },
    },
    action: { type: 'wait', reason: 'paused (spec.paused)', requeueMs: REQUEUE_MS.paused },
    check: (p) => {
      expect(p.status.phase).toBe('Paused');
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'False', reason: 'Paused' });
      expect(p.status.operation).toMatchObject({ kind: 'ScaleUp', step: 'growing' });
      expect(p.events).toEqual([]);
    },
  },
  {
    name: 'paused before bootstrap: no initialize',
    world: { spec: { paused: true }, slots: ['fresh', 'fresh', 'fresh'] },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.paused }),
  },
  // Health
  {
    name: 'a member down: wait, never remove it',
    world: {
      slots: ['voter', 'voter', 'stopped'],
      prev: { clusterId: CID, members: prevMembers([0, 1, 2]) },
    },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.health }),
    check: (p) => {
      expect(p.status.phase).toBe('Degraded');
      expect(cond(p, 'Degraded')).toMatchObject({ status: 'True', reason: 'MemberUnreachable' });
      expect(cond(p, 'Available')?.status).toBe('True');
      expect(cond(p, 'Ready')?.status).toBe('False');
      expect(p.status.members?.find((m) => m.id === nid(2))).toMatchObject({
        pod: podOf(2),
        reachable: false,
      });
    },
  },
  {
    name: 'an unhealthy but complete cluster: wait for health',
    world: { slots: ['voter', 'voter', 'voter'], unreachable: [2] },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.health }),
    check: (p) => expect(cond(p, 'Progressing')).toMatchObject({ status: 'False', reason: 'AwaitingHealth' }),
  },
  {
    name: 'no member answers the cluster status: wait, Degraded, Available Unknown',
    world: { slots: ['voter', 'voter', 'voter'], noStatus: true },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.health }),
    check: (p) => {
      expect(cond(p, 'Available')?.status).toBe('Unknown');
      expect(cond(p, 'Degraded')).toMatchObject({ status: 'True', reason: 'StatusUnavailable' });
      expect(p.status.clusterId).toBe(CID);
    },
  },
  {
    name: 'every slot gone after bootstrap: recreate them',
    world: { slots: [], prev: { clusterId: CID, members: prevMembers([0, 1, 2]) } },
    action: { type: 'ensure-members', size: 3, minAvailable: 2 },
  },
  {
    name: 'the members answer for another cluster: Stalled ClusterIdMismatch',
    world: {
      slots: ['voter', 'voter', 'voter'],
      prev: { clusterId: 'cluster-2222', members: prevMembers([0, 1, 2]) },
    },
    action: waitAction,
    check: (p) => expect(cond(p, 'Stalled')).toMatchObject({ status: 'True', reason: 'ClusterIdMismatch' }),
  },
  // Converged
  {
    name: 'converged: none, Ready True',
    world: { slots: ['voter', 'voter', 'voter'] },
    action: { type: 'none' },
    check: (p) => {
      expect(p.status.phase).toBe('Running');
      expect(p.status.operation).toBeNull();
      for (const [type, status] of [
        ['Ready', 'True'],
        ['Available', 'True'],
        ['Bootstrapped', 'True'],
        ['Progressing', 'False'],
        ['Degraded', 'False'],
        ['Stalled', 'False'],
      ]) {
        expect(cond(p, type as string)).toMatchObject({ status, observedGeneration: 3 });
      }
      expect(p.events).toEqual([]);
    },
  },
];

describe('plan: one step per branch', () => {
  it.each(cases)('$name', ({ world, action, check }) => {
    const p = plan(observe(world));
    if (typeof action === 'function') action(p.action);
    else expect(p.action).toEqual(action);
    expect(clusterStatusSchema.parse(p.status)).toEqual(p.status);
    check?.(p);
  });
});

// -- Status details ------------------------------------------------------------------------------

describe('plan: status', () => {
  it('reports the observed shape of the cluster', () => {
    const world: World = { slots: ['voter', 'voter', 'voter'], leader: 1 };
    const obs = observe(world);
    obs.slots[2] = { ...obs.slots[2]!, pod: pod(2, true, false) };
    obs.cluster = makeCluster(
      {},
      {
        clusterId: CID,
        lastBackup: { time: EARLIER, uri: 's3://b/x', revision: 7 },
        nextBackup: '2025-06-02T00:00:00.000Z',
        conditions: [
          {
            type: 'BackupSucceeded',
            status: 'True',
            reason: 'Completed',
            message: 'ok',
            lastTransitionTime: EARLIER,
          },
        ],
      },
      9,
    );
    const p = plan(obs);
    expect(p.status).toMatchObject({
      observedGeneration: 9,
      replicas: 3,
      readyReplicas: 2,
      selector: 'app.kubernetes.io/instance=demo,app.kubernetes.io/name=conflux',
      clusterId: CID,
      leaderId: nid(1),
      term: 4,
      faultTolerance: 1,
      lastBackup: { time: EARLIER, uri: 's3://b/x', revision: 7 },
      nextBackup: '2025-06-02T00:00:00.000Z',
    });
    expect(p.status.members).toEqual([
      { id: nid(0), pod: podOf(0), role: 'Follower', reachable: true, lag: 0 },
      { id: nid(1), pod: podOf(1), role: 'Leader', reachable: true, lag: 0 },
      { id: nid(2), pod: podOf(2), role: 'Follower', reachable: true, lag: 0 },
    ]);
    expect(cond(p, 'BackupSucceeded')).toEqual({
      type: 'BackupSucceeded',
      status: 'True',
      reason: 'Completed',
      message: 'ok',
      lastTransitionTime: EARLIER,
    });
    expect(selectorOf('x')).toBe('app.kubernetes.io/instance=x,app.kubernetes.io/name=conflux');
  });

  it('keeps lastTransitionTime of conditions whose status did not change', () => {
    const first = plan(observe({ slots: ['voter', 'voter', 'voter'] }));
    const later = observe({ slots: ['voter', 'voter', 'voter'], prev: { ...first.status } });
    const second = plan({ ...later, now: new Date(NOW.getTime() + 60_000) });
    for (const c of second.status.conditions ?? []) {
      expect(c.lastTransitionTime).toBe(NOW.toISOString());
    }
    // One member lost: Ready and Degraded flip, Available does not.
    const third = plan({
      ...observe({ slots: ['voter', 'voter', 'stopped'], prev: { ...second.status } }),
      now: new Date(NOW.getTime() + 120_000),
    });
    const at = (type: string) => cond(third, type)?.lastTransitionTime;
    expect(at('Available')).toBe(NOW.toISOString());
    expect(at('Ready')).toBe(new Date(NOW.getTime() + 120_000).toISOString());
    expect(at('Degraded')).toBe(new Date(NOW.getTime() + 120_000).toISOString());
  });

  it('derives restoredFrom from the nodes when the status missed it (crash after restore)', () => {
    const obs = observe({
      spec: { restore: { snapshotUri: 's3://b/snap-1' } },
      slots: ['voter'],
      prev: { clusterId: CID, members: prevMembers([0]) },
    });
    obs.status = { ...obs.status!, restored_from: { cluster_id: 'old-1', uri: 's3://b/snap-1', index: 40 } };
    const p = plan(obs);
    expect(p.status.restoredFrom).toEqual({ clusterId: 'old-1', uri: 's3://b/snap-1' });
    expect(eventReasons(p)).not.toContain('RestoreRefused');
  });

  it('removalRisk: a voter whose removal leaves no reachable quorum', () => {
    const doc = observe({ slots: ['voter', 'voter', 'voter'], unreachable: [2] }).status!;
    expect(removalRisk(doc, nid(1))).toContain('a quorum needs 2');
    expect(removalRisk(doc, nid(2))).toBeNull();
    const single = observe({ slots: ['voter'] }).status!;
    expect(removalRisk(single, nid(0))).toContain('last voter');
  });
});

// -- Whole flows, pass after pass ----------------------------------------------------------------

describe('plan: flows', () => {
  it('scale-down 5->3 with the leader on slot 4: transfer, remove, shrink, reclaim, repeat', () => {
    const steps: Action[] = [];
    let slots: SlotKind[] = ['voter', 'voter', 'voter', 'voter', 'voter'];
    let leader = 4;
    let prev: ClusterStatus | undefined;
    for (let pass = 0; pass < 20; pass++) {
      const p = plan(observe({ spec: { replicas: 3 }, slots, leader, ...(prev ? { prev } : {}) }));
      steps.push(p.action);
      const a = p.action;
      if (a.type === 'none') break;
      if (a.type === 'transfer-leader') leader = 0;
      else if (a.type === 'remove-member') slots = slots.map((k, o) => (o === a.ordinal ? 'removed' : k));
      else if (a.type === 'ensure-members') slots = slots.slice(0, a.size);
      // The reconciler writes the status after the step; members come from the observation.
      prev = { ...p.status, members: prevMembers(slots.flatMap((k, o) => (k === 'voter' ? [o] : []))) };
    }
    expect(steps).toEqual([
      { type: 'transfer-leader', ordinal: 4 },
      { type: 'remove-member', ordinal: 4, nodeId: nid(4) },
      { type: 'ensure-members', size: 4, minAvailable: 3 },
      { type: 'delete-volume', ordinal: 4 },
      { type: 'remove-member', ordinal: 3, nodeId: nid(3) },
      { type: 'ensure-members', size: 3, minAvailable: 2 },
      { type: 'delete-volume', ordinal: 3 },
      { type: 'none' },
    ]);
  });

  it('scale-up 3->5: one slot and one add at a time', () => {
    const steps: Action[] = [];
    let slots: SlotKind[] = ['voter', 'voter', 'voter'];
    for (let pass = 0; pass < 20; pass++) {
      const p = plan(observe({ spec: { replicas: 5 }, slots }));
      steps.push(p.action);
      const a = p.action;
      if (a.type === 'none') break;
      if (a.type === 'ensure-members') slots = [...slots, 'silent'];
      else if (a.type === 'wait') slots = slots.map((k) => (k === 'silent' ? 'fresh' : k));
      else if (a.type === 'add-member') slots = slots.map((k, o) => (o === a.ordinal ? 'voter' : k));
    }
    expect(steps.map((a) => (a.type === 'wait' ? 'wait' : a))).toEqual([
      { type: 'ensure-members', size: 4, minAvailable: 3 },
      'wait',
      { type: 'add-member', ordinal: 3 },
      { type: 'ensure-members', size: 5, minAvailable: 4 },
      'wait',
      { type: 'add-member', ordinal: 4 },
      { type: 'none' },
    ]);
  });

  it('restore: one slot, restore, then grow to replicas', () => {
    const restore = { snapshotUri: 's3://b/snap-1' };
    const spec = { replicas: 3, restore };
    expect(plan(observe({ spec, slots: [] })).action).toEqual({
      type: 'ensure-members',
      size: 1,
      minAvailable: 1,
    });
    expect(plan(observe({ spec, slots: ['silent'] })).action.type).toBe('wait');
    expect(plan(observe({ spec, slots: ['fresh'] })).action).toEqual({
      type: 'restore',
      snapshotUri: restore.snapshotUri,
    });
    const restored: ClusterStatus = {
      clusterId: CID,
      restoredFrom: { clusterId: 'old-1', uri: restore.snapshotUri },
      members: prevMembers([0]),
    };
    const grow = plan(observe({ spec, slots: ['voter'], prev: restored }));
    expect(grow.action).toEqual({ type: 'ensure-members', size: 2, minAvailable: 2 });
    expect(grow.events.map((e) => e.reason)).not.toContain('RestoreRefused');
  });
});

// -- Properties ----------------------------------------------------------------------------------

describe('plan: properties', () => {
  const kinds: SlotKind[] = [
    'voter',
    'learner',
    'fresh',
    'prepared',
    'silent',
    'stopped',
    'foreign',
    'removed',
  ];
  const world = fc.record({
    replicas: fc.integer({ min: 1, max: 6 }),
    slots: fc.array(fc.constantFrom(...kinds), { maxLength: 8 }),
    shrink: fc.nat(2),
    leader: fc.option(fc.nat(7)),
    unreachable: fc.subarray([0, 1, 2, 3, 4, 5, 6, 7]),
    orphans: fc.subarray(['nlost1', 'nlost2']),
    noStatus: fc.boolean(),
    paused: fc.boolean(),
    restore: fc.option(fc.constantFrom('s3://b/snap-1', 's3://b/snap-2')),
    restoredFrom: fc.option(fc.constantFrom('s3://b/snap-1', 's3://b/snap-2')),
    reclaimPolicy: fc.constantFrom('Retain' as const, 'Delete' as const),
    prevClusterId: fc.boolean(),
    prevOp: fc.option(
      fc.record({
        kind: fc.constantFrom(
          'Bootstrap' as const,
          'Restore' as const,
          'ScaleUp' as const,
          'ScaleDown' as const,
        ),
        ordinal: fc.nat(8),
        step: fc.constantFrom('adding', 'growing', 'removing', 'shrinking', 'reclaiming', 'restoring'),
      }),
    ),
    operation: fc.option(
      fc.record({
        kind: fc.constantFrom('add-node' as const, 'remove-node' as const),
        ordinal: fc.nat(7),
        state: fc.constantFrom(
          'pending' as const,
          'running' as const,
          'succeeded' as const,
          'failed' as const,
        ),
        code: fc.constantFrom('QUORUM_AT_RISK', 'RETIRED_NODE_ID', 'CATCH_UP_TIMEOUT'),
        agoMs: fc.nat(120_000),
      }),
    ),
  });

  it('never throws, never initializes over a cluster id, never removes a member that should stay', () => {
    fc.assert(
      fc.property(world, (w) => {
        const setSize = Math.max(0, w.slots.length - w.shrink);
        const obs = observe({
          spec: {
            replicas: w.replicas,
            paused: w.paused,
            reclaimPolicy: w.reclaimPolicy,
            ...(w.restore ? { restore: { snapshotUri: w.restore } } : {}),
          },
          slots: w.slots,
          setSize,
          leader: w.leader !== null && w.slots[w.leader] === 'voter' ? w.leader : null,
          unreachable: w.unreachable.filter((o) => o < w.slots.length),
          orphans: w.orphans,
          noStatus: w.noStatus,
          prev: {
            ...(w.prevClusterId ? { clusterId: CID } : {}),
            ...(w.restoredFrom ? { restoredFrom: { clusterId: 'old', uri: w.restoredFrom } } : {}),
            members: prevMembers(w.slots.flatMap((k, o) => (isMember(k) || k === 'stopped' ? [o] : []))),
            ...(w.prevOp ? { operation: { ...w.prevOp, startedAt: EARLIER, operationId: 'op-1' } } : {}),
          },
          operation: w.operation
            ? op({
                kind: w.operation.kind,
                node_id: nid(w.operation.ordinal),
                state: w.operation.state,
                finished_at: new Date(NOW.getTime() - w.operation.agoMs).toISOString(),
                error: w.operation.state === 'failed' ? { code: w.operation.code, message: 'x' } : null,
              })
            : null,
        });
        const p = plan(obs);
        const a = p.action;
        // The status is always valid for the CRD.
        expect(clusterStatusSchema.parse(p.status)).toEqual(p.status);
        if (w.paused) expect(a.type).toBe('wait');
        const anyClusterId = obs.slots.some((s) => s.node?.cluster_id || s.node?.initialized);
        if (a.type === 'initialize') {
          expect(anyClusterId).toBe(false);
          expect(obs.cluster.status?.clusterId).toBeUndefined();
          expect(a.ordinals).toEqual([...Array(w.replicas).keys()]);
        }
        if (a.type === 'restore') {
          expect(anyClusterId).toBe(false);
          expect(obs.cluster.status?.clusterId).toBeUndefined();
        }
        if (a.type === 'remove-member') {
          expect(a.ordinal).toBe(obs.setSize - 1);
          expect(a.ordinal).toBeGreaterThanOrEqual(w.replicas);
          const staying = obs.slots.filter((s) => s.pod.ordinal < w.replicas).map((s) => s.node?.node_id);
          expect(staying).not.toContain(a.nodeId);
        }
        if (a.type === 'transfer-leader') expect(a.ordinal).toBeGreaterThanOrEqual(w.replicas);
        if (a.type === 'delete-volume') {
          expect(w.reclaimPolicy).toBe('Delete');
          expect(a.ordinal).toBeGreaterThanOrEqual(obs.setSize);
          expect(obs.slots.map((s) => s.pod.ordinal)).not.toContain(a.ordinal);
          // Never the volume of a node the last status still counted as a member.
          expect(obs.cluster.status?.members?.map((m) => m.pod)).not.toContain(podOf(a.ordinal));
        }
        const bootstrapped = anyClusterId || obs.cluster.status?.clusterId !== undefined;
        if (a.type === 'ensure-members' && bootstrapped && obs.setSize > 0) {
          // One slot at a time, never below the desired size.
          expect([obs.setSize + 1, obs.setSize - 1]).toContain(a.size);
          expect(a.size).toBeGreaterThanOrEqual(Math.min(w.replicas, obs.setSize + 1));
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('is deterministic', () => {
    const obs = observe({ spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter', 'fresh'] });
    expect(plan(obs)).toEqual(plan(obs));
  });
});
