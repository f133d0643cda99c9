// The rules for what a cluster owns besides its members, checked on every pass of a bootstrapped
// cluster (docs/ARCHITECTURE.md §8): settings the platform cannot run, certificates that are due,
// one step of a CA rotation, and owned objects that drifted (a deleted Service, a disruption
// budget that no longer matches the live voters). Pure: the observation carries each
// certificate's validity and fingerprint, never key material, and obs.now is the clock.
//
// Certificates (README "Certificate rotation"): a leaf is re-issued RENEW_BEFORE_MS before it
// expires, or at once when it is missing or broken; a CA is replaced outright only when missing
// or expired; a working CA is rotated once less than a third of its life is left, in three
// steps (start: trust old + new; promote: the new CA signs and the leaves are re-issued; finish:
// the old CA is dropped), each when every member reports it has loaded the previous one, or after
// CA_PHASE_WAIT_MS.

import type { OperationStatus } from '../../api/cluster.js';
import type { CertView, TlsView } from '../types.js';
import {
  type Ctx,
  type Decision,
  operation,
  REQUEUE_MS,
  type Rule,
  range,
  slotAt,
  stall,
} from './context.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** A leaf is re-issued this long before it expires (tls-secrets.ts RENEW_BEFORE_DAYS). */
export const RENEW_BEFORE_MS = 30 * DAY_MS;
/** A certificate whose start lies further ahead than this is not valid yet (clock skew allowance). */
const NOT_YET_SLACK_MS = 5 * 60 * 1000;
/** A CA is rotated once less than this share of its lifetime is left. */
export const ROTATE_CA_FRACTION = 1 / 3;
/**
 * How long a rotation phase waits for every member to report: long enough for the kubelet to
 * refresh a mounted Secret (about a minute) and the nodes to poll their files.
 */
export const CA_PHASE_WAIT_MS = 5 * 60 * 1000;

/** The kinds of status.operation a side step records (one pass each, never a flow of steps). */
const SIDE_STEPS: readonly OperationStatus['kind'][] = ['Repair', 'CertificateRenewal', 'Auth'];

/**
 * status.operation for a side step (a repair, a renewal): it runs alongside an operation in
 * flight and never replaces it. A replacement whose removal just changed the voters (and so the
 * budget), or a scale whose new member needs a certificate, stays the one status.operation names
 * and resumes next pass; only with no flow in flight (or another side step) is the side step named.
 */
export function sideStep(ctx: Ctx, kind: OperationStatus['kind'], step: string): Decision['operation'] {
  return ctx.prevOp && !SIDE_STEPS.includes(ctx.prevOp.kind) ? 'keep' : operation(ctx, kind, step);
}

/** The platform cannot run this cluster as specified (pod-ip addressing with TLS, say). */
export const refuseUnsupported: Rule = (ctx) => {
  const unsupported = ctx.obs.owned?.unsupported ?? [];
  if (unsupported.length === 0) return null;
  return stall({ reason: 'UnsupportedSettings', message: unsupported.join('; ') }, 'keep');
};

/** Why a leaf must be re-issued at `now`, or null. */
function leafDue(view: CertView | null, now: number): string | null {
  if (!view) return 'missing';
  if (view.problem) return view.problem;
  const notAfter = Date.parse(view.notAfter);
  if (Date.parse(view.notBefore) > now + NOT_YET_SLACK_MS) return 'not valid yet';
  if (notAfter <= now) return `expired at ${view.notAfter}`;
  if (notAfter - now < RENEW_BEFORE_MS) return `expires at ${view.notAfter}, within 30 days`;
  return null;
}

/** What must be re-issued now, one line each (empty: nothing). */
export function certificatesDue(tls: TlsView, now: number): string[] {
  const due: string[] = [];
  const caExpired = tls.ca !== null && Date.parse(tls.ca.notAfter) <= now;
  if (tls.ca === null || caExpired) {
    due.push(`CA: ${caExpired ? `expired at ${tls.ca?.notAfter}` : (tls.caProblem ?? 'missing')}`);
  }
  const node = leafDue(tls.node, now);
  if (node) due.push(`node certificate: ${node}`);
  const admin = leafDue(tls.admin, now);
  if (admin) due.push(`admin certificate: ${admin}`);
  return due;
}

