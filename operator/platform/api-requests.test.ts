// What a hundred settled clusters cost the API server (docs/ARCHITECTURE.md §8): with the
// watch-backed cache the operator opens one LIST+WATCH per kind when it starts, a settled resync
// of every cluster reads nothing and writes nothing, and a deleted Service reaches its cluster's
// reconcile through the watch and is the one thing written again. The same resync without the
// cache is measured beside it. Each resync is a pass as the reconciler makes it, minus the
// members' admin API: the cluster read, every Kubernetes read of observe(), plan() over those
// reads with the members answering as a settled cluster's do, act(), and the status write when
// the status changed. Requests are counted where they arrive (fake-kube-api.ts).

import { isDeepStrictEqual } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, type ConfluxCluster, confluxClusterSchema } from '../api/cluster.js';
import { act } from '../reconcile/act.js';
import { doc, member } from '../reconcile/plan/member-fixtures.js';
import { plan } from '../reconcile/plan.js';
import type { Observation } from '../reconcile/types.js';
import { FakeKubeApi } from './fake-kube-api.js';
import { KubeCache } from './kube-cache.js';
import { KubernetesPlatform } from './kubernetes.js';
import { commonLabels, POD_TEMPLATE_HASH_ANNOTATION, resourceNames } from './kubernetes-objects.js';
import { KubernetesStore } from './kubernetes-store.js';

const silent = pino({ level: 'silent' });
const CLUSTERS = 100;
const NS = 'prod';
const CID = 'c-old';
const CR = 'apis/conflux.io/v1alpha1/confluxclusters';
const names = Array.from({ length: CLUSTERS }, (_, i) => `c${String(i).padStart(3, '0')}`);
const ids = (name: string) => [0, 1, 2].map((k) => `${name}-n${k}`);
const sum = (counts: Record<string, number>, verb?: string) =>
  Object.entries(counts)
    .filter(([k]) => !verb || k.startsWith(`${verb} `))
    .reduce((n, [, v]) => n + v, 0);

type Stack = { store: KubernetesStore; platform: KubernetesPlatform; cache?: KubeCache; stop: () => void };

