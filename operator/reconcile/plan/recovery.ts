// Quorum-loss recovery, opt-in only. When a majority of the voters is gone, nothing happens on its
// own: the operator waits (the members may come back) and says so, naming spec.recovery. With
// `spec.recovery.forceNewClusterFrom` set, it rebuilds a one-member cluster from that survivor
// (POST /_cluster/force-new-cluster, etcd's --force-new-cluster): only if the survivor answers and
// no other reachable survivor holds a more up-to-date log. The survivor keeps its whole log under
// a NEW cluster id; every other slot is then wiped (its data belongs to the old cluster) and added
// back with a new id through the normal add flow. status.recoveredFrom records the recovery and the
// request it consumed, so a spec.recovery left in place is never acted on twice.

import type { InternalStatus } from '../../../node/api/admin-contract.js';
import type { ClusterStatus } from '../../api/cluster.js';
import type { SlotView } from '../types.js';
import { type Ctx, memberDoc, operation, REQUEUE_MS, type Rule, range, slotAt, stall } from './context.js';

type AnsweringSlot = SlotView & { node: InternalStatus };

/** The voters cannot form a quorum and no leader is known. */
export function quorumLost(ctx: Ctx): boolean {
  const doc = ctx.doc;
  return doc !== null && doc.leader_id === null && doc.fault_tolerance < 0;
}

/** spec.recovery's request, unless status.recoveredFrom says it was carried out already. */
export function pendingRecovery(ctx: Ctx): string | null {
  const request = ctx.spec.recovery?.forceNewClusterFrom;
  if (request === undefined || ctx.prev.recoveredFrom?.request === request) return null;
  return request;
}

/** How up to date a node's log is: last log term first, then last log index (Raft §5.4.1). */
function newer(a: InternalStatus, b: InternalStatus): boolean {
  const ta = a.last_log_term ?? 0;
  const tb = b.last_log_term ?? 0;
  return ta > tb || (ta === tb && a.log_index > b.log_index);
}

/** Answering slots whose node is a member of this (old) cluster. */
function survivors(ctx: Ctx): AnsweringSlot[] {
  const doc = ctx.doc!;
  return ctx.obs.slots.filter(
    (s): s is AnsweringSlot =>
      s.pod.running &&
      s.node?.initialized === true &&
      s.node.cluster_id === ctx.clusterId &&
      memberDoc(doc, s.node.node_id) !== undefined,
  );
}

function describe(s: AnsweringSlot): string {
  return `${s.node.node_id} (${s.pod.name}, log ${s.node.last_log_term ?? '?'}/${s.node.log_index})`;
}

/** While the quorum is lost: wait and say so, or, with spec.recovery, rebuild from the survivor. */
export const recoverQuorum: Rule = (ctx) => {
  const doc = ctx.doc;
  if (!doc || !quorumLost(ctx) || doc.cluster_id !== ctx.clusterId) return null;
  const voters = Object.entries(doc.nodes).filter(([, n]) => n.voter);
  const gone = voters.filter(([, n]) => !n.is_reachable).map(([id]) => id);
  const alive = survivors(ctx);
  const best = alive.reduce<AnsweringSlot | undefined>(
    (b, s) => (!b || newer(s.node, b.node) ? s : b),
    undefined,
  );
  const op = (step: string, ordinal?: number) => operation(ctx, 'Recovery', step, ordinal);
  const request = pendingRecovery(ctx);
  if (request === null) {
    const used = ctx.spec.recovery
      ? ` (spec.recovery.forceNewClusterFrom ${ctx.spec.recovery.forceNewClusterFrom} was used already, at ${ctx.prev.recoveredFrom?.at}: remove spec.recovery, then set it again)`
      : '';
    const hint = best ? `the most up-to-date survivor is ${describe(best)}` : 'no survivor answers';
    const message = `the cluster lost its quorum: ${gone.length} of ${voters.length} voters do not answer (${gone.join(', ')}); waiting for them to come back. If they are gone for good, set spec.recovery.forceNewClusterFrom to rebuild a one-member cluster from a survivor (${hint})${used}`;
    return stall({ reason: 'QuorumLost', message }, 'keep', REQUEUE_MS.health);
  }
  const target = alive.find((s) => s.pod.name === request || s.node.node_id === request);
  if (!target) {
    const message = `spec.recovery.forceNewClusterFrom names ${request}, which is not a member of cluster ${ctx.clusterId} that answers now; ${best ? `the most up-to-date survivor is ${describe(best)}` : 'no survivor answers'}`;
    return stall({ reason: 'RecoveryBlocked', message }, op('blocked'), REQUEST_RETRY_MS);
  }
  const better = alive.filter((s) => newer(s.node, target.node));
  if (better.length > 0 && best) {
    const message = `refusing to rebuild the cluster from ${describe(target)}: ${describe(best)} holds a more up-to-date log, and recovering from ${target.node.node_id} would lose what only it has; name ${best.pod.name} in spec.recovery.forceNewClusterFrom`;
    return stall({ reason: 'RecoveryRefused', message }, op('refused', target.pod.ordinal), REQUEST_RETRY_MS);
  }
  const message = `rebuilding the cluster from ${describe(target)} after losing ${gone.join(', ')}: it becomes the only member of a new cluster with its whole log; the other members are wiped and added back`;
  return {
    action: {
      type: 'force-new-cluster',
      ordinal: target.pod.ordinal,
      nodeId: target.node.node_id,
      expectedClusterId: ctx.clusterId!,
      request,
    },
    operation: op('forcing', target.pod.ordinal),
    progress: { reason: 'RecoveringQuorum', message },
    phase: 'Degraded',
    events: [{ type: 'Warning', reason: 'QuorumRecovered', message }],
  };
};

