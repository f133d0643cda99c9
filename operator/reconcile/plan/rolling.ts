// The rolling update: when the pod template changes (image, resources, Raft timings, env), the
// members move to the new revision one at a time — learners first, then followers, the leader
// last after handing its leadership to a member that already runs the new revision. Each
// restarted member must come back Ready, as the same node, and caught up before the next goes;
// a voter goes down only while the cluster's fault tolerance is at least 1, so it never drops
// below zero. A member that does not come back within the deadline stops the roll (Stalled,
// RollingUpdateFailed) with the rest of the cluster serving; a new revision resumes it with
// that member first.
//
// status.operation records the member in flight: kind RollingUpdate, its ordinal, the revision it
// was restarted into, when (startedAt, the deadline's origin) and the step (restarting,
// waiting-ready, catching-up, transferring).

import type { OperationStatus } from '../../api/cluster.js';
import type { Note } from '../conditions.js';
import type { SlotView } from '../types.js';
import {
  answers,
  type Ctx,
  compact,
  type Decision,
  memberDoc,
  nodeIdOf,
  podName,
  problemOf,
  REQUEUE_MS,
  type Rule,
  range,
  slotAt,
} from './context.js';

/** How long a restarted member may take to come back Ready and caught up, unless the spec says. */
export const READY_TIMEOUT_S_DEFAULT = 180;
/** A restarted member is caught up when the leader sees it at most this many entries behind. */
export const CAUGHT_UP_MAX_LAG = 100;

const KIND = 'RollingUpdate';

export const rollingUpdate: Rule = (ctx) => {
  const target = ctx.obs.templateRevision;
  if (target === undefined || ctx.setSize !== ctx.replicas || !ctx.doc) return null;
  const prev = ctx.prevOp?.kind === KIND ? ctx.prevOp : null;
  const outdated = range(ctx.setSize)
    .map((o) => slotAt(ctx, o))
    .filter((s): s is SlotView => s?.pod.outdated === true);

  if (prev?.ordinal !== undefined && prev.step !== 'transferring') {
    const k = prev.ordinal;
    if (prev.revision !== target && slotAt(ctx, k)?.pod.outdated) {
      // The template changed while this member was being rolled (a fix, or a newer version).
      return restart(ctx, k, target, `the pod template changed to ${target}`);
    }
    if (prev.revision === target) {
      const pending = notBack(ctx, k);
      if (pending) return awaitMember(ctx, prev, pending);
    }
  }
  if (outdated.length === 0) {
    if (!prev) return null;
    const message = `every member runs pod template revision ${target}`;
    return {
      action: { type: 'none' },
      operation: null,
      idle: { reason: 'RollingUpdateCompleted', message },
      events: [{ type: 'Normal', reason: 'RollingUpdateCompleted', message }],
    };
  }
  return next(ctx, outdated, target);
};

/** Pick the next member to roll, or say what the roll waits for. */
function next(ctx: Ctx, outdated: SlotView[], target: string): Decision {
  const doc = ctx.doc!;
  const healthy = (s: SlotView) => answers(s) && s.pod.ready && caughtUp(ctx, s.pod.ordinal) === null;
  // A member that is down already (no answer, or unreachable for the cluster) costs no fault
  // tolerance to restart: it goes first. One that answers but lags is waited for.
  const down = outdated.find((s) => {
    const id = s.node?.node_id;
    return !answers(s) || (id !== undefined && memberDoc(doc, id)?.is_reachable === false);
  });
  if (down) return restart(ctx, down.pod.ordinal, target, 'it is not serving on the old revision');
  const blocking = range(ctx.setSize).filter((o) => {
    const s = slotAt(ctx, o);
    return !s || !healthy(s);
  });
  if (blocking.length > 0) {
    const detail = blocking.map((o) => `${podName(ctx, o)} (${whyUnhealthy(ctx, o)})`).join(', ');
    return waiting(`waiting for ${detail} before restarting the next member`);
  }
  if (doc.leader_id === null) return waiting('waiting for a leader before restarting the next member');
  const roleOf = (s: SlotView) => {
    const id = s.node?.node_id;
    if (id === doc.leader_id) return 2;
    return id !== undefined && memberDoc(doc, id)?.voter === false ? 0 : 1;
  };
  const ordered = [...outdated].sort((a, b) => roleOf(a) - roleOf(b) || b.pod.ordinal - a.pod.ordinal);
  const chosen = ordered[0]!;
  const k = chosen.pod.ordinal;
  const id = chosen.node?.node_id ?? nodeIdOf(ctx, k) ?? 'unknown';
  const voter = roleOf(chosen) !== 0;
  if (voter && doc.fault_tolerance < 1) {
    return waiting(
      `restarting ${podName(ctx, k)} (voter ${id}) would take fault tolerance ${doc.fault_tolerance} below zero`,
    );
  }
  if (roleOf(chosen) === 2) {
    const message = `moving leadership away from ${id} (${podName(ctx, k)}), the last member to roll`;
    return {
      action: { type: 'transfer-leader', ordinal: k },
      operation: op(ctx, k, 'transferring', target, ctx.prevOp?.step === 'transferring'),
      progress: { reason: KIND, message },
      events: [{ type: 'Normal', reason: 'TransferringLeader', message }],
    };
  }
  return restart(ctx, k, target, voter ? 'follower' : 'learner');
}