describe(`API requests of ${CLUSTERS} settled clusters per resync`, () => {
  const api = new FakeKubeApi();
  const changed: string[] = [];
  let cached: Stack;
  let direct: Stack;

  function stack(kc: Awaited<ReturnType<FakeKubeApi['start']>>, withCache: boolean): Stack {
    const cache = withCache
      ? new KubeCache({ kubeConfig: kc, logger: silent, without: ['NetworkPolicy'] })
      : undefined;
    const store = new KubernetesStore({ kubeConfig: kc, logger: silent, ...(cache ? { cache } : {}) });
    const platform = new KubernetesPlatform({ kubeConfig: kc, logger: silent, ...(cache ? { cache } : {}) });
    cache?.start();
    const stopWatch = withCache ? store.watch((k) => changed.push(k.name)) : () => {};
    return {
      store,
      platform,
      ...(cache ? { cache } : {}),
      stop: () => {
        stopWatch();
        cache?.stop();
      },
    };
  }

  /** What a running StatefulSet controller and kubelet would have made: ready pods and claims. */
  async function runMembers(s: Stack, cluster: ConfluxCluster) {
    const revision = await s.platform.templateRevision(cluster);
    const sts = resourceNames(cluster).statefulSet;
    for (const k of [0, 1, 2]) {
      const metadata = {
        name: `${cluster.metadata.name}-${k}`,
        namespace: NS,
        labels: commonLabels(cluster),
      };
      api.put('api/v1/pods', {
        metadata: {
          ...metadata,
          annotations: { [POD_TEMPLATE_HASH_ANNOTATION]: revision },
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'StatefulSet', name: sts, uid: 'u', controller: true },
          ],
        },
        status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
      } as never);
      api.put('api/v1/persistentvolumeclaims', { metadata: { ...metadata, name: `data-${metadata.name}` } });
    }
  }

  /** One pass of `name` as the reconciler makes it, its members answering as a settled cluster's. */
  async function pass(s: Stack, name: string): Promise<string> {
    const cluster = await s.store.getCluster(NS, name);
    if (!cluster) throw new Error(`${name} is gone`);
    const [setSize, pods, volumes, templateRevision, owned] = await Promise.all([
      s.platform.setSize(cluster),
      s.platform.pods(cluster),
      s.platform.volumes(cluster),
      s.platform.templateRevision(cluster),
      s.platform.observeOwned(cluster),
      s.platform.adminClient(cluster),
    ]);
    const [leader = ''] = ids(name);
    const slots = pods.map((pod, k) => ({ ...member(k, ids(name)[k] ?? '', { leader }), pod }));
    const status = doc(Object.fromEntries(ids(name).map((id) => [id, { reachable: true }])), leader);
    const obs: Observation = {
      now: new Date(),
      cluster,
      setSize,
      slots,
      volumes,
      status,
      operation: null,
      templateRevision,
      owned,
    };
    const p = plan(obs);
    await act(s.platform, obs, p.action);
    const fresh = await s.store.getCluster(NS, name);
    if (fresh && !isDeepStrictEqual(fresh.status ?? {}, p.status))
      await s.store.writeClusterStatus(fresh, p.status);
    return p.action.type;
  }

  async function resync(s: Stack): Promise<{ counts: Record<string, number>; actions: string[] }> {
    const from = api.requests.length;
    const actions: string[] = [];
    for (const name of names) actions.push(await pass(s, name));
    return { counts: api.countSince(from), actions };
  }

  const quiet = async () => {
    // Every write the cache expects has come back through the watch.
    for (let i = 0; i < 100; i++) {
      const n = api.requests.length;
      await new Promise((r) => setTimeout(r, 50));
      if (api.requests.length === n) return;
    }
  };

  beforeAll(async () => {
    const kc = await api.start();
    for (const name of names) {
      const members = ids(name).map((id, k) => ({
        id,
        pod: `${name}-${k}`,
        role: 'Follower',
        reachable: true,
      }));
      api.put(CR, {
        apiVersion: API_VERSION,
        kind: 'ConfluxCluster',
        metadata: { name, namespace: NS, uid: `uid-${name}`, generation: 1 },
        spec: { replicas: 3 },
        status: { clusterId: CID, members },
      } as never);
    }
    direct = stack(kc, false);
    // As the bootstrap left them: every cluster's objects and TLS Secrets, its members running.
    for (const name of names) {
      const cluster = confluxClusterSchema.parse(api.get(CR, NS, name));
      await direct.platform.ensureMembers(cluster, 3);
      await runMembers(direct, cluster);
    }
    cached = stack(kc, true);
  }, 120_000);
  afterAll(async () => {
    cached?.stop();
    direct?.stop();
    await api.stop();
  });

  it('starts with one LIST and one WATCH per kind', async () => {
    const from = api.requests.length;
    await cached.cache?.whenReady();
    await cached.store.listClusters();
    await quiet();
    const counts = api.countSince(from);
    console.log('start-up requests:', counts);
    const kinds = [
      'statefulsets',
      'services',
      'poddisruptionbudgets',
      'secrets',
      'pods',
      'persistentvolumeclaims',
      'confluxclusters',
      'confluxbackups',
    ];
    expect(counts).toEqual(
      Object.fromEntries(
        kinds.flatMap((k) => [
          [`LIST ${k}`, 1],
          [`WATCH ${k}`, 1],
        ]),
      ),
    );
  });

  it('a settled resync reads nothing and writes nothing; without the cache it reads per cluster', async () => {
    const first = await resync(cached); // the first pass records each cluster's status
    console.log('first resync (status recorded):', first.counts);
    expect(new Set(first.actions)).toEqual(new Set(['none']));
    expect(sum(first.counts) - (first.counts['PUT confluxclusters/status'] ?? 0)).toBe(0);
    await quiet();
    for (let round = 0; round < 3; round++) {
      const settled = await resync(cached);
      console.log(`settled resync ${round + 1} with the cache:`, settled.counts);
      expect(settled.counts).toEqual({});
    }
    const without = await resync(direct);
    console.log(`settled resync without the cache (${CLUSTERS} clusters):`, without.counts);
    expect(new Set(without.actions)).toEqual(new Set(['none']));
    expect(sum(without.counts, 'PUT') + sum(without.counts, 'PATCH') + sum(without.counts, 'POST')).toBe(0);
    expect(sum(without.counts)).toBeGreaterThanOrEqual(10 * CLUSTERS);
  });

  it('a deleted Service signals its cluster through the watch and is the only thing written again', async () => {
    await quiet();
    const victim = names[42] ?? '';
    changed.length = 0;
    api.remove('api/v1/services', NS, `${victim}-headless`);
    const started = performance.now();
    while (!changed.includes(victim) && performance.now() - started < 5_000) {
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(changed).toContain(victim);
    console.log(`watch event to the owner's enqueue: ${(performance.now() - started).toFixed(1)} ms`);
    const repair = await resync(cached);
    console.log('resync after the delete:', repair.counts);
    expect(repair.actions.filter((a) => a !== 'none')).toEqual(['repair-owned']);
    expect(sum(repair.counts, 'GET') + sum(repair.counts, 'LIST')).toBe(0);
    expect(repair.counts['PATCH services']).toBe(2);
    expect(api.get('api/v1/services', NS, `${victim}-headless`)).toBeDefined();
    await quiet();
    // The repair is over: the next pass records that (status.operation and progress), once.
    expect((await resync(cached)).counts).toEqual({ 'PUT confluxclusters/status': 1 });
    await quiet();
    expect((await resync(cached)).counts).toEqual({});
  });
});
