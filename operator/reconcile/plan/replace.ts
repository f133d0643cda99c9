// Member replacement after data loss. A node's id lives in its data dir, so a pod whose volume was
// lost comes back as a NEW node (a new random id, pristine): it is never mistaken for the member
// the pod held before, which could otherwise vote twice in a term it already voted in. That old
// member is dead for good (its data is gone) but still counts as a voter, so fault tolerance is
// one lower than it should be. Replacement removes the dead member first (the admin API refuses
// with QUORUM_AT_RISK when that would lose quorum: then wait and say so), then adds the pod's new
// node through the safe add flow. Only while the cluster has a leader (quorum holds); a quorum
// loss is the recovery rules' business, and never acted on without spec.recovery.

import type { InternalStatus } from '../../../node/api/admin-contract.js';
import type { SlotView } from '../types.js';
import {
  answers,
  type Ctx,
  memberDoc,
  operation,
  type PlanEvent,
  REQUEUE_MS,
  type Rule,
  range,
  slotAt,
  stall,
} from './context.js';
import { addRetry, isVoter, removalRisk, removeRetry } from './membership.js';

type AnsweringSlot = SlotView & { node: InternalStatus };

/** A slot whose node is not the member recorded for its pod, while that member is unreachable. */
export interface Replacement {
  slot: AnsweringSlot;
  /** The member the pod held before (dead: unreachable, its data gone). */
  lost: string;
}

/**
 * The lowest slot that needs its member replaced: its node answers, is not a voter, is not a node
 * of another cluster, and the membership still has an unreachable member recorded for its pod.
 */
export function replacementOf(ctx: Ctx): Replacement | null {
  const doc = ctx.doc;
  if (!doc) return null;
  for (const o of range(ctx.setSize)) {
    const slot = slotAt(ctx, o);
    if (!answers(slot) || !slot?.node) continue;
    const node = slot.node;
    if (isVoter(doc, node.node_id)) continue;
    if (node.cluster_id !== null && node.cluster_id !== ctx.clusterId) continue; // foreign: addMembers stalls
    const lost = ctx.prev.members?.find((m) => m.pod === slot.pod.name && m.id !== node.node_id)?.id;
    const member = lost === undefined ? undefined : memberDoc(doc, lost);
    if (lost === undefined || !member || member.is_reachable) continue;
    // Another slot's node answering as the recorded member means it moved, not that it is lost.
    if (ctx.obs.slots.some((s) => s.node?.node_id === lost)) continue;
    return { slot: slot as AnsweringSlot, lost };
  }
  return null;
}

/** Replace a lost member: remove it, then add the pod's new node (status.operation kind Replace). */
export const replaceMembers: Rule = (ctx) => {
  const doc = ctx.doc;
  if (!doc || doc.leader_id === null) return null;
  const continuing = continueReplace(ctx);
  if (continuing) return continuing;
  const r = replacementOf(ctx);
  if (!r) return null;
  const { slot, lost } = r;
  const pod = slot.pod.name;
  const j = slot.pod.ordinal;
  const newId = slot.node.node_id;
  const op = { ...operation(ctx, 'Replace', 'removing', j), replaces: lost };
  const risk = removalRisk(doc, lost);
  if (risk) {
    const message = `cannot replace ${lost} (${pod}) by ${newId} yet: ${risk}; waiting for the other members`;
    return stall({ reason: 'QuorumAtRisk', message }, op, REQUEUE_MS.health);
  }
  const retry = removeRetry(ctx, lost, pod, op);
  if ('stall' in retry) return retry.stall;
  const { events, stalled } = retry;
  const message = `${pod} lost its data and came back as ${newId}: removing its old member ${lost}, then adding ${newId}`;
  events.push({ type: 'Normal', reason: 'ReplacingMember', message });
  return {
    action: { type: 'remove-member', ordinal: j, nodeId: lost },
    operation: op,
    ...(stalled ? { stalled } : { progress: { reason: 'ReplacingMember', message } }),
    events,
  };
};

/** After the lost member left: add the slot's new node (the safe add flow, learner first). */
function continueReplace(ctx: Ctx): ReturnType<Rule> {
  const prev = ctx.prevOp;
  if (prev?.kind !== 'Replace' || prev.ordinal === undefined) return null;
  const doc = ctx.doc!;
  const slot = slotAt(ctx, prev.ordinal);
  if (!answers(slot) || !slot?.node) return null;
  const lost = prev.replaces;
  if (lost !== undefined && memberDoc(doc, lost)) return null; // not removed yet: decide afresh
  const node = slot.node;
  if (isVoter(doc, node.node_id) || (node.cluster_id !== null && node.cluster_id !== ctx.clusterId)) {
    return null;
  }
  const op = { ...operation(ctx, 'Replace', 'adding', prev.ordinal), ...(lost ? { replaces: lost } : {}) };
  const retry = addRetry(ctx, node.node_id, slot.pod.name, op);
  if ('stall' in retry) return retry.stall;
  const { events, problems } = retry;
  const message = `adding ${node.node_id} (${slot.pod.name}) in place of ${lost ?? 'its lost member'}`;
  events.push({ type: 'Normal', reason: 'AddingMember', message });
  return {
    action: { type: 'add-member', ordinal: prev.ordinal },
    operation: op,
    progress: { reason: 'ReplacingMember', message },
    problems,
    events,
  };
}

/** The event once a replacement is complete: the slot's new node votes. */
export function memberReplaced(ctx: Ctx): { events: PlanEvent[] } | null {
  const prev = ctx.prev.operation;
  if (prev?.kind !== 'Replace' || prev.step !== 'adding' || prev.ordinal === undefined || !ctx.doc)
    return null;
  const node = slotAt(ctx, prev.ordinal)?.node;
  if (!node || !isVoter(ctx.doc, node.node_id)) return null;
  const message = `${slotAt(ctx, prev.ordinal)?.pod.name ?? prev.ordinal} now holds member ${node.node_id}, which replaced the lost member ${prev.replaces ?? '(unknown)'}`;
  return { events: [{ type: 'Normal', reason: 'MemberReplaced', message }] };
}
