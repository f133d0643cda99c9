// The TLS Secrets of an operator-managed cluster on Kubernetes: read the CA, node and admin
// Secrets, take the CA rotation step plan() chose (kubernetes-ca-rotation.ts), re-issue what is
// due (tls-secrets.ts) and write the Secrets back, the CA first. User-provided Secrets are only
// checked. What is due is plan()'s to decide (reconcile/plan/owned.ts); this carries it out.

import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { ApiException } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ConfluxCluster } from '../api/cluster.js';
import { caSecretFor, readCaSet, stepCaRotation, writeCaSecret } from './kubernetes-ca-rotation.js';
import { requiredSecretNames, resourceNames } from './kubernetes-objects.js';
import { buildAdminTlsSecret, buildNodeTlsSecret } from './kubernetes-tls-objects.js';
import { type CaSet, trustBundle } from './tls-rotation.js';
import { needsRenewal, renewTlsMaterial, type TlsMaterial } from './tls-secrets.js';

export interface TlsIo {
  now: Date;
  log: Logger;
  /** The field manager of every write. */
  fieldManager: string;
  clusterDomain?: string;
  /** One CA rotation step to take first. */
  rotationStep?: 'start' | 'promote' | 'finish';
  /** How Secrets are read (the platform's cache); default straight from the API server. */
  readSecret?: (namespace: string, name: string) => Promise<V1Secret | null>;
}

/**
 * Makes the TLS Secrets current. Members re-read their mounted certificate files while they run
 * (node/certs/reload.ts), so a renewal does not change the pod template or restart pods.
 */
export async function ensureTlsSecrets(core: CoreV1Api, cluster: ConfluxCluster, o: TlsIo): Promise<void> {
  const { log, rotationStep } = o;
  const now = () => o.now;
  const readSecret =
    o.readSecret ?? ((namespace: string, name: string) => readSecretOrNull(core, namespace, name));
  const writeSecret = (desired: V1Secret, existing: V1Secret | null) =>
    writeSecretData(core, desired, existing, o.fieldManager);
  const names = requiredSecretNames(cluster);
  if (!names) return;
  const namespace = cluster.metadata.namespace;
  if (!cluster.spec.tls.operatorManaged) {
    const secret = await readSecret(namespace, names.node);
    const crt = secret && secretText(secret, 'tls.crt');
    const ca = secret && secretText(secret, 'ca.crt');
    if (!crt || !ca || !secretText(secret, 'tls.key')) {
      throw new Error(
        `node TLS Secret ${namespace}/${names.node} is missing or lacks ca.crt, tls.crt, tls.key`,
      );
    }
    if (needsRenewal(crt, now())) {
      log.warn({ secret: names.node }, 'the node certificate you provide expires soon (or has expired)');
    }
    return;
  }
  const caName = resourceNames(cluster).caSecret!;
  const [caSecret, nodeSecret, adminSecret] = await Promise.all([
    readSecret(namespace, caName),
    readSecret(namespace, names.node),
    readSecret(namespace, names.admin),
  ]);
  const current: Partial<TlsMaterial> = {};
  const ca = pairOf(caSecret, 'ca.crt', 'ca.key');
  const node = pairOf(nodeSecret, 'tls.crt', 'tls.key');
  const admin = pairOf(adminSecret, 'tls.crt', 'tls.key');
  if (ca) current.ca = ca;
  if (node) current.node = node;
  if (admin) current.admin = admin;
  // A working CA is rotated with an overlap, one step per pass, as plan() decides
  // (reconcile/plan/owned.ts); otherwise the CA set stays as the CA Secret records it.
  const recorded = readCaSet(caSecret, now());
  const rotation =
    recorded && rotationStep ? await stepCaRotation(cluster, recorded, rotationStep, now()) : recorded;
  if (rotationStep && !recorded)
    throw new Error(`Secret ${namespace}/${caName} holds no usable CA to rotate`);
  if (rotationStep) log.info({ step: rotationStep, phase: rotation?.phase ?? null }, 'CA rotation step');
  if (rotation) current.ca = rotation.ca;
  const renewal = await renewTlsMaterial(cluster, current, now(), {
    ...(o.clusterDomain ? { clusterDomain: o.clusterDomain } : {}),
    rotating: rotation?.phase != null,
  });
  const caReason = renewal.reasons.find((r) => r.startsWith('CA: '));
  if (caSecret && caReason && caReason !== 'CA: expired') {
    // Replacing a CA that members may still use would cut restarted pods off from the others.
    throw new Error(
      `Secret ${namespace}/${caName} holds no usable CA (${caReason.slice(4)}); ` +
        'fix it (ca.crt and ca.key) or delete it to have a new CA made',
    );
  }
  if (caReason && nodeSecret) {
    log.warn({ reason: caReason }, 'making a new CA for a cluster that has node certificates already');
  }
  for (const reason of renewal.reasons) log.info({ reason }, 'issuing TLS material');
  for (const warning of renewal.warnings) log.warn(warning);
  const m = renewal.material;
  // The CA first: a leaf written before its CA could be orphaned by a crash in between. The
  // CA set is the rotation's unless the CA was just replaced outright.
  const set: CaSet = rotation?.ca === m.ca ? rotation : { ca: m.ca, phase: null, since: null };
  await writeCaSecret(core, caSecretFor(cluster, set), set, caSecret, o.fieldManager);
  // Members and the operator trust every CA of the set (old and new while rotating).
  const caPem = trustBundle(set);
  await writeSecret(
    buildNodeTlsSecret(cluster, { caPem, certPem: m.node.certPem, keyPem: m.node.keyPem }),
    nodeSecret,
  );
  await writeSecret(
    buildAdminTlsSecret(cluster, { caPem, certPem: m.admin.certPem, keyPem: m.admin.keyPem }),
    adminSecret,
  );
}

