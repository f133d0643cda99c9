// Status conditions of a ConfluxCluster, the Kubernetes way: one entry per type, each with a
// reason, a message and the generation it was computed for; lastTransitionTime moves only when the
// status (True/False/Unknown) does. Everything here is pure: `now` comes from the observation.

import type { ClusterStatus as ClusterStatusDoc } from '../../node/api/admin-contract.js';
import type { Condition } from '../api/cluster.js';
import type { Reason } from './reasons.js';
import type { Observation } from './types.js';

export type ConditionStatus = Condition['status'];

/** What a condition says; setCondition adds the bookkeeping (transition time, generation). */
export interface ConditionUpdate {
  type: string;
  status: ConditionStatus;
  reason: Reason;
  message: string;
}

/** A reason and a message, the material of conditions and events. */
export interface Note {
  reason: Reason;
  message: string;
}

/**
 * `conditions` with `update` applied: replaced in place when a condition of that type exists,
 * appended otherwise. lastTransitionTime is kept while the status is unchanged (a new reason or
 * message is not a transition). Never mutates its input.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date,
  observedGeneration?: number,
): Condition[] {
  const list = conditions ?? [];
  const existing = list.find((c) => c.type === update.type);
  const next: Condition = {
    type: update.type,
    status: update.status,
    reason: update.reason,
    message: update.message,
    lastTransitionTime:
      existing && existing.status === update.status ? existing.lastTransitionTime : now.toISOString(),
    ...(observedGeneration === undefined ? {} : { observedGeneration }),
  };
  return existing ? list.map((c) => (c === existing ? next : c)) : [...list, next];
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/** What plan() concluded, beyond the observation itself, that the conditions report. */
export interface Assessment {
  bootstrapped: boolean;
  paused: boolean;
  clusterId?: string | undefined;
  restoredFrom?: { clusterId: string; uri: string } | undefined;
  /** The step being taken or awaited (Progressing True); null when nothing moves. */
  progress: Note | null;
  /** Why the plan cannot go on without help (Stalled True); null when it is not blocked. */
  stalled: Note | null;
  /** Why nothing moves, when progress is null and the plan is not stalled (Progressing False). */
  idle: Note;
  /** Problems beyond the cluster's own health report (a failed add, …) that make it Degraded. */
  problems: Note[];
}

/**
 * Every managed condition, from the observation and the plan's assessment, applied over the
 * previous status's conditions. While paused, Stalled is left as it was: nothing was evaluated.
 */
export function deriveConditions(obs: Observation, a: Assessment): Condition[] {
  const now = obs.now;
  const generation = obs.cluster.metadata.generation;
  const updates: ConditionUpdate[] = [
    bootstrappedCondition(obs, a),
    readyCondition(obs, a),
    availableCondition(obs, a),
    progressingCondition(a),
    degradedCondition(obs, a),
  ];
  if (!a.paused) updates.push(stalledCondition(a));
  return updates.reduce<Condition[]>(
    (list, u) => setCondition(list, u, now, generation),
    [...(obs.cluster.status?.conditions ?? [])],
  );
}

function bootstrappedCondition(obs: Observation, a: Assessment): ConditionUpdate {
  const type = 'Bootstrapped';
  if (a.bootstrapped) {
    const id = a.clusterId ?? 'unknown';
    return a.restoredFrom
      ? {
          type,
          status: 'True',
          reason: 'Restored',
          message: `cluster ${id} restored from ${a.restoredFrom.uri} (cluster ${a.restoredFrom.clusterId})`,
        }
      : { type, status: 'True', reason: 'Initialized', message: `cluster ${id} is initialized` };
  }
  return obs.cluster.spec.restore
    ? { type, status: 'False', reason: 'Restoring', message: 'waiting to restore the snapshot' }
    : {
        type,
        status: 'False',
        reason: 'NotInitialized',
        message: 'the cluster has not been initialized yet',
      };
}

function readyCondition(obs: Observation, a: Assessment): ConditionUpdate {
  const type = 'Ready';
  const doc = obs.status;
  const desired = obs.cluster.spec.replicas;
  if (!a.bootstrapped)
    return { type, status: 'False', reason: 'NotBootstrapped', message: 'not initialized yet' };
  if (!doc) return { type, status: 'False', reason: 'StatusUnavailable', message: 'no member answered' };
  const voters = voterIds(doc).length;
  if (!doc.healthy) {
    return { type, status: 'False', reason: 'Unhealthy', message: healthMessage(doc) };
  }
  if (voters !== desired || obs.setSize !== desired) {
    return {
      type,
      status: 'False',
      reason: 'ReplicasMismatch',
      message: `${voters} voters in ${obs.setSize} member slots, ${desired} desired`,
    };
  }
  return { type, status: 'True', reason: 'AllMembersReady', message: `${voters} voters, healthy` };
}

