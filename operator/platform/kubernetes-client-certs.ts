// The client certificates the operator issues for spec.auth's users (clientCertificate: true):
// one Secret `<cluster>-client-<user>` each (type kubernetes.io/tls: ca.crt, tls.crt, tls.key),
// signed by the cluster's signing CA with the user's name as subject CN (O=conflux-client), owned
// by the cluster and labelled with the user. What is due (missing, broken, signed by a CA that no
// longer signs, within 30 days of expiry, no longer wanted) is plan()'s to decide
// (reconcile/plan/auth.ts); this reads the Secrets for it and carries out its choice.

import { createHash, X509Certificate } from 'node:crypto';
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { ApiException } from '@kubernetes/client-node';
import { CLIENT_ORGANIZATION, generateClientCert, subjectOrganizations } from '../../node/certs/index.js';
import type { ConfluxCluster } from '../api/cluster.js';
import type { CertView } from '../reconcile/types.js';
import { readCaSet } from './kubernetes-ca-rotation.js';
import { labelSelector, meta, resourceNames } from './kubernetes-objects.js';
import { trustBundle } from './tls-rotation.js';
import { issuedBy, keyMatches, LEAF_VALID_DAYS } from './tls-secrets.js';

/** The label naming the user a client certificate Secret belongs to. */
export const CLIENT_USER_LABEL = 'conflux.io/client-user';

export function clientSecretName(cluster: ConfluxCluster, user: string): string {
  return `${cluster.metadata.name}-client-${user}`;
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const text = (s: V1Secret, key: string) => {
  const raw = s.data?.[key];
  return raw === undefined ? undefined : Buffer.from(raw, 'base64').toString('utf8');
};

/** The Secret of one user's client certificate. */
export function buildClientSecret(
  cluster: ConfluxCluster,
  user: string,
  material: { caPem: string; certPem: string; keyPem: string },
): V1Secret {
  const m = meta(cluster, clientSecretName(cluster, user));
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { ...m, labels: { ...m.labels, [CLIENT_USER_LABEL]: user } },
    type: 'kubernetes.io/tls',
    data: {
      'ca.crt': b64(material.caPem),
      'tls.crt': b64(material.certPem),
      'tls.key': b64(material.keyPem),
    },
  };
}

async function signingCa(core: CoreV1Api, cluster: ConfluxCluster, now: Date) {
  const name = resourceNames(cluster).caSecret;
  if (!name) throw new Error('client certificates need an operator-managed CA (spec.tls.operatorManaged)');
  const secret = await readOrNull(core, cluster.metadata.namespace, name);
  const set = readCaSet(secret, now);
  if (!set) throw new Error(`Secret ${cluster.metadata.namespace}/${name} holds no usable CA yet`);
  return { ca: set.ca, bundle: trustBundle(set) };
}

/** What is wrong with one Secret's certificate regardless of the clock, or null. */
export function clientCertProblem(
  secret: V1Secret,
  user: string,
  caPem: string,
  bundle: string,
): string | null {
  const certPem = text(secret, 'tls.crt');
  const keyPem = text(secret, 'tls.key');
  if (!certPem || !keyPem) return 'tls.crt or tls.key is missing';
  if (!keyMatches({ certPem, keyPem })) return 'tls.key does not belong to tls.crt';
  if (!issuedBy(certPem, caPem)) return 'not signed by the current CA';
  const cn = new X509Certificate(certPem).subject.match(/^CN=(.*)$/m)?.[1];
  if (cn !== user) return `its CN is ${cn ?? '(none)'}, not ${user}`;
  if (!subjectOrganizations(certPem).includes(CLIENT_ORGANIZATION))
    return `it lacks O=${CLIENT_ORGANIZATION}`;
  if (text(secret, 'ca.crt') !== bundle) return "ca.crt is not the cluster's current trust bundle";
  return null;
}

/**
 * Every issued client certificate among `secrets` (the cluster's labelled Secrets), by user, with
 * its validity and any defect against the CA Secret's signing CA and trust bundle.
 */
