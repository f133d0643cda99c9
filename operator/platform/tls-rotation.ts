// Rotation of an operator-managed cluster CA with an overlap, so no member and no operator call
// is ever cut off. Three phases, recorded in the CA Secret's annotations so a restarted operator
// resumes where it stopped:
//
//   trust-new  a new CA exists; every member and the operator trust old + new (the bundle);
//              leaf certificates are still the old CA's.
//   issue-new  once every member reports it trusts the new CA (or the phase's wait ran out), the
//              new CA becomes the signing one and node and admin certificates are re-issued from
//              it; the old CA stays in the bundle, so members still serving an old leaf are
//              trusted.
//   (done)     once every member serves the new certificate (or the wait ran out), the old CA is
//              dropped from the bundle.
//
// Invariants:
// - At every step each party trusts the issuer of every certificate it can be shown: the
//   bundle grows before any leaf changes, and shrinks only after every leaf changed.
// - decideCaRotation is pure (table-tested); the caller generates keys and writes Secrets.
// - A rotation starts when less than ROTATE_CA_FRACTION of the CA's lifetime remains, long
//   before it expires (an expired CA is replaced outright by tls-secrets.ts).

import { createHash, X509Certificate } from 'node:crypto';
import { z } from 'zod';
import type { CertKeyPair } from '../../node/certs/index.js';

export const CA_ROTATION_PHASE_ANNOTATION = 'conflux.io/ca-rotation-phase';
export const CA_ROTATION_SINCE_ANNOTATION = 'conflux.io/ca-rotation-phase-since';
/** Rotate when less than this share of the CA's lifetime is left. */
export const ROTATE_CA_FRACTION = 1 / 3;
/**
 * How long a phase waits for every member to report before moving on anyway: long enough for the
 * kubelet to refresh a mounted Secret (about a minute) and the nodes to poll their files.
 */
export const DEFAULT_PHASE_WAIT_MS = 5 * 60 * 1000;

export type CaRotationPhase = 'trust-new' | 'issue-new';

/** The CA material and rotation state kept in the CA Secret. */
export interface CaSet {
  /** The CA that signs leaf certificates now. */
  ca: CertKeyPair;
  /** trust-new: the CA that will take over. */
  next?: CertKeyPair;
  /** issue-new: the CA being retired (certificate only), still trusted. */
  previous?: string;
  phase: CaRotationPhase | null;
  /** When the current phase began. */
  since: Date | null;
}

/** What one member reported about its TLS material (null: it did not answer). */
export interface MemberTlsReport {
  certFingerprint: string;
  caFingerprints: string[];
}

export interface RotationObservation {
  now: Date;
  /** One entry per member that should answer; null for one that did not. */
  members: (MemberTlsReport | null)[];
  /** The node certificate currently in the node Secret. */
  nodeCertPem: string;
  phaseWaitMs?: number;
}

export type RotationDecision =
  | { kind: 'steady' }
  | { kind: 'start'; reason: string }
  | { kind: 'wait'; phase: CaRotationPhase; reason: string }
  | { kind: 'promote'; reason: string }
  | { kind: 'finish'; reason: string };

/** SHA-256 of a PEM certificate's DER, lowercase hex (as nodes report it). */
export function fingerprintOf(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex');
}

/**
 * The CAs every member and the operator must trust now, as one PEM bundle (signing CA first).
 * Outside a rotation it is the CA certificate exactly as stored, so Secrets stay byte-identical.
 */
export function trustBundle(set: CaSet): string {
  const pems = [set.ca.certPem, set.next?.certPem, set.previous].filter((p): p is string => !!p);
  return pems.map((p, i) => (i < pems.length - 1 && !p.endsWith('\n') ? `${p}\n` : p)).join('');
}

/** Whether a CA should be rotated at `now`: less than ROTATE_CA_FRACTION of its life is left. */
export function caDueForRotation(caPem: string, now: Date): boolean {
  const cert = new X509Certificate(caPem);
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  return to - now.getTime() < (to - from) * ROTATE_CA_FRACTION;
}

