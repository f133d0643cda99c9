// plan: the pure heart of the reconciler. From one observation it picks the ONE next idempotent
// step, the status to write and the events to record. No I/O, no clock (obs.now), no randomness:
// the same observation always gives the same plan, so table tests drive every branch.
//
// The rules, first match wins:
//   paused                     -> wait (nothing else)
//   never bootstrapped         -> restore flow (spec.restore) or bootstrap flow
//   bootstrapped:
//     reclaim                  -> delete the volume of a slot a scale-down shrank away
//     recover                  -> recreate the member slots after the set vanished
//     status unavailable       -> wait
//     cluster id mismatch      -> stalled
//     admin operation running  -> wait for it
//     scale down               -> transfer leadership / remove / shrink, highest ordinal first
//     add members              -> add the lowest slot whose node is not a voter (stalled if foreign)
//     grow                     -> one new slot when every slot holds a voter
//     health                   -> wait while a member is down or the cluster unhealthy
//     converged                -> none
// A spec.restore on a bootstrapped cluster that was not created by that restore is refused with a
// Warning event; everything else goes on.

import type {
  ClusterStatus as ClusterStatusDoc,
  InternalStatus,
  Operation,
} from '../../node/api/admin-contract.js';
import type { ClusterSpec, ClusterStatus, OperationStatus } from '../api/cluster.js';
import {
  type Assessment,
  deriveConditions,
  findCondition,
  healthProblems,
  isConditionTrue,
  type Note,
} from './conditions.js';
import type { Action, Observation, Plan, SlotView } from './types.js';

/** How long to wait before looking again, by why we wait. */
export const REQUEUE_MS = {
  /** spec.paused: nothing to do until the spec changes (which triggers a pass anyway). */
  paused: 300_000,
  /** A step is under way (a pod starting, an admin operation running). */
  progress: 2_000,
  /** Only the cluster's health to refresh. */
  health: 5_000,
  /** Blocked until something outside the operator changes. */
  stalled: 30_000,
} as const;

/** After the admin API refused a removal for quorum, wait this long before asking again. */
export const QUORUM_RETRY_MS = 30_000;

export type Phase = NonNullable<ClusterStatus['phase']>;
export type PlanEvent = Plan['events'][number];

type MemberDoc = ClusterStatusDoc['nodes'][string];

/** What one rule decides. */
interface Decision {
  action: Action;
  /** status.operation to write; 'keep' leaves the previous one (a step still in flight). */
  operation: OperationStatus | null | 'keep';
  progress?: Note;
  stalled?: Note;
  idle?: Note;
  problems?: Note[];
  events?: PlanEvent[];
  /** The phase this decision implies, when the rule knows better than the generic one. */
  phase?: Phase;
}

type Rule = (ctx: Ctx) => Decision | null;

/** The observation, digested once for every rule. */
interface Ctx {
  obs: Observation;
  spec: ClusterSpec;
  prev: ClusterStatus;
  now: string;
  name: string;
  replicas: number;
  setSize: number;
  doc: ClusterStatusDoc | null;
  bootstrapped: boolean;
  clusterId: string | undefined;
  restoredFrom: { clusterId: string; uri: string } | undefined;
  /** The previous status.operation, or null once its last step is known to be done. */
  prevOp: OperationStatus | null;
}

// -- Entry point ---------------------------------------------------------------------------------

export function plan(obs: Observation): Plan {
  const ctx = digest(obs);
  const decision = decide(ctx);
  const notices = ctx.spec.paused ? [] : [restoreRefused(ctx), volumeRetained(ctx)].filter((n) => n !== null);
  const operation = decision.operation === 'keep' ? ctx.prevOp : decision.operation;
  const assessment: Assessment = {
    bootstrapped: ctx.bootstrapped,
    paused: ctx.spec.paused,
    clusterId: ctx.clusterId,
    restoredFrom: ctx.restoredFrom,
    progress: decision.progress ?? null,
    stalled: decision.stalled ?? null,
    idle: decision.idle ?? { reason: 'Converged', message: 'nothing to do' },
    problems: decision.problems ?? [],
  };
  const conditions = deriveConditions(obs, assessment);
  const phase = decision.phase ?? phaseOf(ctx, operation, conditions);
  const status = compact<ClusterStatus>({
    observedGeneration: obs.cluster.metadata.generation,
    phase,
    conditions,
    replicas: obs.setSize,
    readyReplicas: obs.slots.filter((s) => s.pod.ordinal < obs.setSize && s.pod.ready).length,
    selector: selectorOf(ctx.name),
    clusterId: ctx.clusterId,
    leaderId: ctx.doc?.leader_id ?? undefined,
    term: ctx.doc?.current_term,
    faultTolerance: ctx.doc?.fault_tolerance,
    members: membersOf(ctx),
    lastBackup: ctx.prev.lastBackup,
    nextBackup: ctx.prev.nextBackup,
    restoredFrom: ctx.restoredFrom,
    operation,
  });
  const events = [...notices.flatMap((n) => n.events), ...(decision.events ?? [])];
  return { action: decision.action, status, events };
}

