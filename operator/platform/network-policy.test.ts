// The members' NetworkPolicy, read as rules: which ports a pod with given labels, in a given
// namespace, may open a connection to.

// The serializer client-node's typed APIs run every request body through (not re-exported).
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { describe, expect, it } from 'vitest';
import { confluxClusterSchema } from '../api/cluster.js';
import { buildNetworkPolicy, CLIENT_LABEL, toClientModel } from './network-policy.js';

const cluster = confluxClusterSchema.parse({
  apiVersion: 'conflux.io/v1alpha1',
  kind: 'ConfluxCluster',
  metadata: { name: 'demo', namespace: 'db', uid: '6f1c2a4e-0000-4000-8000-000000000001' },
  spec: {},
});
const operator = { namespace: 'conflux-system', podLabels: { 'app.kubernetes.io/name': 'conflux-operator' } };
const policy = buildNetworkPolicy(cluster, operator);

/** Ports a pod with `labels` in `namespace` (its labels `nsLabels`) may reach. */
function reachable(labels: Record<string, string>, namespace: string): number[] {
  const nsLabels = { 'kubernetes.io/metadata.name': namespace };
  const has = (want: Record<string, string> | undefined, got: Record<string, string>) =>
    Object.entries(want ?? {}).every(([k, v]) => got[k] === v);
  return (policy.spec.ingress ?? [])
    .filter((rule) =>
      rule.from.some((peer) => {
        const inNamespace = peer.namespaceSelector
          ? has(peer.namespaceSelector.matchLabels, nsLabels)
          : namespace === cluster.metadata.namespace;
        return inNamespace && has(peer.podSelector?.matchLabels, labels);
      }),
    )
    .flatMap((rule) => rule.ports.map((p) => Number(p.port)))
    .sort((a, b) => a - b);
}

describe("a ConfluxCluster's NetworkPolicy", () => {
  it('is a valid NetworkPolicy owned by the cluster, selecting its members, ingress only', () => {
    expect(() => new NetworkPolicy(policy as never).validate()).not.toThrow();
    expect(policy.metadata).toMatchObject({ name: 'demo', namespace: 'db' });
    expect(policy.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'ConfluxCluster', name: 'demo' });
    expect(policy.spec.podSelector.matchLabels).toEqual({
      'app.kubernetes.io/name': 'conflux',
      'app.kubernetes.io/instance': 'demo',
    });
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
  });

  it('admits peers everywhere, the operator on the admin port, labelled clients on the client API', () => {
    const member = { 'app.kubernetes.io/name': 'conflux', 'app.kubernetes.io/instance': 'demo' };
    expect(reachable(member, 'db')).toEqual([7000, 8080, 8443]);
    expect(reachable({ 'app.kubernetes.io/name': 'conflux-operator' }, 'conflux-system')).toEqual([8443]);
    expect(reachable({ [CLIENT_LABEL]: 'demo', app: 'web' }, 'db')).toEqual([8080]);
  });

  it('admits nobody else: strangers, clients of another cluster, look-alikes in other namespaces', () => {
    expect(reachable({ app: 'web' }, 'db')).toEqual([]);
    expect(reachable({ [CLIENT_LABEL]: 'other' }, 'db')).toEqual([]);
    expect(reachable({ [CLIENT_LABEL]: 'demo' }, 'elsewhere')).toEqual([]);
    expect(reachable({ 'app.kubernetes.io/name': 'conflux-operator' }, 'db')).toEqual([]);
    expect(
      reachable({ 'app.kubernetes.io/name': 'conflux', 'app.kubernetes.io/instance': 'demo' }, 'x'),
    ).toEqual([]);
  });

  it('reaches the API server as built: the typed client model serializes back to the same object', () => {
    expect(ObjectSerializer.serialize(toClientModel(policy), 'V1NetworkPolicy', '')).toEqual(policy);
  });
});