/**
 * Creates the Secret, or replaces an existing one whose data differ (with its resourceVersion,
 * so a concurrent writer makes this fail rather than be overwritten). A Secret that exists is
 * never adopted: its type, owners, labels and annotations are kept — so a `<name>-ca` made by
 * hand is used as the cluster's CA and outlives the cluster.
 */
async function writeSecretData(
  core: CoreV1Api,
  desired: V1Secret,
  existing: V1Secret | null,
  fieldManager: string,
): Promise<void> {
  const namespace = desired.metadata!.namespace!;
  if (!existing) {
    await core.createNamespacedSecret({ namespace, body: desired, fieldManager: fieldManager });
    return;
  }
  if (isDeepEqualData(existing.data, desired.data)) return;
  await core.replaceNamespacedSecret({
    name: desired.metadata!.name!,
    namespace,
    fieldManager,
    body: {
      ...desired,
      metadata: { ...existing.metadata, name: desired.metadata!.name!, namespace },
      ...(existing.type ? { type: existing.type } : {}),
      data: { ...existing.data, ...desired.data },
    },
  });
}

async function readSecretOrNull(core: CoreV1Api, namespace: string, name: string): Promise<V1Secret | null> {
  try {
    return await core.readNamespacedSecret({ name, namespace });
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return null;
    throw err;
  }
}

/** A Secret value as text (Secrets carry base64 in `data`). */
function secretText(secret: V1Secret, key: string): string | undefined {
  const raw = secret.data?.[key];
  if (raw !== undefined) return Buffer.from(raw, 'base64').toString('utf8');
  return secret.stringData?.[key];
}

function pairOf(secret: V1Secret | null, certKey: string, keyKey: string) {
  if (!secret) return undefined;
  const certPem = secretText(secret, certKey);
  const keyPem = secretText(secret, keyKey);
  return certPem && keyPem ? { certPem, keyPem } : undefined;
}

function isDeepEqualData(have: Record<string, string> | undefined, want: Record<string, string> | undefined) {
  return Object.entries(want ?? {}).every(([k, v]) => have?.[k] === v);
}