function availableCondition(obs: Observation, a: Assessment): ConditionUpdate {
  const type = 'Available';
  const doc = obs.status;
  if (!a.bootstrapped)
    return { type, status: 'False', reason: 'NotBootstrapped', message: 'not initialized yet' };
  if (!doc) {
    return { type, status: 'Unknown', reason: 'StatusUnavailable', message: 'no member answered' };
  }
  if (doc.leader_id === null) {
    return electingFirstLeader(obs)
      ? { type, status: 'Unknown', reason: 'ElectingLeader', message: 'electing the first leader' }
      : { type, status: 'False', reason: 'NoLeader', message: 'no leader elected' };
  }
  if (doc.fault_tolerance < 0) {
    return { type, status: 'False', reason: 'QuorumLost', message: 'fewer reachable voters than a quorum' };
  }
  return {
    type,
    status: 'True',
    reason: 'QuorumAvailable',
    message: `leader ${doc.leader_id}, fault tolerance ${doc.fault_tolerance}`,
  };
}

/** How long a new cluster's first election may take before its lack of a leader is a fault. */
export const FIRST_ELECTION_GRACE_MS = 60_000;

/** Available reasons that mean the cluster has not been available since it was bootstrapped. */
const NEVER_AVAILABLE: ReadonlySet<string> = new Set<Reason>([
  'NotBootstrapped',
  'ElectingLeader',
  'StatusUnavailable',
]);

/**
 * Whether a cluster without a leader is in its first election: the operator saw it before it was
 * bootstrapped, it was bootstrapped less than FIRST_ELECTION_GRACE_MS ago (or on this very pass),
 * and it has not been available since. That is progress,
 * not a fault (Available Unknown, not Degraded); once it was available, no leader is a fault at once.
 */
function electingFirstLeader(obs: Observation): boolean {
  const conditions = obs.cluster.status?.conditions;
  const available = findCondition(conditions, 'Available');
  if (!available || !NEVER_AVAILABLE.has(available.reason)) return false;
  const bootstrapped = findCondition(conditions, 'Bootstrapped');
  if (bootstrapped?.status !== 'True') return true;
  const since = Date.parse(bootstrapped.lastTransitionTime ?? '');
  return Number.isNaN(since) || obs.now.getTime() - since < FIRST_ELECTION_GRACE_MS;
}

function progressingCondition(a: Assessment): ConditionUpdate {
  const type = 'Progressing';
  if (a.paused) {
    return { type, status: 'False', reason: 'Paused', message: 'reconciliation is paused (spec.paused)' };
  }
  if (a.progress) return { type, status: 'True', ...a.progress };
  if (a.stalled) return { type, status: 'False', ...a.stalled };
  return { type, status: 'False', ...a.idle };
}

function degradedCondition(obs: Observation, a: Assessment): ConditionUpdate {
  const type = 'Degraded';
  if (!a.bootstrapped) {
    return { type, status: 'False', reason: 'NotBootstrapped', message: 'not initialized yet' };
  }
  const health = healthProblems(obs.status);
  // A first election is progress, not a fault (see electingFirstLeader).
  const notes = [
    ...(obs.status?.leader_id === null && electingFirstLeader(obs)
      ? health.filter((n) => n.reason !== 'NoLeader')
      : health),
    ...a.problems,
  ];
  const first = notes[0];
  if (!first) {
    return { type, status: 'False', reason: 'AsExpected', message: 'every member is reachable, no errors' };
  }
  return { type, status: 'True', reason: first.reason, message: notes.map((n) => n.message).join('; ') };
}

function stalledCondition(a: Assessment): ConditionUpdate {
  const type = 'Stalled';
  return a.stalled
    ? { type, status: 'True', ...a.stalled }
    : { type, status: 'False', reason: 'NotStalled', message: 'nothing blocks reconciliation' };
}

/** Why the aggregated status says the cluster is not well, most severe first (none: it is). */
export function healthProblems(doc: ClusterStatusDoc | null): Note[] {
  if (!doc) return [{ reason: 'StatusUnavailable', message: 'no member answered /_cluster/status' }];
  const notes: Note[] = [];
  if (doc.fault_tolerance < 0) {
    notes.push({ reason: 'QuorumLost', message: `fault tolerance ${doc.fault_tolerance}: no quorum` });
  }
  if (doc.leader_id === null) notes.push({ reason: 'NoLeader', message: 'no leader elected' });
  const unreachable = unreachableIds(doc);
  if (unreachable.length > 0) {
    notes.push({ reason: 'MemberUnreachable', message: `unreachable: ${unreachable.join(', ')}` });
  }
  if (doc.errors.length > 0) notes.push({ reason: 'ClusterErrors', message: doc.errors.join('; ') });
  return notes;
}

function healthMessage(doc: ClusterStatusDoc): string {
  const notes = healthProblems(doc);
  return notes.length > 0 ? notes.map((n) => n.message).join('; ') : 'the cluster reports itself unhealthy';
}

export function voterIds(doc: ClusterStatusDoc): string[] {
  return Object.entries(doc.nodes)
    .filter(([, n]) => n.voter)
    .map(([id]) => id)
    .sort();
}

export function unreachableIds(doc: ClusterStatusDoc): string[] {
  return Object.entries(doc.nodes)
    .filter(([, n]) => !n.is_reachable)
    .map(([id]) => id)
    .sort();
}