export function selectorOf(name: string): string {
  return `app.kubernetes.io/instance=${name},app.kubernetes.io/name=conflux`;
}

function decide(ctx: Ctx): Decision {
  const rules: Rule[] = ctx.spec.paused
    ? [paused]
    : !ctx.bootstrapped
      ? [ctx.spec.restore ? restoreFlow : bootstrapFlow]
      : [
          reclaimVolume,
          reclaimOrphanVolume,
          recoverMembers,
          requireStatus,
          checkClusterId,
          awaitOperation,
          scaleDown,
          addMembers,
          grow,
          awaitHealth,
        ];
  for (const rule of rules) {
    const d = rule(ctx);
    if (d) return d;
  }
  return { action: { type: 'none' }, operation: null, idle: { reason: 'Converged', message: 'converged' } };
}

function digest(obs: Observation): Ctx {
  const prev = obs.cluster.status ?? {};
  const doc = obs.status;
  const answering = obs.slots.map((s) => s.node).filter((n): n is InternalStatus => n !== null);
  const bootstrapped =
    prev.clusterId !== undefined ||
    (doc?.cluster_id ?? null) !== null ||
    answering.some((n) => n.initialized || n.cluster_id !== null);
  const clusterId =
    prev.clusterId ??
    doc?.cluster_id ??
    answering.find((n) => n.cluster_id !== null)?.cluster_id ??
    undefined;
  const restored = doc?.restored_from ?? answering.find((n) => n.restored_from !== null)?.restored_from;
  const restoredFrom =
    prev.restoredFrom ?? (restored ? { clusterId: restored.cluster_id, uri: restored.uri } : undefined);
  const ctx: Ctx = {
    obs,
    spec: obs.cluster.spec,
    prev,
    now: obs.now.toISOString(),
    name: obs.cluster.metadata.name,
    replicas: obs.cluster.spec.replicas,
    setSize: obs.setSize,
    doc,
    bootstrapped,
    clusterId,
    restoredFrom,
    prevOp: prev.operation ?? null,
  };
  return reclaimFinished(ctx) ? { ...ctx, prevOp: null } : ctx;
}

// -- Paused --------------------------------------------------------------------------------------

const paused: Rule = () => ({
  action: { type: 'wait', reason: 'paused (spec.paused)', requeueMs: REQUEUE_MS.paused },
  operation: 'keep',
  phase: 'Paused',
});

// -- Never bootstrapped --------------------------------------------------------------------------

/** spec.restore on a new cluster: one slot, then POST /_cluster/restore on it; it grows later. */
const restoreFlow: Rule = (ctx) => {
  const restore = ctx.spec.restore!;
  const op = (step: string) => operation(ctx, 'Restore', step, 0);
  const progress = (message: string): Note => ({ reason: 'Restoring', message });
  if (ctx.setSize !== 1) {
    return {
      action: { type: 'ensure-members', size: 1 },
      operation: op('creating-member'),
      progress: progress('creating the one member slot a restore starts from'),
      phase: 'Restoring',
    };
  }
  const first = slotAt(ctx, 0);
  if (!first || !answers(first)) {
    return {
      action: waitFor(`slot 0 to answer (${problemOf(first, 0)})`),
      operation: op('waiting-for-member'),
      progress: progress(`waiting for ${podName(ctx, 0)} to answer`),
      phase: 'Restoring',
    };
  }
  return {
    action: {
      type: 'restore',
      snapshotUri: restore.snapshotUri,
      ...(restore.expectedClusterId ? { expectedClusterId: restore.expectedClusterId } : {}),
    },
    operation: op('restoring'),
    progress: progress(`restoring ${restore.snapshotUri} on ${podName(ctx, 0)}`),
    phase: 'Restoring',
    events: [
      {
        type: 'Normal',
        reason: 'Restoring',
        message: `restoring ${restore.snapshotUri} on ${podName(ctx, 0)}`,
      },
    ],
  };
};

