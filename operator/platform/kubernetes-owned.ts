// What a cluster owns besides its StatefulSet, as the planner sees it (reconcile/types.ts
// OwnedView): which Services and which disruption budget are missing or changed by hand, and the
// TLS material's validity (each certificate's dates, fingerprint and clock-free defects). No I/O:
// kubernetes.ts reads the objects and hands them here; plan() decides what to do about them.

import { X509Certificate } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { V1PodDisruptionBudget, V1Secret, V1Service } from '@kubernetes/client-node';
import type { CertKeyPair } from '../../node/certs/index.js';
import type { ConfluxCluster } from '../api/cluster.js';
import type { CertView, TlsView } from '../reconcile/types.js';
import { fingerprintOf, rotationFromAnnotations } from './tls-rotation.js';
import { adminOrgProblem, caDefect, leafDefect, nodeNamesProblem } from './tls-secrets.js';

/** The Service fields the operator sets; a difference in any is drift. */
function serviceShape(s: V1Service | null) {
  const spec = s?.spec;
  return {
    clusterIP: spec?.clusterIP === 'None' ? 'None' : 'allocated',
    publishNotReadyAddresses: spec?.publishNotReadyAddresses ?? false,
    selector: spec?.selector ?? {},
    ports: (spec?.ports ?? []).map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort })),
  };
}

/** Why an owned Service must be applied again (missing, or its selector/ports/kind changed), or null. */
export function serviceDrift(desired: V1Service, actual: V1Service | null): string | null {
  const name = `Service ${desired.metadata?.name}`;
  if (!actual || actual.metadata?.deletionTimestamp) return `${name}: missing`;
  const want = serviceShape(desired);
  const have = serviceShape(actual);
  const changed = (Object.keys(want) as (keyof typeof want)[]).filter(
    (k) => !isDeepStrictEqual(want[k], have[k]),
  );
  return changed.length > 0 ? `${name}: ${changed.join(', ')} changed` : null;
}

/** Why the disruption budget must be applied again (missing, or its selector changed), or null. */
export function budgetDrift(
  desired: V1PodDisruptionBudget,
  actual: V1PodDisruptionBudget | null,
): string | null {
  const name = `PodDisruptionBudget ${desired.metadata?.name}`;
  if (!actual || actual.metadata?.deletionTimestamp) return `${name}: missing`;
  const want = desired.spec?.selector?.matchLabels ?? {};
  const have = actual.spec?.selector?.matchLabels ?? {};
  return isDeepStrictEqual(want, have) && !actual.spec?.maxUnavailable ? null : `${name}: selector changed`;
}

/** The budget's minAvailable as a number (null: none, or a percentage the operator never sets). */
export function budgetMinAvailable(actual: V1PodDisruptionBudget | null): number | null {
  const v = actual?.spec?.minAvailable;
  return typeof v === 'number' ? v : null;
}

const text = (secret: V1Secret | null, key: string) => {
  const raw = secret?.data?.[key];
  return raw === undefined ? undefined : Buffer.from(raw, 'base64').toString('utf8');
};

function pairOf(secret: V1Secret | null, certKey: string, keyKey: string): CertKeyPair | undefined {
  const certPem = text(secret, certKey);
  const keyPem = text(secret, keyKey);
  return certPem && keyPem ? { certPem, keyPem } : undefined;
}

/** A certificate's view, or null when it cannot be read at all. */
function viewOf(certPem: string, problem: string | null): CertView | null {
  try {
    const cert = new X509Certificate(certPem);
    return {
      notBefore: new Date(cert.validFrom).toISOString(),
      notAfter: new Date(cert.validTo).toISOString(),
      fingerprint: fingerprintOf(certPem),
      problem,
    };
  } catch {
    return null;
  }
}

/** A leaf's view: null when missing or unreadable (then plan re-issues it as missing). */
function leafView(
  pair: CertKeyPair | undefined,
  caPem: string | undefined,
  check: (pem: string) => string | null,
) {
  if (!pair) return null;
  const problem = caPem ? leafDefect(pair, caPem, check) : check(pair.certPem);
  return viewOf(pair.certPem, problem);
}

export interface TlsSecrets {
  ca: V1Secret | null;
  node: V1Secret | null;
  admin: V1Secret | null;
}

/** The TLS material of `cluster` as its Secrets hold it. */
export function tlsView(cluster: ConfluxCluster, secrets: TlsSecrets, clusterDomain?: string): TlsView {
  const managed = cluster.spec.tls.operatorManaged;
  const node = pairOf(secrets.node, 'tls.crt', 'tls.key');
  const admin = pairOf(secrets.admin, 'tls.crt', 'tls.key');
  const nodeCheck = (pem: string) => nodeNamesProblem(cluster, pem, clusterDomain);
  if (!managed) {
    // The user's own Secrets: only their validity is reported, never re-issued.
    return {
      managed,
      ca: null,
      caProblem: null,
      rotation: { phase: null, since: null, next: null },
      node: node ? viewOf(node.certPem, null) : null,
      admin: admin ? viewOf(admin.certPem, null) : null,
    };
  }
  const caPair = pairOf(secrets.ca, 'ca.crt', 'ca.key');
  const caProblem = caDefect(caPair);
  const ca = caPair && !caProblem ? viewOf(caPair.certPem, null) : null;
  const state = rotationFromAnnotations(secrets.ca?.metadata?.annotations);
  const nextPem = text(secrets.ca, 'next-ca.crt');
  return {
    managed,
    ca,
    caProblem: ca ? null : (caProblem ?? 'unreadable'),
    rotation: {
      phase: state.phase,
      since: state.since ? state.since.toISOString() : null,
      next: state.phase === 'trust-new' && nextPem ? viewOf(nextPem, null) : null,
    },
    node: leafView(node, caPair?.certPem, nodeCheck),
    admin: leafView(admin, caPair?.certPem, adminOrgProblem),
  };
}
