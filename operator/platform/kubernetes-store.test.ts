// The pure parts of the KubernetesStore. What it does against an API server (reads, status
// writes, Events, the watch) is tested on the real one: e2e/cluster/kubernetes-store.test.ts.
import { describe, expect, it } from 'vitest';
import { changeFingerprint } from './kubernetes-store.js';

function clusterObject(name: string, over: Record<string, unknown> = {}) {
  return {
    apiVersion: 'conflux.io/v1alpha1',
    kind: 'ConfluxCluster',
    metadata: { name, namespace: 'db', uid: `uid-${name}`, generation: 1, resourceVersion: '5' },
    spec: { replicas: 3 },
    ...over,
  };
}

describe('changeFingerprint', () => {
  const base = clusterObject('demo');
  it.each([
    ['status', { status: { phase: 'Running' } }, false],
    ['resourceVersion', { metadata: { ...base.metadata, resourceVersion: '99' } }, false],
    ['generation', { metadata: { ...base.metadata, generation: 2 } }, true],
    ['spec', { spec: { replicas: 5 } }, true],
    [
      'annotations',
      { metadata: { ...base.metadata, annotations: { 'conflux.io/dev-insecure': 'true' } } },
      true,
    ],
    ['deletion', { metadata: { ...base.metadata, deletionTimestamp: '2030-01-01T00:00:00Z' } }, true],
  ])('%s changes it: %s', (_, over, changes) => {
    expect(changeFingerprint({ ...base, ...over }) !== changeFingerprint(base)).toBe(changes);
  });
});