function restart(ctx: Ctx, k: number, target: string, why: string): Decision {
  const id = nodeIdOf(ctx, k);
  const message = `restarting ${podName(ctx, k)}${id ? ` (node ${id})` : ''} on pod template revision ${target}: ${why}`;
  return {
    action: { type: 'restart-member', ordinal: k, revision: target },
    operation: op(ctx, k, 'restarting', target, false),
    progress: { reason: KIND, message },
    events: [{ type: 'Normal', reason: 'RestartingMember', message }],
  };
}

/** The restarted member is not back yet: wait, or stall once the deadline passed. */
function awaitMember(ctx: Ctx, prev: OperationStatus, pending: { step: string; problem: string }): Decision {
  const k = prev.ordinal!;
  const pod = podName(ctx, k);
  const timeoutS = ctx.spec.rollingUpdate?.readyTimeoutSeconds ?? READY_TIMEOUT_S_DEFAULT;
  const elapsedMs = ctx.obs.now.getTime() - Date.parse(prev.startedAt);
  if (elapsedMs > timeoutS * 1000) {
    const note: Note = {
      reason: 'RollingUpdateFailed',
      message: `${pod} did not come back on pod template revision ${prev.revision} within ${timeoutS}s: ${pending.problem}; the roll is stopped and the other members keep serving; a new revision resumes it with ${pod} first`,
    };
    return {
      action: { type: 'wait', reason: `stalled: ${note.message}`, requeueMs: REQUEUE_MS.stalled },
      operation: 'keep',
      stalled: note,
      problems: [note],
      events: [{ type: 'Warning', reason: note.reason, message: note.message }],
    };
  }
  return {
    action: {
      type: 'wait',
      reason: `waiting for ${pod}: ${pending.problem}`,
      requeueMs: REQUEUE_MS.progress,
    },
    operation: { ...prev, step: pending.step },
    progress: { reason: KIND, message: `waiting for ${pod} after its restart: ${pending.problem}` },
  };
}

function waiting(message: string): Decision {
  return {
    action: { type: 'wait', reason: message, requeueMs: REQUEUE_MS.progress },
    operation: 'keep',
    progress: { reason: 'RollingUpdateWaiting', message },
  };
}

/** Why member `k`, restarted by the roll, is not back yet (null: it is back and caught up). */
export function notBack(ctx: Ctx, k: number): { step: string; problem: string } | null {
  const slot = slotAt(ctx, k);
  if (!slot) return { step: 'restarting', problem: 'its pod does not exist yet' };
  if (slot.pod.outdated) return { step: 'restarting', problem: 'it still runs the previous revision' };
  if (!answers(slot)) return { step: 'waiting-ready', problem: problemOf(slot, k) };
  const expected = ctx.prev.members?.find((m) => m.pod === slot.pod.name)?.id;
  const id = slot.node!.node_id;
  if (expected !== undefined && expected !== id) {
    return {
      step: 'waiting-ready',
      problem: `it came back as node ${id}, not as member ${expected} (its data did not survive)`,
    };
  }
  if (!slot.pod.ready) return { step: 'waiting-ready', problem: 'not Ready' };
  const lag = caughtUp(ctx, k);
  return lag === null ? null : { step: 'catching-up', problem: lag };
}

/** Null when the leader sees member `k` reachable and caught up, else why not. */
function caughtUp(ctx: Ctx, k: number): string | null {
  const id = slotAt(ctx, k)?.node?.node_id;
  const member = id === undefined ? undefined : memberDoc(ctx.doc!, id);
  if (!member) return 'not a member of the cluster';
  if (!member.is_reachable) return 'unreachable from the cluster';
  if (member.lag === null) return 'its lag is unknown';
  if (member.lag > CAUGHT_UP_MAX_LAG) return `${member.lag} entries behind the leader`;
  return null;
}

function whyUnhealthy(ctx: Ctx, o: number): string {
  const s = slotAt(ctx, o);
  if (!answers(s)) return problemOf(s, o);
  if (!s!.pod.ready) return 'not Ready';
  return caughtUp(ctx, o) ?? 'unhealthy';
}

function op(ctx: Ctx, k: number, step: string, revision: string, keepStart: boolean): OperationStatus {
  const prev = ctx.prevOp;
  const startedAt = keepStart && prev?.kind === KIND && prev.ordinal === k ? prev.startedAt : ctx.now;
  return compact<OperationStatus>({
    kind: KIND,
    ordinal: k,
    step,
    revision,
    startedAt,
    operationId: undefined,
  });
}
