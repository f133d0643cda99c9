// Questions about the membership the aggregated status reports and the admin operation it
// recorded: who votes, whether a removal keeps a quorum, whether (and when) to retry a refusal.

import type { ClusterStatus as ClusterStatusDoc, Operation } from '../../../node/api/admin-contract.js';
import { type Ctx, memberDoc, QUORUM_RETRY_MS } from './context.js';

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