/** A new cluster: all spec.replicas slots, then POST /_cluster/initialize once every one answers. */
const bootstrapFlow: Rule = (ctx) => {
  const n = ctx.replicas;
  const phase: Phase = ctx.setSize === 0 ? 'Pending' : 'Bootstrapping';
  const op = (step: string) => operation(ctx, 'Bootstrap', step);
  if (ctx.setSize !== n) {
    return {
      action: { type: 'ensure-members', size: n },
      operation: op('creating-members'),
      progress: { reason: 'Bootstrapping', message: `creating ${n} member slots` },
      phase,
      events: [{ type: 'Normal', reason: 'CreatingMembers', message: `creating ${n} member slots` }],
    };
  }
  const ordinals = range(n);
  const silent = ordinals.filter((o) => !answers(slotAt(ctx, o)));
  if (silent.length > 0) {
    const detail = silent.map((o) => `${o} (${problemOf(slotAt(ctx, o), o)})`).join(', ');
    return {
      action: waitFor(`slots to answer: ${detail}`),
      operation: op('waiting-for-members'),
      progress: { reason: 'Bootstrapping', message: `waiting for slots ${silent.join(', ')} to answer` },
      phase,
    };
  }
  // digest() calls the cluster bootstrapped when any node has a cluster id or is initialized, so
  // here every node answers uninitialized: initializing cannot create a second cluster.
  const pod0 = podName(ctx, 0);
  return {
    action: { type: 'initialize', ordinals },
    operation: op('initializing'),
    progress: { reason: 'Bootstrapping', message: `initializing the cluster on ${pod0}` },
    phase,
    events: [
      {
        type: 'Normal',
        reason: 'Initializing',
        message: `initializing a ${n}-member cluster on ${pod0} (slots ${ordinals.join(', ')})`,
      },
    ],
  };
};

// -- Bootstrapped --------------------------------------------------------------------------------

/** Whether the previous operation was the last step of a scale-down, now done (or nothing to do). */
function reclaimFinished(ctx: Ctx): boolean {
  const op = ctx.prev.operation;
  if (op?.kind !== 'ScaleDown' || op.ordinal === undefined || op.ordinal < ctx.setSize) return false;
  if (slotAt(ctx, op.ordinal)) return false;
  if (op.step === 'reclaiming') return true;
  return (
    op.step === 'shrinking' && (ctx.spec.storage.reclaimPolicy === 'Retain' || stillMember(ctx, op.ordinal))
  );
}

/**
 * The node of slot `ordinal` is still recorded as a member by the last status (its volume holds a
 * member's data). A scale-down shrinks a slot only after its node left the membership, so this is
 * a guard against a status that says otherwise: that volume is never deleted.
 */
function stillMember(ctx: Ctx, ordinal: number): boolean {
  const pod = podName(ctx, ordinal);
  const recorded = ctx.prev.members?.find((m) => m.pod === pod)?.id;
  return recorded !== undefined && (ctx.doc === null || memberDoc(ctx.doc, recorded) !== undefined);
}

/**
 * After a scale-down shrank slot k away (status.operation ScaleDown k 'shrinking'): once its pod
 * is gone, delete its volume (reclaimPolicy Delete) — before anything could grow the set again and
 * bring the removed node back with its old identity.
 */
