// plan: the pure heart of the reconciler. From one observation it picks the ONE next idempotent
// step, the status to write and the events to record. No I/O, no clock (obs.now), no randomness:
// the same observation always gives the same plan, so table tests drive every branch.
//
// The rules, first match wins:
//   paused                     -> wait (nothing else)
//   never bootstrapped         -> restore flow (spec.restore) or bootstrap flow
//   unsupported settings       -> stalled (the platform cannot run them: pod-ip addressing with TLS)
//   bootstrapped:
//     reclaim                  -> delete the volume of a slot a scale-down shrank away
//     recover                  -> recreate the member slots after the set vanished
//     certificates due         -> re-issue them (missing, broken, within 30 days of expiry)
//     owned objects drifted    -> apply them again (a deleted Service, a budget off the live voters)
//     CA rotation              -> its next step (start, promote, finish) or wait for the members
//                                 (each phase moves on after 5 minutes even if members are down)
//     status unavailable       -> wait
//     quorum lost              -> wait and say so; rebuild from a survivor only with spec.recovery
//     after a recovery         -> wipe the slots that still hold the old cluster's data
//     cluster id mismatch      -> stalled
//     admin operation running  -> wait for it
//     scale down               -> transfer leadership / remove / shrink, highest ordinal first
//     replace members          -> a pod that lost its data: remove its dead member, add its new node
//     add members              -> add the lowest slot whose node is not a voter (stalled if foreign)
//     grow                     -> one new slot when every slot holds a voter
//     rolling update           -> restart members on a new pod template, one at a time, leader last
//     auth                     -> spec.auth's users, roles and client certificates, when no step is in flight
//     health                   -> wait while a member is down or the cluster unhealthy
//     converged                -> none
// A spec.restore on a bootstrapped cluster that was not created by that restore is refused with a
// Warning event; everything else goes on.
//
// The rules live in ./plan/: context.ts (the digested observation and shared lookups),
// bootstrap.ts (paused, restore, bootstrap), scale.ts (reclaim, scale down, add, grow),
// health.ts (recover, status, cluster id, operation, health), membership.ts (quorum and retries),
// owned.ts (unsupported settings, certificates, CA rotation, owned objects and the budget),
// auth.ts (spec.auth's users, roles and client certificates).

import type { ClusterStatus, OperationStatus } from '../api/cluster.js';
import { type Assessment, deriveConditions, findCondition, isConditionTrue } from './conditions.js';
import { authStatus, syncAuth } from './plan/auth.js';
import { bootstrapFlow, paused, restoreFlow } from './plan/bootstrap.js';
import {
  type Ctx,
  compact,
  type Decision,
  digest,
  type Phase,
  type PlanEvent,
  podName,
  type Rule,
  reclaimFinished,
  stillMember,
} from './plan/context.js';
import { awaitHealth, awaitOperation, checkClusterId, recoverMembers, requireStatus } from './plan/health.js';
import {
  desiredMinAvailable,
  refuseUnsupported,
  renewCertificates,
  repairOwned,
  rotateCa,
} from './plan/owned.js';
import { recoveredFromStatus, recoverQuorum, wipeOldMembers } from './plan/recovery.js';
import { memberReplaced, replaceMembers } from './plan/replace.js';
import { rollingUpdate } from './plan/rolling.js';
import { addMembers, grow, reclaimOrphanVolume, reclaimVolume, scaleDown } from './plan/scale.js';
import type { Observation, Plan, SlotView } from './types.js';

export { type Phase, type PlanEvent, QUORUM_RETRY_MS, REQUEUE_MS } from './plan/context.js';
export { removalRisk } from './plan/membership.js';

// -- Entry point ---------------------------------------------------------------------------------

export function plan(obs: Observation): Plan {
  const ctx = digest(obs);
  const decided = decide(ctx);
  // Whatever applies the members' objects applies the budget the live voters need.
  const decision =
    decided.action.type === 'ensure-members'
      ? {
          ...decided,
          action: { ...decided.action, minAvailable: desiredMinAvailable(ctx, decided.action.size) },
        }
      : decided;
  const notices = ctx.spec.paused
    ? []
    : [restoreRefused(ctx), volumeRetained(ctx), memberReplaced(ctx)].filter((n) => n !== null);
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
    recoveredFrom: recoveredFromStatus(ctx),
    operation,
    auth: authStatus(ctx),
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
      ? [refuseUnsupported, ctx.spec.restore ? restoreFlow : bootstrapFlow]
      : [
          refuseUnsupported,
          reclaimVolume,
          reclaimOrphanVolume,
          recoverMembers,
          renewCertificates,
          repairOwned,
          rotateCa,
          requireStatus,
          recoverQuorum,
          wipeOldMembers,
          checkClusterId,
          awaitOperation,
          scaleDown,
          replaceMembers,
          addMembers,
          grow,
          rollingUpdate,
          syncAuth,
          awaitHealth,
        ];
  for (const rule of rules) {
    const d = rule(ctx);
    if (d) return d;
  }
  return { action: { type: 'none' }, operation: null, idle: { reason: 'Converged', message: 'converged' } };
}

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
