// The planner's shared ground: the digested observation (Ctx) every rule reads, what a rule
// decides, how long to wait, and the lookups the rules share. Pure, like the rest of plan().

import type { ClusterStatus as ClusterStatusDoc, InternalStatus } from '../../../node/api/admin-contract.js';
import type { ClusterSpec, ClusterStatus, OperationStatus } from '../../api/cluster.js';
import type { Note } from '../conditions.js';
import type { Action, Observation, Plan, SlotView } from '../types.js';

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
export interface Decision {
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

export type Rule = (ctx: Ctx) => Decision | null;

/** The observation, digested once for every rule. */
export interface Ctx {
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

export function digest(obs: Observation): Ctx {
  const prev = obs.cluster.status ?? {};
  const doc = obs.status;
  const answering = obs.slots.map((s) => s.node).filter((n): n is InternalStatus => n !== null);
  const bootstrapped =
    prev.clusterId !== undefined ||
    (doc?.cluster_id ?? null) !== null ||
    answering.some((n) => n.initialized || n.cluster_id !== null);
  // A survivor rebuilt after a quorum loss leads a new cluster that names the recorded one: that
  // is this cluster now, even before the status recorded it (the operator may stop in between).
  const successor = answering.find(
    (n) =>
      prev.clusterId !== undefined &&
      n.cluster_id !== null &&
      n.recovered_from?.cluster_id === prev.clusterId,
  )?.cluster_id;
  const clusterId =
    successor ??
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

/** Whether the previous operation was the last step of a scale-down, now done (or nothing to do). */
export function reclaimFinished(ctx: Ctx): boolean {
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
export function stillMember(ctx: Ctx, ordinal: number): boolean {
  const pod = podName(ctx, ordinal);
  const recorded = ctx.prev.members?.find((m) => m.pod === pod)?.id;
  return recorded !== undefined && (ctx.doc === null || memberDoc(ctx.doc, recorded) !== undefined);
}

// -- Helpers -------------------------------------------------------------------------------------

export function operation(
  ctx: Ctx,
  kind: OperationStatus['kind'],
  step: string,
  ordinal?: number,
): OperationStatus {
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

export function stall(
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

export function waitFor(what: string): Action {
  return { type: 'wait', reason: `waiting for ${what}`, requeueMs: REQUEUE_MS.progress };
}

export function slotAt(ctx: Ctx, ordinal: number): SlotView | undefined {
  return ctx.obs.slots.find((s) => s.pod.ordinal === ordinal);
}

/** The slot's pod runs and its node answered. */
export function answers(slot: SlotView | undefined): boolean {
  return slot?.pod.running === true && slot.node !== null;
}

export function problemOf(slot: SlotView | undefined, ordinal: number): string {
  if (!slot) return `slot ${ordinal} does not exist yet`;
  if (!slot.pod.running) return slot.error ?? 'not running';
  return slot.error ?? 'no answer';
}

export function podName(ctx: Ctx, ordinal: number): string {
  return slotAt(ctx, ordinal)?.pod.name ?? `${ctx.name}-${ordinal}`;
}

/**
 * The node id in slot `ordinal`: what its node answers, else what the previous status recorded for
 * its pod (unless another slot's node answers with that id now).
 */
export function nodeIdOf(ctx: Ctx, ordinal: number): string | undefined {
  const slot = slotAt(ctx, ordinal);
  if (slot?.node) return slot.node.node_id;
  const pod = podName(ctx, ordinal);
  const known = ctx.prev.members?.find((m) => m.pod === pod)?.id;
  if (known === undefined || ctx.obs.slots.some((s) => s.node?.node_id === known)) return undefined;
  return known;
}

/** Members that no answering slot's node is. */
export function unmappedMembers(ctx: Ctx): string[] {
  const inSlots = new Set(ctx.obs.slots.flatMap((s) => (s.node ? [s.node.node_id] : [])));
  return Object.keys(ctx.doc?.nodes ?? {}).filter((id) => !inSlots.has(id));
}

export function memberDoc(doc: ClusterStatusDoc, id: string): MemberDoc | undefined {
  return Object.hasOwn(doc.nodes, id) ? doc.nodes[id] : undefined;
}

export function range(n: number): number[] {
  return Array.from({ length: Math.max(0, n) }, (_, i) => i);
}

/** `o` without its undefined properties (a status without noise; null stays). */
export function compact<T extends object>(o: { [K in keyof T]: T[K] | undefined }): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