const reclaimVolume: Rule = (ctx) => {
  const op = ctx.prev.operation;
  if (op?.kind !== 'ScaleDown' || op.ordinal === undefined || op.step !== 'shrinking') return null;
  const k = op.ordinal;
  if (k < ctx.setSize) return null; // not shrunk (yet, or grown again): the other rules decide
  const progress = { reason: 'ScalingDown', message: `reclaiming the volume of ${podName(ctx, k)}` };
  if (slotAt(ctx, k)) {
    return {
      action: waitFor(`${podName(ctx, k)} to stop`),
      operation: 'keep',
      progress: { reason: 'ScalingDown', message: `waiting for ${podName(ctx, k)} to stop` },
    };
  }
  if (ctx.spec.storage.reclaimPolicy !== 'Delete' || stillMember(ctx, k)) return null;
  return {
    action: { type: 'delete-volume', ordinal: k },
    operation: operation(ctx, 'ScaleDown', 'reclaiming', k),
    progress,
    events: [
      { type: 'Normal', reason: 'DeletingVolume', message: `deleting the volume of ${podName(ctx, k)}` },
    ],
  };
};

/**
 * A volume left beyond the set (reclaimPolicy Delete) that no step remembers — the operator died
 * between shrinking the set and recording it. It is deleted only when every member of the cluster
 * is accounted for by a running slot inside the set, so it cannot hold a member's data.
 */
const reclaimOrphanVolume: Rule = (ctx) => {
  if (ctx.spec.storage.reclaimPolicy !== 'Delete' || !ctx.doc) return null;
  const orphan = ctx.obs.volumes.find((k) => k >= ctx.setSize && k >= ctx.replicas && !slotAt(ctx, k));
  if (orphan === undefined) return null;
  const inSet = new Set(
    ctx.obs.slots.filter((s) => s.pod.ordinal < ctx.setSize && s.node).map((s) => s.node?.node_id),
  );
  if (!Object.keys(ctx.doc.nodes).every((id) => inSet.has(id))) return null;
  return {
    action: { type: 'delete-volume', ordinal: orphan },
    operation: operation(ctx, 'ScaleDown', 'reclaiming', orphan),
    progress: { reason: 'ScalingDown', message: `reclaiming the volume of ${podName(ctx, orphan)}` },
    events: [
      { type: 'Normal', reason: 'DeletingVolume', message: `deleting the volume of ${podName(ctx, orphan)}` },
    ],
  };
};

/**
 * The set is gone (deleted by hand, or lost) but the cluster was bootstrapped: bring every slot
 * back at once, so the members find their quorum again on their volumes.
 */
const recoverMembers: Rule = (ctx) => {
  if (ctx.setSize > 0) return null;
  const known = (ctx.prev.members ?? []).filter((m) => m.pod !== undefined).length;
  const size = Math.max(ctx.replicas, known);
  return {
    action: { type: 'ensure-members', size },
    operation: operation(ctx, 'ScaleUp', 'recovering'),
    progress: { reason: 'Recovering', message: `recreating ${size} member slots` },
    phase: 'Degraded',
    events: [
      {
        type: 'Warning',
        reason: 'RecreatingMembers',
        message: `no member slot exists for bootstrapped cluster ${ctx.clusterId ?? ''}: recreating ${size}`,
      },
    ],
  };
};

/** Membership decisions need the aggregated status. */
const requireStatus: Rule = (ctx) => {
  if (ctx.doc) return null;
  return {
    action: { type: 'wait', reason: 'no member answered /_cluster/status', requeueMs: REQUEUE_MS.health },
    operation: 'keep',
    idle: { reason: 'StatusUnavailable', message: 'waiting for a member to answer /_cluster/status' },
  };
};

/** The aggregated status must be about this cluster. */
const checkClusterId: Rule = (ctx) => {
  const seen = ctx.doc?.cluster_id ?? null;
  if (seen === null || ctx.clusterId === undefined || seen === ctx.clusterId) return null;
  const message = `the members answer for cluster ${seen}, but this resource is cluster ${ctx.clusterId}`;
  return stall({ reason: 'ClusterIdMismatch', message }, 'keep');
};

/** An add or remove the admin API is still carrying out: nothing else until it finishes. */
const awaitOperation: Rule = (ctx) => {
  const op = ctx.obs.operation;
  if (!op || (op.state !== 'pending' && op.state !== 'running')) return null;
  const verb = op.kind === 'add-node' ? 'adding' : 'removing';
  return {
    action: waitFor(`${op.kind} ${op.id} of ${op.node_id} (${op.state}, ${op.step})`),
    operation: 'keep',
    progress: {
      reason: op.kind === 'add-node' ? 'ScalingUp' : 'ScalingDown',
      message: `${verb} ${op.node_id}: ${op.step}`,
    },
  };
};

