// The bootstrapped rules that guard the membership changes or wait on the cluster: recover a
// vanished set, require the aggregated status, check the cluster id, await an admin operation, and
// await the members' health once the shape has converged.

import { healthProblems } from '../conditions.js';
import {
  answers,
  operation,
  podName,
  problemOf,
  REQUEUE_MS,
  type Rule,
  range,
  slotAt,
  stall,
  waitFor,
} from './context.js';

/**
 * The set is gone (deleted by hand, or lost) but the cluster was bootstrapped: bring every slot
 * back at once, so the members find their quorum again on their volumes.
 */
export const recoverMembers: Rule = (ctx) => {
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
export const requireStatus: Rule = (ctx) => {
  if (ctx.doc) return null;
  return {
    action: { type: 'wait', reason: 'no member answered /_cluster/status', requeueMs: REQUEUE_MS.health },
    operation: 'keep',
    idle: { reason: 'StatusUnavailable', message: 'waiting for a member to answer /_cluster/status' },
  };
};

/** The aggregated status must be about this cluster. */
export const checkClusterId: Rule = (ctx) => {
  const seen = ctx.doc?.cluster_id ?? null;
  if (seen === null || ctx.clusterId === undefined || seen === ctx.clusterId) return null;
  const message = `the members answer for cluster ${seen}, but this resource is cluster ${ctx.clusterId}`;
  return stall({ reason: 'ClusterIdMismatch', message }, 'keep');
};

/** An add or remove the admin API is still carrying out: nothing else until it finishes. */
export const awaitOperation: Rule = (ctx) => {
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

/** Converged in shape: wait while a member is down or the cluster is unhealthy. Never remove it. */
export const awaitHealth: Rule = (ctx) => {
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
