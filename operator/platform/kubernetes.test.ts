// The pure parts of the Kubernetes platform: pods to member slots, claim names to ordinals, pod
// template revisions. What it does against an API server (Secrets, server-side apply, deletions
// the StatefulSet controller answers) is tested on the real one: e2e/cluster/kubernetes-platform.test.ts.
import type { V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { type ConfluxCluster, confluxClusterSchema } from '../api/cluster.js';
import { isOutdated, memberPods, volumeOrdinals } from './kubernetes.js';
import { POD_TEMPLATE_HASH_ANNOTATION } from './kubernetes-objects.js';

function cluster(spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): ConfluxCluster {
  return confluxClusterSchema.parse({
    apiVersion: 'conflux.io/v1alpha1',
    kind: 'ConfluxCluster',
    metadata: { name: 'demo', namespace: 'db', uid: 'uid-demo', ...metadata },
    spec,
  });
}

function pod(
  name: string,
  over: { phase?: string; ready?: boolean; deleting?: boolean; owner?: string } = {},
): V1Pod {
  return {
    metadata: {
      name,
      namespace: 'db',
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'StatefulSet',
          name: over.owner ?? 'demo',
          uid: 'sts',
          controller: true,
        },
      ],
      ...(over.deleting ? { deletionTimestamp: new Date() } : {}),
    },
    status: {
      phase: over.phase ?? 'Running',
      conditions: [{ type: 'Ready', status: over.ready === false ? 'False' : 'True' }],
    },
  };
}

describe('memberPods', () => {
  const c = cluster();

  it('every slot below the set size, and pods left beyond it', () => {
    const slots = memberPods(c, 3, [
      pod('demo-0'),
      pod('demo-1', { phase: 'Pending', ready: false }),
      pod('demo-4', { deleting: true }),
    ]);
    expect(slots.map((s) => [s.ordinal, s.name, s.running, s.ready])).toEqual([
      [0, 'demo-0', true, true],
      [1, 'demo-1', false, false],
      [2, 'demo-2', false, false], // not created yet
      [4, 'demo-4', false, false], // terminating, though its Ready condition is still True
    ]);
    expect(slots[0]!.addresses).toEqual({
      api: 'demo-0.demo-headless.db.svc:8080',
      raft: 'demo-0.demo-headless.db.svc:7000',
      admin: 'demo-0.demo-headless.db.svc:8443',
    });
  });

  it.each([
    ['another cluster', 'other-0', {}],
    ['a longer name that shares the prefix', 'demo-canary-0', {}],
    ['a leading zero', 'demo-01', {}],
    ['not an ordinal', 'demo-x', {}],
    ['another controller', 'demo-0', { owner: 'demo-old' }],
  ])('ignores %s', (_, name, over) => {
    expect(memberPods(c, 0, [pod(name, over)])).toEqual([]);
  });

  it('a running pod without a Ready condition is not ready', () => {
    const p = pod('demo-0');
    p.status!.conditions = [];
    expect(memberPods(c, 1, [p])[0]).toMatchObject({ running: true, ready: false });
  });

  it('the host can be mapped (to pod IPs, for an operator outside the cluster DNS)', () => {
    const [slot] = memberPods(c, 1, [], (_c, _pod, name) => `${name}.local`);
    expect(slot!.addresses.api).toBe('demo-0.local:8080');
  });
});

describe('volumeOrdinals', () => {
  it('only data-<name>-<ordinal>, sorted', () => {
    expect(
      volumeOrdinals(cluster(), [
        'data-demo-10',
        'data-demo-2',
        'data-demo-x',
        'data-demo-01',
        'data-demo2-0',
        'demo-3',
      ]),
    ).toEqual([2, 10]);
  });
});

describe('pod template revisions (rolling updates)', () => {
  const c = cluster();
  const desired = 'hash-new';
  const withRevision = (name: string, hash: string, label: string): V1Pod => {
    const p = pod(name);
    p.metadata = {
      ...p.metadata,
      annotations: { [POD_TEMPLATE_HASH_ANNOTATION]: hash },
      labels: { 'controller-revision-hash': label },
    };
    return p;
  };
  const set = (updateRevision: string, observed = 2): V1StatefulSet => ({
    metadata: { name: 'demo', generation: 2 },
    status: { replicas: 3, updateRevision, observedGeneration: observed },
  });

  it('a pod whose template digest differs from the spec is outdated', () => {
    expect(isOutdated(withRevision('demo-0', 'hash-old', 'demo-a'), desired, set('demo-a'))).toBe(true);
    expect(isOutdated(withRevision('demo-0', desired, 'demo-a'), desired, set('demo-a'))).toBe(false);
  });

  it("a pod on another controller-revision-hash than the set's updateRevision is outdated, once the controller saw the set", () => {
    const p = withRevision('demo-0', desired, 'demo-a');
    expect(isOutdated(p, desired, set('demo-b'))).toBe(true);
    expect(isOutdated(p, desired, set('demo-b', 1))).toBe(false);
  });

  it('memberPods reports each pod revision and whether it is outdated', () => {
    const slots = memberPods(
      c,
      2,
      [withRevision('demo-0', desired, 'demo-a'), withRevision('demo-1', 'hash-old', 'demo-a')],
      undefined,
      { desired, set: set('demo-a') },
    );
    expect(slots.map((s) => [s.revision, s.outdated])).toEqual([
      [desired, false],
      ['hash-old', true],
    ]);
  });
});