/** One member at a time, highest ordinal first: hand leadership away, remove it, shrink the set. */
const scaleDown: Rule = (ctx) => {
  if (ctx.setSize <= ctx.replicas) return null;
  const doc = ctx.doc!;
  const k = ctx.setSize - 1;
  const pod = podName(ctx, k);
  const op = (step: string) => operation(ctx, 'ScaleDown', step, k);
  const progress = (message: string): Note => ({ reason: 'ScalingDown', message });
  const nodeId = nodeIdOf(ctx, k);
  if (nodeId === undefined && unmappedMembers(ctx).length > 0) {
    // The slot's node does not answer and may be one of the members no slot accounts for.
    return {
      action: waitFor(`${pod} to answer (${problemOf(slotAt(ctx, k), k)})`),
      operation: op('removing'),
      progress: progress(`waiting for ${pod} to answer before removing it`),
    };
  }
  const member = nodeId === undefined ? undefined : memberDoc(doc, nodeId);
  if (nodeId === undefined || !member) {
    return {
      action: { type: 'ensure-members', size: k },
      operation: op('shrinking'),
      progress: progress(`shrinking the set to ${k} member slots`),
      events: [{ type: 'Normal', reason: 'ScalingDown', message: `shrinking the set to ${k} (${pod} left)` }],
    };
  }
  if (doc.leader_id === null) {
    return {
      action: waitFor('a leader, to change the membership'),
      operation: op('removing'),
      progress: progress(`waiting for a leader before removing ${nodeId} (${pod})`),
    };
  }
  const others = reachableVoters(doc).filter((id) => id !== nodeId);
  if (doc.leader_id === nodeId) {
    if (others.length === 0) {
      const message = `${nodeId} (${pod}) leads and no other voter is reachable to take over`;
      return stall({ reason: 'QuorumAtRisk', message }, op('transferring-leader'));
    }
    return {
      action: { type: 'transfer-leader', ordinal: k },
      operation: op('transferring-leader'),
      progress: progress(`moving leadership away from ${nodeId} (${pod})`),
      events: [
        {
          type: 'Normal',
          reason: 'TransferringLeadership',
          message: `moving leadership away from ${nodeId} (${pod}) before removing it`,
        },
      ],
    };
  }
  const risk = removalRisk(doc, nodeId);
  if (risk) return stall({ reason: 'QuorumAtRisk', message: risk }, op('removing'));
  const failed = failedOperation(ctx, 'remove-node', nodeId);
  const events: PlanEvent[] = [];
  let stalled: Note | undefined;
  if (failed?.error?.code === 'QUORUM_AT_RISK') {
    stalled = { reason: 'QuorumAtRisk', message: `removing ${nodeId} refused: ${failed.error.message}` };
    const wait = retryDelay(ctx, failed);
    if (wait > 0) {
      return stall(stalled, op('removing'), Math.min(wait, REQUEUE_MS.stalled));
    }
  } else if (failed) {
    events.push({
      type: 'Warning',
      reason: 'RemoveMemberFailed',
      message: `removing ${nodeId} (${pod}) failed: ${errorText(failed)}; retrying`,
    });
  }
  events.push({ type: 'Normal', reason: 'RemovingMember', message: `removing ${nodeId} (${pod})` });
  return {
    action: { type: 'remove-member', ordinal: k, nodeId },
    operation: op('removing'),
    ...(stalled ? { stalled } : { progress: progress(`removing ${nodeId} (${pod})`) }),
    events,
  };
};

