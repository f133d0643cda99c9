// The TLS Secrets the operator manages for a cluster: the node certificate every pod mounts, the
// operator's admin client certificate, and the operator-managed CA.

import type { V1Secret } from '@kubernetes/client-node';
import type { ConfluxCluster } from '../api/cluster.js';
import { meta } from './kubernetes-objects.js';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** The node Secret the pods mount: the CA, and one certificate valid for every pod. */
export function buildNodeTlsSecret(
  cluster: ConfluxCluster,
  material: { caPem: string; certPem: string; keyPem: string },
): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(cluster, `${cluster.metadata.name}-tls`),
    type: 'kubernetes.io/tls',
    data: {
      'ca.crt': b64(material.caPem),
      'tls.crt': b64(material.certPem),
      'tls.key': b64(material.keyPem),
    },
  };
}

/** The operator's admin client certificate (O=conflux-admin), and the CA to verify nodes with. */
export function buildAdminTlsSecret(
  cluster: ConfluxCluster,
  material: { caPem: string; certPem: string; keyPem: string },
): V1Secret {
  return {
    ...buildNodeTlsSecret(cluster, material),
    metadata: meta(cluster, `${cluster.metadata.name}-admin-tls`),
  };
}

/** The operator-managed CA. Its key never leaves this Secret and the operator. */
export function buildCaSecret(cluster: ConfluxCluster, ca: { certPem: string; keyPem: string }): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(cluster, `${cluster.metadata.name}-ca`),
    type: 'Opaque',
    data: { 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem) },
  };
}
