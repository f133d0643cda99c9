// API requests per resync at a hundred clusters on the real API server, with the operator's
// watch-backed cache (operator/platform/kube-cache.ts): the same passes as the uncached measure in
// operator-production.test.ts (13 reads per cluster there), each the reconciler's own read of the
// cluster, observe, plan, act and status write. Every request of the bounded clients is counted:
// the informers' LISTs at start (their WATCHes are long-lived streams outside those clients, one
// per kind by construction), then none per settled resync. The members do not answer here (no
// kubelet), which changes no API request a pass makes.

import { isDeepStrictEqual } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION } from '../../operator/api/cluster.js';
import { backupCrd, clusterCrd } from '../../operator/api/crd.js';
import { KubeCache } from '../../operator/platform/kube-cache.js';
import { KubernetesPlatform } from '../../operator/platform/kubernetes.js';
import { KubernetesStore } from '../../operator/platform/kubernetes-store.js';
import { act } from '../../operator/reconcile/act.js';
import { observe } from '../../operator/reconcile/observe.js';
import { plan } from '../../operator/reconcile/plan.js';
import { binariesPresent, ensureBinaries, hasGo } from './binaries.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';

const N = 100;
const NS = 'cached';
const canRun = binariesPresent() || hasGo();

/** `GET /api/v1/namespaces/ns/secrets/x` -> `GET secrets`; a collection read is a LIST. */
function requestKey(method: string, url: string): string {
  const parts = new URL(url).pathname.split('/').filter(Boolean);
  const at = parts.indexOf('namespaces');
  const resource = at >= 0 ? (parts[at + 2] ?? 'namespaces') : (parts.at(-1) ?? '');
  const collection = at >= 0 ? parts.length <= at + 3 : true;
  const verb = method === 'GET' && collection ? 'LIST' : method;
  return `${verb} ${resource}${parts.at(-1) === 'status' ? '/status' : ''}`;
}

describe.skipIf(!canRun)(`API requests per resync with ${N} clusters and the watch-backed cache`, () => {
  let cp: ControlPlane;
  let cache: KubeCache | undefined;
  let stopWatch = () => {};

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    for (const crd of [clusterCrd(), backupCrd()]) {
      await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(crd) });
    }
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    await cp.kubectl(['create', 'namespace', NS]);
    // A CRD established a moment ago may still refuse lists (429): the count starts once it serves.
    await until(async () =>
      (await cp.kubectl(['get', 'confluxclusters,confluxbackups', '-A']).then(
        () => true,
        () => false,
      ))
        ? true
        : null,
    );
  }, 90 * 60_000);

  afterAll(async () => {
    stopWatch();
    cache?.stop();
    await cp?.stop();
  }, 60_000);

  it(
    'one LIST per kind at start, then no request in a settled resync',
    async () => {
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(cp.kubeconfigPath);
      const logger = pino({ level: 'silent' });
      const seen: string[] = [];
      const api = { timeoutMs: 120_000, onRequest: (m: string, u: string) => seen.push(requestKey(m, u)) };
      const counts = (from: number) => {
        const c: Record<string, number> = {};
        for (const k of seen.slice(from)) c[k] = (c[k] ?? 0) + 1;
        return c;
      };
      cache = new KubeCache({ kubeConfig, logger, api, without: ['NetworkPolicy'] });
      const store = new KubernetesStore({ kubeConfig, logger, api, cache });
      const platform = new KubernetesPlatform({ kubeConfig, logger, api, cache });
      cache.start();
      stopWatch = store.watch(() => {});
      await cache.whenReady();
      await store.listClusters();
      const startup = counts(0);
      console.log('start-up requests:', startup);
      expect(startup).toEqual({
        'LIST statefulsets': 1,
        'LIST services': 1,
        'LIST poddisruptionbudgets': 1,
        'LIST secrets': 1,
        'LIST pods': 1,
        'LIST persistentvolumeclaims': 1,
        'LIST confluxclusters': 1,
        'LIST confluxbackups': 1,
      });

      const docs = Array.from({ length: N }, (_, i) => ({
        apiVersion: API_VERSION,
        kind: 'ConfluxCluster',
        metadata: { name: `c${i}`, namespace: NS },
        spec: { replicas: 1 },
      }));
      await cp.kubectl(['create', '-f', '-'], { input: docs.map((d) => JSON.stringify(d)).join('\n') });
      const names = docs.map((d) => d.metadata.name);
      const created = await until(async () => {
        const all = await store.listClusters();
        return all.length === N ? all : null;
      });
      for (let i = 0; i < N; i += 10) {
        await Promise.all(
          created.slice(i, i + 10).map(async (c) => {
            await store.writeClusterStatus(c, { clusterId: `id-${c.metadata.name}` });
            await platform.ensureMembers(c, 1, 1);
          }),
        );
      }
      const passOf = async (name: string) => {
        const c = await store.getCluster(NS, name);
        if (!c) throw new Error(`${name} is gone`);
        const obs = await observe(platform, c);
        const p = plan(obs);
        await act(platform, obs, p.action);
        const fresh = await store.getCluster(NS, name);
        if (fresh && !isDeepStrictEqual(fresh.status ?? {}, p.status))
          await store.writeClusterStatus(fresh, p.status);
        return p.action.type;
      };
      // The first pass of each cluster records its status; then the writes settle into the cache.
      for (const name of names) await passOf(name);
      await new Promise((r) => setTimeout(r, 2_000));
      for (let round = 1; round <= 2; round++) {
        const from = seen.length;
        const actions = new Set<string>();
        for (const name of names) actions.add(await passOf(name));
        const resync = counts(from);
        console.log(`${N} settled clusters, resync ${round}: ${seen.length - from} API requests`, resync);
        expect([...actions].filter((a) => a !== 'wait' && a !== 'none')).toEqual([]);
        expect(resync).toEqual({});
      }
    },
    30 * 60_000,
  );
});

async function until<T>(fn: () => Promise<T | null>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 200));
  }
}