/** Add the node of the lowest slot that runs, answers and is not a voter (safe add, idempotent). */
const addMembers: Rule = (ctx) => {
  const doc = ctx.doc!;
  const candidates = range(ctx.setSize)
    .map((o) => slotAt(ctx, o))
    .filter((s): s is SlotView & { node: InternalStatus } => answers(s) && !isVoter(doc, s!.node!.node_id));
  if (candidates.length === 0) return null;
  const foreign = candidates.filter((s) => s.node.cluster_id !== null && s.node.cluster_id !== ctx.clusterId);
  const firstForeign = foreign[0];
  if (firstForeign) {
    const list = foreign.map((s) => `${s.pod.name} (node ${s.node.node_id}, cluster ${s.node.cluster_id})`);
    const message = `member slots hold nodes of another cluster: ${list.join(', ')}; this cluster is ${ctx.clusterId}`;
    return stall(
      { reason: 'ForeignMember', message },
      operation(ctx, 'ScaleUp', 'blocked', firstForeign.pod.ordinal),
    );
  }
  const target = candidates[0]!;
  const { node_id: nodeId } = target.node;
  const j = target.pod.ordinal;
  const op = operation(ctx, 'ScaleUp', 'adding', j);
  if (doc.leader_id === null) {
    return {
      action: waitFor('a leader, to change the membership'),
      operation: op,
      progress: { reason: 'ScalingUp', message: `waiting for a leader before adding ${nodeId}` },
    };
  }
  const failed = failedOperation(ctx, 'add-node', nodeId);
  if (failed?.error?.code === 'RETIRED_NODE_ID') {
    const message = `${target.pod.name} holds node ${nodeId}, which was removed from the cluster and can never rejoin; delete its volume to give it a new identity`;
    return stall({ reason: 'RetiredMember', message }, op);
  }
  const events: PlanEvent[] = [];
  const problems: Note[] = [];
  if (failed) {
    const message = `adding ${nodeId} (${target.pod.name}) failed: ${errorText(failed)}; retrying`;
    events.push({ type: 'Warning', reason: 'AddMemberFailed', message });
    problems.push({ reason: 'AddMemberFailed', message });
  }
  events.push({ type: 'Normal', reason: 'AddingMember', message: `adding ${nodeId} (${target.pod.name})` });
  return {
    action: { type: 'add-member', ordinal: j },
    operation: op,
    progress: { reason: 'ScalingUp', message: `adding ${nodeId} (${target.pod.name})` },
    problems,
    events,
  };
};

/** One more slot, once every existing slot answers and holds a voter. */
const grow: Rule = (ctx) => {
  if (ctx.setSize >= ctx.replicas) return null;
  const pending = range(ctx.setSize).filter((o) => !answers(slotAt(ctx, o)));
  if (pending.length > 0) {
    const detail = pending.map((o) => `${podName(ctx, o)} (${problemOf(slotAt(ctx, o), o)})`).join(', ');
    return {
      action: waitFor(`every member to answer before growing: ${detail}`),
      operation: 'keep',
      progress: { reason: 'ScalingUp', message: `waiting for ${detail} before growing` },
    };
  }
  const size = ctx.setSize + 1;
  return {
    action: { type: 'ensure-members', size },
    operation: operation(ctx, 'ScaleUp', 'growing', ctx.setSize),
    progress: { reason: 'ScalingUp', message: `growing the set to ${size} member slots` },
    events: [{ type: 'Normal', reason: 'ScalingUp', message: `growing the set to ${size} member slots` }],
  };
};

/** Converged in shape: wait while a member is down or the cluster is unhealthy. Never remove it. */
const awaitHealth: Rule = (ctx) => {
  const doc = ctx.doc!;
  const silent = range(ctx.setSize).filter((o) => !answers(slotAt(ctx, o)));
  if (silent.length > 0) {
    const detail = silent.map((o) => `${podName(ctx, o)} (${problemOf(slotAt(ctx, o), o)})`).join(', ');
    return {
      action: { type: 'wait', reason: `members not answering: ${detail}`, requeueMs: REQUEUE_MS.health },
      operation: null,
      idle: { reason: 'AwaitingMembers', message: `waiting for ${detail}` },
    };
  }
  if (!doc.healthy) {
    const detail = healthProblems(doc)
      .map((n) => n.message)
      .join('; ');
    return {
      action: { type: 'wait', reason: `unhealthy: ${detail || 'see status'}`, requeueMs: REQUEUE_MS.health },
      operation: null,
      idle: { reason: 'AwaitingHealth', message: detail || 'the cluster reports itself unhealthy' },
    };
  }
  return null;
};

// -- Notices (events that do not change the step) ----------------------------------------------

interface Notice {
  events: PlanEvent[];
}