/**
 * Operator-managed certificates that are missing, broken or within 30 days of expiry are
 * re-issued, on a settled cluster as much as during a change. A CA that exists but cannot be used
 * (a broken key) is never replaced silently: a new CA would split the running members.
 */
export const renewCertificates: Rule = (ctx) => {
  const tls = ctx.obs.owned?.tls;
  if (!tls?.managed) return null;
  if (tls.ca === null && tls.caProblem !== null && tls.caProblem !== 'missing') {
    const message = `the CA Secret holds no usable CA (${tls.caProblem}): fix ca.crt and ca.key, or delete the Secret to have a new CA made`;
    return stall({ reason: 'CAUnusable', message }, 'keep');
  }
  const reasons = certificatesDue(tls, ctx.obs.now.getTime());
  if (reasons.length === 0) return null;
  const message = `re-issuing ${reasons.join('; ')}`;
  return {
    action: { type: 'renew-certificates', reasons },
    operation: sideStep(ctx, 'CertificateRenewal', 'renewing'),
    progress: { reason: 'RenewingCertificates', message },
    events: [{ type: 'Normal', reason: 'RenewingCertificates', message }],
  };
};

/** What each member in the set has loaded, from its /_internal/status (null: did not report). */
function memberReports(ctx: Ctx): ({ cert: string; cas: string[] } | null)[] {
  return range(ctx.setSize).map((o) => {
    const tls = slotAt(ctx, o)?.node?.tls;
    return tls ? { cert: tls.cert.fingerprint_sha256, cas: tls.ca.map((c) => c.fingerprint_sha256) } : null;
  });
}

function pendingOf(
  reports: ({ cert: string; cas: string[] } | null)[],
  ok: (r: { cert: string; cas: string[] }) => boolean,
) {
  if (reports.length === 0) return 'no member to ask';
  const silent = reports.filter((r) => r === null).length;
  if (silent > 0) return `${silent} of ${reports.length} members did not report`;
  const behind = reports.filter((r) => r !== null && !ok(r)).length;
  return behind > 0 ? `${behind} of ${reports.length} members have not loaded it yet` : null;
}

/** The next CA rotation step, a wait, or null when no rotation is due or under way. */
export function caRotationStep(
  tls: TlsView,
  reports: ({ cert: string; cas: string[] } | null)[],
  now: number,
): { step: 'start' | 'promote' | 'finish'; reason: string } | { wait: string; phase: string } | null {
  const ca = tls.ca;
  if (!ca || Date.parse(ca.notAfter) <= now) return null;
  const { phase, since, next } = tls.rotation;
  const waited = since ? now - Date.parse(since) : 0;
  if (phase === null) {
    const from = Date.parse(ca.notBefore);
    const to = Date.parse(ca.notAfter);
    if (to - now >= (to - from) * ROTATE_CA_FRACTION) return null;
    return {
      step: 'start',
      reason: `less than a third of the CA's lifetime is left (it expires ${ca.notAfter})`,
    };
  }
  if (phase === 'trust-new') {
    if (!next) return { step: 'start', reason: 'the new CA of the rotation is missing; making one' };
    const pending = pendingOf(reports, (r) => r.cas.includes(next.fingerprint));
    if (pending === null) return { step: 'promote', reason: 'every member trusts the new CA' };
    if (waited >= CA_PHASE_WAIT_MS)
      return { step: 'promote', reason: `waited ${Math.round(waited / 1000)} s (${pending})` };
    return { wait: `every member to trust the new CA: ${pending}`, phase };
  }
  const served = tls.node?.fingerprint;
  const pending = pendingOf(reports, (r) => r.cert === served);
  if (pending === null) return { step: 'finish', reason: 'every member serves a certificate of the new CA' };
  if (waited >= CA_PHASE_WAIT_MS)
    return { step: 'finish', reason: `waited ${Math.round(waited / 1000)} s (${pending})` };
  return { wait: `every member to serve the new certificate: ${pending}`, phase };
}

