// The bootstrapped rules that change the cluster's shape: reclaim the volume of a slot a
// scale-down shrank away (or an orphan one), scale down one member at a time, add members, grow.

import type { InternalStatus } from '../../../node/api/admin-contract.js';
import type { Note } from '../conditions.js';
import type { SlotView } from '../types.js';
import {
  answers,
  memberDoc,
  nodeIdOf,
  operation,
  podName,
  problemOf,
  type Rule,
  range,
  slotAt,
  stall,
  stillMember,
  unmappedMembers,
  waitFor,
} from './context.js';
import { addRetry, isVoter, reachableVoters, removalRisk, removeRetry } from './membership.js';

/**
 * After a scale-down shrank slot k away (status.operation ScaleDown k 'shrinking'): once its pod
 * is gone, delete its volume (reclaimPolicy Delete) — before anything could grow the set again and
 * bring the removed node back with its old identity.
 */
export const reclaimVolume: Rule = (ctx) => {
  const op = ctx.prev.operation;
  if (op?.kind !== 'ScaleDown' || op.ordinal === undefined || op.step !== 'shrinking') return null;
  const k = op.ordinal;
  if (k < ctx.setSize) return null; // not shrunk (yet, or grown again): the other rules decide
  const progress: Note = { reason: 'ScalingDown', message: `reclaiming the volume of ${podName(ctx, k)}` };
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
export const reclaimOrphanVolume: Rule = (ctx) => {
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

/** One member at a time, highest ordinal first: hand leadership away, remove it, shrink the set. */
export const scaleDown: Rule = (ctx) => {
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
          reason: 'TransferringLeader',
          message: `moving leadership away from ${nodeId} (${pod}) before removing it`,
        },
      ],
    };
  }
  const risk = removalRisk(doc, nodeId);
  if (risk) return stall({ reason: 'QuorumAtRisk', message: risk }, op('removing'));
  const retry = removeRetry(ctx, nodeId, pod, op('removing'));
  if ('stall' in retry) return retry.stall;
  const { events, stalled } = retry;
  events.push({ type: 'Normal', reason: 'RemovingMember', message: `removing ${nodeId} (${pod})` });
  return {
    action: { type: 'remove-member', ordinal: k, nodeId },
    operation: op('removing'),
    ...(stalled ? { stalled } : { progress: progress(`removing ${nodeId} (${pod})`) }),
    events,
  };
};

/** Add the node of the lowest slot that runs, answers and is not a voter (safe add, idempotent). */
export const addMembers: Rule = (ctx) => {
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
  const retry = addRetry(ctx, nodeId, target.pod.name, op);
  if ('stall' in retry) return retry.stall;
  const { events, problems } = retry;
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
export const grow: Rule = (ctx) => {
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