/** A bootstrapped cluster never restores over itself, whatever spec.restore says. */
function restoreRefused(ctx: Ctx): Notice | null {
  const restore = ctx.spec.restore;
  if (!restore || !ctx.bootstrapped || ctx.restoredFrom?.uri === restore.snapshotUri) return null;
  const message = `spec.restore (${restore.snapshotUri}) is ignored: cluster ${ctx.clusterId ?? ''} is already bootstrapped and was not created from that snapshot; a cluster never restores over itself`;
  return { events: [{ type: 'Warning', reason: 'RestoreRefused', message }] };
}

/** A scale-down that ends without deleting the volume says so. */
function volumeRetained(ctx: Ctx): Notice | null {
  const op = ctx.prev.operation;
  if (!reclaimFinished(ctx) || op?.step !== 'shrinking' || op.ordinal === undefined) return null;
  const pod = podName(ctx, op.ordinal);
  if (stillMember(ctx, op.ordinal)) {
    const message = `kept the volume of ${pod}: its node is still recorded as a member of the cluster`;
    return { events: [{ type: 'Warning', reason: 'VolumeKept', message }] };
  }
  const message = `kept the volume of ${pod} (reclaimPolicy Retain)`;
  return { events: [{ type: 'Normal', reason: 'VolumeRetained', message }] };
}

// -- Status --------------------------------------------------------------------------------------

function phaseOf(
  ctx: Ctx,
  operation: OperationStatus | null,
  conditions: ClusterStatus['conditions'],
): Phase {
  if (!ctx.bootstrapped)
    return ctx.spec.restore ? 'Restoring' : ctx.setSize === 0 ? 'Pending' : 'Bootstrapping';
  const available = findCondition(conditions, 'Available');
  if (available && available.status !== 'True') return 'Degraded';
  if (operation?.kind === 'ScaleUp' || operation?.kind === 'ScaleDown') return 'Scaling';
  if (isConditionTrue(conditions, 'Degraded')) return 'Degraded';
  return 'Running';
}

/** The members as the aggregated status reports them, with the pod each one runs in. */
function membersOf(ctx: Ctx): ClusterStatus['members'] {
  const slotOf = new Map<string, SlotView>();
  for (const s of ctx.obs.slots) if (s.node) slotOf.set(s.node.node_id, s);
  const prevPod = new Map((ctx.prev.members ?? []).map((m) => [m.id, m.pod]));
  const ordinalOf = (pod: string | undefined) => {
    const n = pod === undefined ? Number.NaN : Number(pod.slice(ctx.name.length + 1));
    return Number.isInteger(n) ? n : Number.POSITIVE_INFINITY;
  };
  const members = ctx.doc
    ? Object.entries(ctx.doc.nodes).map(([id, n]) =>
        compact({
          id,
          pod: slotOf.get(id)?.pod.name ?? prevPod.get(id),
          role: n.status === 'Unknown' ? (n.voter ? 'Voter' : 'Learner') : n.status,
          reachable: n.is_reachable,
          lag: n.lag,
        }),
      )
    : (ctx.prev.members ?? []).map((m) => ({ ...m, reachable: slotOf.has(m.id), lag: null }));
  if (!ctx.doc && members.length === 0) return ctx.prev.members;
  return members.sort((a, b) => ordinalOf(a.pod) - ordinalOf(b.pod) || a.id.localeCompare(b.id));
}

// -- Helpers -------------------------------------------------------------------------------------

function operation(ctx: Ctx, kind: OperationStatus['kind'], step: string, ordinal?: number): OperationStatus {
  const prev = ctx.prevOp;
  const same = prev !== null && prev.kind === kind && prev.ordinal === ordinal;
  const operationId = same && prev.step === step ? prev.operationId : undefined;
  return compact<OperationStatus>({
    kind,
    ordinal,
    step,
    operationId,
    startedAt: same ? prev.startedAt : ctx.now,
  });
}

function stall(
  note: Note,
  operation: Decision['operation'],
  requeueMs: number = REQUEUE_MS.stalled,
): Decision {
  return {
    action: { type: 'wait', reason: `stalled: ${note.message}`, requeueMs },
    operation,
    stalled: note,
    events: [{ type: 'Warning', reason: note.reason, message: note.message }],
  };
}