function everyone(members: (MemberTlsReport | null)[], ok: (m: MemberTlsReport) => boolean): string | null {
  if (members.length === 0) return 'no member to ask';
  const silent = members.filter((m) => m === null).length;
  if (silent > 0) return `${silent} of ${members.length} members did not report`;
  const behind = members.filter((m) => m !== null && !ok(m)).length;
  return behind > 0 ? `${behind} of ${members.length} members have not loaded it yet` : null;
}

/** The next step of the CA rotation. Pure. */
export function decideCaRotation(set: CaSet, obs: RotationObservation): RotationDecision {
  const waitMs = obs.phaseWaitMs ?? DEFAULT_PHASE_WAIT_MS;
  // A phase with no recorded start has waited nothing yet (the caller records one).
  const waited = set.since ? obs.now.getTime() - set.since.getTime() : 0;
  if (set.phase === null) {
    if (!caDueForRotation(set.ca.certPem, obs.now)) return { kind: 'steady' };
    const expires = new X509Certificate(set.ca.certPem).validTo;
    return {
      kind: 'start',
      reason: `less than a third of the CA's lifetime is left (it expires ${expires})`,
    };
  }
  if (set.phase === 'trust-new') {
    if (!set.next) return { kind: 'start', reason: 'the new CA of the rotation is missing; making one' };
    const next = fingerprintOf(set.next.certPem);
    const pending = everyone(obs.members, (m) => m.caFingerprints.includes(next));
    if (pending === null) return { kind: 'promote', reason: 'every member trusts the new CA' };
    if (waited >= waitMs)
      return { kind: 'promote', reason: `waited ${Math.round(waited / 1000)} s (${pending})` };
    return {
      kind: 'wait',
      phase: set.phase,
      reason: `waiting for every member to trust the new CA: ${pending}`,
    };
  }
  const served = fingerprintOf(obs.nodeCertPem);
  const pending = everyone(obs.members, (m) => m.certFingerprint === served);
  if (pending === null) return { kind: 'finish', reason: 'every member serves a certificate of the new CA' };
  if (waited >= waitMs)
    return { kind: 'finish', reason: `waited ${Math.round(waited / 1000)} s (${pending})` };
  return {
    kind: 'wait',
    phase: set.phase,
    reason: `waiting for every member to serve the new certificate: ${pending}`,
  };
}

/**
 * The CA set after `decision`. `newCa` makes the next CA (key generation; only called on start).
 * The leaves are the caller's: after `promote` they no longer chain to the signing CA, which
 * makes tls-secrets.ts re-issue them.
 */
export async function applyCaRotation(
  set: CaSet,
  decision: RotationDecision,
  now: Date,
  newCa: () => Promise<CertKeyPair>,
): Promise<CaSet> {
  switch (decision.kind) {
    case 'steady':
    case 'wait':
      return set;
    case 'start':
      return { ca: set.ca, next: await newCa(), phase: 'trust-new', since: now };
    case 'promote':
      if (!set.next) throw new Error('cannot promote: the rotation has no new CA');
      return { ca: set.next, previous: set.ca.certPem, phase: 'issue-new', since: now };
    case 'finish':
      return { ca: set.ca, phase: null, since: null };
  }
}

/** The rotation state as CA Secret annotations (null values remove an annotation). */
export function rotationAnnotations(set: CaSet): Record<string, string | null> {
  return {
    [CA_ROTATION_PHASE_ANNOTATION]: set.phase,
    [CA_ROTATION_SINCE_ANNOTATION]: set.since ? set.since.toISOString() : null,
  };
}

const annotationsSchema = z.object({
  [CA_ROTATION_PHASE_ANNOTATION]: z.enum(['trust-new', 'issue-new']).optional().catch(undefined),
  [CA_ROTATION_SINCE_ANNOTATION]: z.iso.datetime().optional().catch(undefined),
});

/**
 * Reads the rotation state back. An unknown phase reads as no rotation in progress; a phase
 * without a readable start has `since` null (its wait starts over).
 */
export function rotationFromAnnotations(annotations: Record<string, string> | undefined): {
  phase: CaRotationPhase | null;
  since: Date | null;
} {
  const parsed = annotationsSchema.parse(annotations ?? {});
  const phase = parsed[CA_ROTATION_PHASE_ANNOTATION] ?? null;
  const since = parsed[CA_ROTATION_SINCE_ANNOTATION];
  return { phase, since: phase && since ? new Date(since) : null };
}