export function clientCertificateViews(
  cluster: ConfluxCluster,
  secrets: V1Secret[],
  caSecret: V1Secret | null,
  now: Date,
): Record<string, CertView> {
  const set = readCaSet(caSecret, now);
  const ca = set ? { ca: set.ca, bundle: trustBundle(set) } : null;
  const views: Record<string, CertView> = {};
  for (const secret of secrets) {
    const user = secret.metadata?.labels?.[CLIENT_USER_LABEL];
    if (!user || secret.metadata?.name !== clientSecretName(cluster, user)) continue;
    views[user] = viewOf(secret, user, ca);
  }
  return views;
}

/** clientCertificateViews read from the API server (not a cache: right after a write of its own). */
async function listClientCertificates(core: CoreV1Api, cluster: ConfluxCluster, now: Date) {
  const namespace = cluster.metadata.namespace;
  const list = await core.listNamespacedSecret({
    namespace,
    labelSelector: `${labelSelector(cluster)},${CLIENT_USER_LABEL}`,
  });
  const caName = resourceNames(cluster).caSecret;
  const caSecret = caName ? await readOrNull(core, namespace, caName) : null;
  return clientCertificateViews(cluster, list.items, caSecret, now);
}

function viewOf(
  secret: V1Secret,
  user: string,
  ca: { ca: { certPem: string }; bundle: string } | null,
): CertView {
  const certPem = text(secret, 'tls.crt') ?? '';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    const epoch = new Date(0).toISOString();
    return { notBefore: epoch, notAfter: epoch, fingerprint: '', problem: 'tls.crt is not a certificate' };
  }
  return {
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
    fingerprint: createHash('sha256').update(cert.raw).digest('hex'),
    problem: ca ? clientCertProblem(secret, user, ca.ca.certPem, ca.bundle) : 'the cluster has no usable CA',
  };
}

/** Issue (again) the certificates of `issue`, delete the Secrets of `remove`. */
export async function syncClientCertificates(
  core: CoreV1Api,
  cluster: ConfluxCluster,
  issue: string[],
  remove: string[],
  o: { now: Date; fieldManager: string },
): Promise<void> {
  const namespace = cluster.metadata.namespace;
  if (issue.length > 0) {
    const { ca, bundle } = await signingCa(core, cluster, o.now);
    for (const user of issue) {
      const pair = await generateClientCert(ca, { commonName: user, validDays: LEAF_VALID_DAYS });
      const desired = buildClientSecret(cluster, user, { caPem: bundle, ...pair });
      const name = clientSecretName(cluster, user);
      const existing = await readOrNull(core, namespace, name);
      if (!existing) {
        await core.createNamespacedSecret({ namespace, body: desired, fieldManager: o.fieldManager });
      } else {
        // With its resourceVersion: a concurrent writer makes this fail rather than be overwritten.
        const body = {
          ...desired,
          metadata: { ...desired.metadata, resourceVersion: existing.metadata?.resourceVersion },
        };
        await core.replaceNamespacedSecret({ name, namespace, body, fieldManager: o.fieldManager });
      }
    }
  }
  for (const user of remove) {
    try {
      await core.deleteNamespacedSecret({ name: clientSecretName(cluster, user), namespace });
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 404)) throw err;
    }
  }
}

/**
 * After a CA rotation step, every issued client certificate again from the CA set as it is now:
 * a rotation blocks the auth step until it completes, so the client Secrets follow each step here,
 * like the node and admin Secrets (start: ca.crt trusts both CAs; promote: signed by the new CA
 * before the members drop the old one; finish: ca.crt the new CA only).
 */
export async function followCaRotation(
  core: CoreV1Api,
  cluster: ConfluxCluster,
  o: { now: Date; fieldManager: string },
): Promise<void> {
  const issued = await listClientCertificates(core, cluster, o.now);
  await syncClientCertificates(core, cluster, Object.keys(issued).sort(), [], o);
}

async function readOrNull(core: CoreV1Api, namespace: string, name: string): Promise<V1Secret | null> {
  try {
    return await core.readNamespacedSecret({ name, namespace });
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return null;
    throw err;
  }
}