function waitFor(what: string): Action {
  return { type: 'wait', reason: `waiting for ${what}`, requeueMs: REQUEUE_MS.progress };
}

function slotAt(ctx: Ctx, ordinal: number): SlotView | undefined {
  return ctx.obs.slots.find((s) => s.pod.ordinal === ordinal);
}

/** The slot's pod runs and its node answered. */
function answers(slot: SlotView | undefined): boolean {
  return slot?.pod.running === true && slot.node !== null;
}

function problemOf(slot: SlotView | undefined, ordinal: number): string {
  if (!slot) return `slot ${ordinal} does not exist yet`;
  if (!slot.pod.running) return slot.error ?? 'not running';
  return slot.error ?? 'no answer';
}

function podName(ctx: Ctx, ordinal: number): string {
  return slotAt(ctx, ordinal)?.pod.name ?? `${ctx.name}-${ordinal}`;
}

/**
 * The node id in slot `ordinal`: what its node answers, else what the previous status recorded for
 * its pod (unless another slot's node answers with that id now).
 */
function nodeIdOf(ctx: Ctx, ordinal: number): string | undefined {
  const slot = slotAt(ctx, ordinal);
  if (slot?.node) return slot.node.node_id;
  const pod = podName(ctx, ordinal);
  const known = ctx.prev.members?.find((m) => m.pod === pod)?.id;
  if (known === undefined || ctx.obs.slots.some((s) => s.node?.node_id === known)) return undefined;
  return known;
}

/** Members that no answering slot's node is. */
function unmappedMembers(ctx: Ctx): string[] {
  const inSlots = new Set(ctx.obs.slots.flatMap((s) => (s.node ? [s.node.node_id] : [])));
  return Object.keys(ctx.doc?.nodes ?? {}).filter((id) => !inSlots.has(id));
}

function memberDoc(doc: ClusterStatusDoc, id: string): MemberDoc | undefined {
  return Object.hasOwn(doc.nodes, id) ? doc.nodes[id] : undefined;
}

function isVoter(doc: ClusterStatusDoc, id: string): boolean {
  return memberDoc(doc, id)?.voter === true;
}

function reachableVoters(doc: ClusterStatusDoc): string[] {
  return Object.entries(doc.nodes)
    .filter(([, n]) => n.voter && n.is_reachable)
    .map(([id]) => id);
}

/**
 * Why removing `id` would leave the voters without a reachable quorum (fault tolerance below
 * zero), or null when it is safe. The admin API checks again (with fresher contact times).
 */
export function removalRisk(doc: ClusterStatusDoc, id: string): string | null {
  if (!isVoter(doc, id)) return null;
  const remaining = Object.entries(doc.nodes).filter(([other, n]) => n.voter && other !== id);
  if (remaining.length === 0) return `${id} is the last voter`;
  const reachable = remaining.filter(([, n]) => n.is_reachable).length;
  const quorum = Math.floor(remaining.length / 2) + 1;
  if (reachable >= quorum) return null;
  return `removing ${id} leaves ${remaining.length} voters of which ${reachable} are reachable; a quorum needs ${quorum}`;
}

/** The recorded admin operation, when it is a failed `kind` about `nodeId`. */
function failedOperation(ctx: Ctx, kind: Operation['kind'], nodeId: string): Operation | null {
  const op = ctx.obs.operation;
  return op && op.kind === kind && op.node_id === nodeId && op.state === 'failed' ? op : null;
}

/** How long until a refused operation may be asked again (0: now). */
function retryDelay(ctx: Ctx, failed: Operation): number {
  const at = Date.parse(failed.finished_at ?? failed.created_at);
  if (Number.isNaN(at)) return 0;
  return Math.max(0, at + QUORUM_RETRY_MS - ctx.obs.now.getTime());
}

function errorText(op: Operation): string {
  return op.error ? `${op.error.code}: ${op.error.message}` : `failed at step ${op.step}`;
}

function range(n: number): number[] {
  return Array.from({ length: Math.max(0, n) }, (_, i) => i);
}

/** `o` without its undefined properties (a status without noise; null stays). */
function compact<T extends object>(o: { [K in keyof T]: T[K] | undefined }): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