const ROTATION_EVENTS = {
  start: ['CARotationStarted', 'a new CA is trusted alongside the current one'],
  promote: ['CARotationReissuing', 'node and admin certificates are re-issued from the new CA'],
  finish: ['CARotationCompleted', 'the old CA is no longer trusted'],
} as const;

/** One step of an operator-managed CA's rotation, visible in status.operation (kind CARotation). */
export const rotateCa: Rule = (ctx) => {
  const tls = ctx.obs.owned?.tls;
  if (!tls?.managed) return null;
  const next = caRotationStep(tls, memberReports(ctx), ctx.obs.now.getTime());
  if (next === null) return null;
  if ('wait' in next) {
    const message = `waiting for ${next.wait}`;
    return {
      action: { type: 'wait', reason: message, requeueMs: REQUEUE_MS.progress },
      operation: operation(ctx, 'CARotation', next.phase),
      progress: { reason: 'RotatingCA', message: `CA rotation (${next.phase}): ${message}` },
    };
  }
  const [reason, what] = ROTATION_EVENTS[next.step];
  const message = `${what}: ${next.reason}`;
  const step = next.step === 'start' ? 'trust-new' : next.step === 'promote' ? 'issue-new' : 'finishing';
  return {
    action: { type: 'rotate-ca', step: next.step, reason: next.reason },
    operation: operation(ctx, 'CARotation', step),
    progress: { reason: 'RotatingCA', message },
    events: [{ type: 'Normal', reason, message }],
  };
};

/** A majority of `voters`. */
function quorumOf(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The disruption budget's minAvailable for `pods` member pods: evictions may take down at most as
 * many pods as the live voters tolerate losing (any pod may be a voter, and learners of a scale in
 * progress count as pods), so a drain never breaks quorum. With spec.availability AllowDowntime
 * at least one pod may always go (a 1- or 2-member cluster is unavailable while it is moved,
 * instead of blocking the drain forever). Without the aggregated status the voters are the spec's.
 */
export function desiredMinAvailable(ctx: Ctx, pods: number): number {
  const voters = ctx.doc
    ? Object.values(ctx.doc.nodes).filter((n) => n.voter).length
    : Math.min(pods, ctx.replicas);
  const tolerance = Math.max(0, voters - quorumOf(voters));
  const allowed = ctx.spec.availability === 'AllowDowntime' ? Math.max(1, tolerance) : tolerance;
  return Math.max(0, pods - allowed);
}

/**
 * Owned objects that are missing or changed by hand are applied again, and the disruption budget
 * follows the live voters, on every pass: a deleted Service is back with the next pass.
 */
export const repairOwned: Rule = (ctx) => {
  const owned = ctx.obs.owned;
  if (!owned || ctx.setSize === 0) return null;
  // While no member answers, keep the budget as it is rather than guess the voters.
  const minAvailable = ctx.doc
    ? desiredMinAvailable(ctx, ctx.setSize)
    : (owned.pdbMinAvailable ?? desiredMinAvailable(ctx, ctx.setSize));
  const budget =
    owned.pdbMinAvailable !== null && owned.pdbMinAvailable !== minAvailable
      ? [`PodDisruptionBudget: minAvailable ${owned.pdbMinAvailable}, the live voters need ${minAvailable}`]
      : [];
  const repairs = [...owned.drift, ...budget];
  if (repairs.length === 0) return null;
  const message = repairs.join('; ');
  const driftOnly = owned.drift.length > 0;
  const decision: Decision = {
    action: { type: 'repair-owned', minAvailable, repairs },
    operation: sideStep(ctx, 'Repair', 'applying'),
    progress: { reason: 'RepairingOwnedObjects', message },
    events: [
      driftOnly
        ? { type: 'Warning', reason: 'RepairingOwnedObjects', message }
        : { type: 'Normal', reason: 'DisruptionBudgetUpdated', message },
    ],
  };
  return decision;
};
