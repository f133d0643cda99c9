// Questions about the membership the aggregated status reports and the admin operation it
// recorded: who votes, whether a removal keeps a quorum, whether (and when) to retry a refusal.

import type { ClusterStatus as ClusterStatusDoc, Operation } from '../../../node/api/admin-contract.js';
import type { Note } from '../conditions.js';
import {
  type Ctx,
  type Decision,
  memberDoc,
  type PlanEvent,
  QUORUM_RETRY_MS,
  REQUEUE_MS,
  stall,
} from './context.js';

export function isVoter(doc: ClusterStatusDoc, id: string): boolean {
  return memberDoc(doc, id)?.voter === true;
}

export function reachableVoters(doc: ClusterStatusDoc): string[] {
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
export function failedOperation(ctx: Ctx, kind: Operation['kind'], nodeId: string): Operation | null {
  const op = ctx.obs.operation;
  return op && op.kind === kind && op.node_id === nodeId && op.state === 'failed' ? op : null;
}

/** How long until a refused operation may be asked again (0: now). */
export function retryDelay(ctx: Ctx, failed: Operation): number {
  const at = Date.parse(failed.finished_at ?? failed.created_at);
  if (Number.isNaN(at)) return 0;
  return Math.max(0, at + QUORUM_RETRY_MS - ctx.obs.now.getTime());
}

export function errorText(op: Operation): string {
  return op.error ? `${op.error.code}: ${op.error.message}` : `failed at step ${op.step}`;
}

/** What a retry of a failed admin operation carries: the events and notes, or a stall instead. */
export type Retry = { stall: Decision } | { events: PlanEvent[]; stalled?: Note; problems: Note[] };

/**
 * Before (re)asking to remove `nodeId` (pod `pod`) under `op`: a QUORUM_AT_RISK refusal is retried
 * only after QUORUM_RETRY_MS (stalled meanwhile, and stalled-but-retrying after); any other failure
 * is retried at once with a RemoveMemberFailed warning.
 */
export function removeRetry(ctx: Ctx, nodeId: string, pod: string, op: Decision['operation']): Retry {
  const failed = failedOperation(ctx, 'remove-node', nodeId);
  if (failed?.error?.code === 'QUORUM_AT_RISK') {
    const stalled: Note = {
      reason: 'QuorumAtRisk',
      message: `removing ${nodeId} refused: ${failed.error.message}`,
    };
    const wait = retryDelay(ctx, failed);
    if (wait > 0) return { stall: stall(stalled, op, Math.min(wait, REQUEUE_MS.stalled)) };
    return { events: [], stalled, problems: [] };
  }
  if (!failed) return { events: [], problems: [] };
  const message = `removing ${nodeId} (${pod}) failed: ${errorText(failed)}; retrying`;
  return { events: [{ type: 'Warning', reason: 'RemoveMemberFailed', message }], problems: [] };
}

/**
 * Before (re)asking to add `nodeId` (pod `pod`) under `op`: a node whose id was retired can never
 * rejoin (stall, naming the fix); any other failure is retried with an AddMemberFailed warning.
 */
export function addRetry(ctx: Ctx, nodeId: string, pod: string, op: Decision['operation']): Retry {
  const failed = failedOperation(ctx, 'add-node', nodeId);
  if (failed?.error?.code === 'RETIRED_NODE_ID') {
    const message = `${pod} holds node ${nodeId}, which was removed from the cluster and can never rejoin; delete its volume to give it a new identity`;
    return { stall: stall({ reason: 'RetiredMember', message }, op) };
  }
  if (!failed) return { events: [], problems: [] };
  const message = `adding ${nodeId} (${pod}) failed: ${errorText(failed)}; retrying`;
  return {
    events: [{ type: 'Warning', reason: 'AddMemberFailed', message }],
    problems: [{ reason: 'AddMemberFailed', message }],
  };
}