/** Re-check a refused or blocked request this often (the survivors may change). */
const REQUEST_RETRY_MS = REQUEUE_MS.health;

/** The old cluster's id, once this cluster was rebuilt from a survivor of it. */
function oldClusterId(ctx: Ctx): string | undefined {
  const rebuilt = ctx.obs.slots.find((s) => s.node?.cluster_id === ctx.clusterId && s.node?.recovered_from)
    ?.node?.recovered_from;
  return rebuilt?.cluster_id ?? ctx.prev.recoveredFrom?.clusterId;
}

/**
 * After a recovery: a slot whose node still belongs to the old cluster holds data that must never
 * mix with the new cluster's; wipe its volume and start it again empty (it then joins, with a new
 * id, through the add flow). One slot at a time.
 */
export const wipeOldMembers: Rule = (ctx) => {
  const old = oldClusterId(ctx);
  if (old === undefined || old === ctx.clusterId) return null;
  const stale = range(ctx.setSize)
    .map((o) => slotAt(ctx, o))
    .find((s) => s?.node?.cluster_id === old);
  if (!stale?.node) return null;
  const message = `wiping ${stale.pod.name}: its node ${stale.node.node_id} belongs to cluster ${old}, which was replaced by ${ctx.clusterId}; it rejoins empty, with a new id`;
  return {
    action: { type: 'recreate-member', ordinal: stale.pod.ordinal },
    operation: operation(ctx, 'Recovery', 'wiping', stale.pod.ordinal),
    progress: { reason: 'RecoveringQuorum', message },
    events: [{ type: 'Normal', reason: 'WipingMember', message }],
  };
};

/**
 * status.recoveredFrom: the recovery just observed (a survivor leads a new cluster that names the
 * recorded one), else the recorded one — without its consumed request once spec.recovery is gone,
 * so setting the same request again later is a new request.
 */
export function recoveredFromStatus(ctx: Ctx): ClusterStatus['recoveredFrom'] {
  const fresh = ctx.obs.slots.find(
    (s) =>
      ctx.prev.clusterId !== undefined &&
      s.node?.cluster_id === ctx.clusterId &&
      s.node?.recovered_from?.cluster_id === ctx.prev.clusterId &&
      ctx.clusterId !== ctx.prev.clusterId,
  );
  const r = fresh?.node?.recovered_from;
  if (fresh && r) {
    const request = ctx.spec.recovery?.forceNewClusterFrom;
    return {
      clusterId: r.cluster_id,
      nodeId: r.node_id,
      pod: fresh.pod.name,
      at: r.at,
      ...(request ? { request } : {}),
    };
  }
  const prev = ctx.prev.recoveredFrom;
  if (!prev || ctx.spec.recovery) return prev;
  const { request: _consumed, ...kept } = prev;
  return kept;
}
