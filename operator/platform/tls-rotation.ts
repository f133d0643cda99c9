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
// - When to take each step is plan()'s decision (reconcile/plan/owned.ts caRotationStep, pure and
//   table-tested): a rotation starts when less than a third of the CA's lifetime remains, long
//   before it expires (an expired CA is replaced outright by tls-secrets.ts). Here the step is
//   applied to the CA set; the caller generates keys and writes Secrets.

import { createHash, X509Certificate } from 'node:crypto';
import { z } from 'zod';
import type { CertKeyPair } from '../../node/certs/index.js';

export const CA_ROTATION_PHASE_ANNOTATION = 'conflux.io/ca-rotation-phase';
export const CA_ROTATION_SINCE_ANNOTATION = 'conflux.io/ca-rotation-phase-since';

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
