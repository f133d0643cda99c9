// The NetworkPolicy the operator builds for a ConfluxCluster's members: who may open a
// connection to which port (docs: the README's security section). Peers (the cluster's own pods)
// reach every port: Raft, the client API a follower forwards to, the admin port for joins and
// status. The operator's pods, in their own namespace, reach the admin port only. Pods of the
// cluster's namespace labelled `conflux.io/client: <cluster name>` reach the client API only.
// Nothing else is admitted. Only ingress is restricted.

import type { V1LabelSelector, V1NetworkPolicy, V1ObjectMeta } from '@kubernetes/client-node';
import type { ConfluxCluster } from '../api/cluster.js';
import { commonLabels, ownerReference, PORTS, selectorLabels } from './kubernetes-objects.js';

/** The label a client pod carries, its value the cluster's name, to reach the client API. */
export const CLIENT_LABEL = 'conflux.io/client';

/** A NetworkPolicy in its wire form (client-node's V1NetworkPolicy spells `from` as `_from`). */
export interface NetworkPolicyManifest {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: V1ObjectMeta;
  spec: {
    podSelector: V1LabelSelector;
    policyTypes: ['Ingress'];
    ingress: {
      from: { podSelector?: V1LabelSelector; namespaceSelector?: V1LabelSelector }[];
      ports: { port: number; protocol: 'TCP' }[];
    }[];
  };
}

/** Where the operator runs: its namespace and the labels of its pods. */
export interface OperatorIdentity {
  namespace: string;
  podLabels: Record<string, string>;
}

export function buildNetworkPolicy(
  cluster: ConfluxCluster,
  operator: OperatorIdentity,
): NetworkPolicyManifest {
  const tcp = (port: number) => ({ port, protocol: 'TCP' as const });
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: cluster.metadata.name,
      namespace: cluster.metadata.namespace,
      labels: commonLabels(cluster),
      ownerReferences: [ownerReference(cluster)],
    },
    spec: {
      podSelector: { matchLabels: selectorLabels(cluster) },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [{ podSelector: { matchLabels: selectorLabels(cluster) } }],
          ports: [tcp(PORTS.raft), tcp(PORTS.api), tcp(PORTS.admin)],
        },
        {
          from: [
            {
              namespaceSelector: {
                matchLabels: { 'kubernetes.io/metadata.name': operator.namespace },
              },
              podSelector: { matchLabels: operator.podLabels },
            },
          ],
          ports: [tcp(PORTS.admin)],
        },
        {
          from: [{ podSelector: { matchLabels: { [CLIENT_LABEL]: cluster.metadata.name } } }],
          ports: [tcp(PORTS.api)],
        },
      ],
    },
  };
}

/** The same policy as client-node's typed model, which spells `from` as `_from` (for its APIs). */
export function toClientModel(p: NetworkPolicyManifest): V1NetworkPolicy {
  return {
    ...p,
    spec: {
      ...p.spec,
      ingress: p.spec.ingress.map((rule) => ({ _from: rule.from, ports: rule.ports })),
    },
  };
}
