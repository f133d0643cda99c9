// The Kubernetes side of CA rotation (plan() decides the steps, reconcile/plan/owned.ts;
// tls-rotation.ts applies them to the CA set): reading the rotation state from the CA Secret
// (`ca.crt`/`ca.key` sign, `next-ca.*` is the CA taking over, `previous-ca.crt` the one retiring;
// the phase in annotations), and writing the CA Secret back with exactly those keys.

import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { type CertKeyPair, generateCa } from '../../node/certs/index.js';
import type { ConfluxCluster } from '../api/cluster.js';
import { buildCaSecret } from './kubernetes-tls-objects.js';
import { applyCaRotation, type CaSet, rotationAnnotations, rotationFromAnnotations } from './tls-rotation.js';
import { CA_VALID_DAYS, keyMatches, needsRenewal } from './tls-secrets.js';

const NEXT_CERT = 'next-ca.crt';
const NEXT_KEY = 'next-ca.key';
const PREVIOUS_CERT = 'previous-ca.crt';

const text = (secret: V1Secret, key: string) => {
  const raw = secret.data?.[key];
  return raw === undefined ? undefined : Buffer.from(raw, 'base64').toString('utf8');
};

/**
 * The CA set the CA Secret records now, or null when it holds no usable CA (missing, broken or
 * expired: tls-secrets.ts replaces or refuses it, without an overlap).
 */
export function readCaSet(caSecret: V1Secret | null, now: Date): CaSet | null {
  const ca = caSecret && pairOf(caSecret, 'ca.crt', 'ca.key');
  if (!ca || !keyMatches(ca) || needsRenewal(ca.certPem, now, 0)) return null;
  const state = rotationFromAnnotations(caSecret.metadata?.annotations);
  const next = pairOf(caSecret, NEXT_CERT, NEXT_KEY);
  const previous = text(caSecret, PREVIOUS_CERT);
  return {
    ca,
    ...(state.phase === 'trust-new' && next ? { next } : {}),
    ...(state.phase === 'issue-new' && previous ? { previous } : {}),
    phase: state.phase,
    // A phase whose start was lost starts its wait now.
    since: state.phase ? (state.since ?? now) : null,
  };
}

/**
 * The CA set after the rotation step plan() chose (reconcile/plan/owned.ts): start makes the next
 * CA and trusts both, promote makes it the signing one, finish drops the old one.
 */
export async function stepCaRotation(
  cluster: ConfluxCluster,
  set: CaSet,
  step: 'start' | 'promote' | 'finish',
  now: Date,
): Promise<CaSet> {
  const name = cluster.metadata.name;
  // Valid from the operator's clock (slightly backdated, as every certificate it issues).
  const notBefore = new Date(now.getTime() - 5 * 60 * 1000);
  return applyCaRotation(set, { kind: step, reason: 'planned' }, now, () =>
    generateCa({ commonName: `conflux-ca-${name}`.slice(0, 64), validDays: CA_VALID_DAYS, notBefore }),
  );
}

/** The CA Secret for `set`: exactly its keys, and the rotation annotations. */
export function caSecretFor(cluster: ConfluxCluster, set: CaSet): V1Secret {
  const base = buildCaSecret(cluster, set.ca);
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  return {
    ...base,
    data: {
      ...base.data,
      ...(set.next ? { [NEXT_CERT]: b64(set.next.certPem), [NEXT_KEY]: b64(set.next.keyPem) } : {}),
      ...(set.previous ? { [PREVIOUS_CERT]: b64(set.previous) } : {}),
    },
  };
}

/**
 * Writes the CA Secret: created, or replaced (with its resourceVersion) when its data or rotation
 * annotations differ. Unlike the leaf Secrets' data, the rotation keys are replaced exactly, so a
 * finished rotation leaves no retired key behind; other keys, annotations, labels and owners stay.
 */
export async function writeCaSecret(
  core: CoreV1Api,
  desired: V1Secret,
  set: CaSet,
  existing: V1Secret | null,
  fieldManager: string,
): Promise<void> {
  const namespace = desired.metadata?.namespace ?? '';
  const wanted = rotationAnnotations(set);
  if (!existing) {
    const annotations = Object.fromEntries(
      Object.entries(wanted).filter((e): e is [string, string] => e[1] !== null),
    );
    const body = { ...desired, metadata: { ...desired.metadata, annotations } };
    await core.createNamespacedSecret({ namespace, body, fieldManager });
    return;
  }
  const have = existing.metadata?.annotations ?? {};
  const annotations: Record<string, string> = { ...have };
  for (const [k, v] of Object.entries(wanted)) {
    if (v === null) delete annotations[k];
    else annotations[k] = v;
  }
  // The rotation keys are exactly the set's; any other key (a hand-made CA Secret's) is kept.
  const data: Record<string, string> = { ...existing.data };
  for (const key of [NEXT_CERT, NEXT_KEY, PREVIOUS_CERT]) delete data[key];
  Object.assign(data, desired.data);
  const sameData = JSON.stringify(sorted(existing.data)) === JSON.stringify(sorted(data));
  const sameAnnotations = JSON.stringify(sorted(have)) === JSON.stringify(sorted(annotations));
  if (sameData && sameAnnotations) return;
  await core.replaceNamespacedSecret({
    name: desired.metadata?.name ?? '',
    namespace,
    fieldManager,
    body: {
      ...desired,
      data,
      metadata: { ...existing.metadata, annotations },
      ...(existing.type ? { type: existing.type } : {}),
    },
  });
}

function pairOf(secret: V1Secret, certKey: string, keyKey: string): CertKeyPair | undefined {
  const certPem = text(secret, certKey);
  const keyPem = text(secret, keyKey);
  return certPem && keyPem ? { certPem, keyPem } : undefined;
}

function sorted(record: Record<string, string> | undefined): [string, string][] {
  return Object.entries(record ?? {}).sort(([a], [b]) => a.localeCompare(b));
}
