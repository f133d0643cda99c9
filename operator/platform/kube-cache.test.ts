// The watch-backed cache's contract: no answer before the first LIST (and a clear error when it
// never comes), the operator's own writes read back as written (never an older version), and
// every change to an owned object signals the cluster that owns it.

import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeKubeApi } from './fake-kube-api.js';
import { EXPECTATION_TTL_MS, KubeCache, trackWrites } from './kube-cache.js';
import { boundedApiClient } from './kube-client.js';

const silent = pino({ level: 'silent' });
const labels = {
  'app.kubernetes.io/name': 'conflux',
  'app.kubernetes.io/instance': 'demo',
  'app.kubernetes.io/managed-by': 'conflux-operator',
};
const service = (port: number) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'demo-headless', namespace: 'ns', labels },
  spec: { ports: [{ port }] },
});
const until = async <T>(fn: () => Promise<T | undefined | null | false>): Promise<T> => {
  for (let i = 0; i < 200; i++) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('timed out');
};

describe('KubeCache', () => {
  let api = new FakeKubeApi();
  let cache: KubeCache | undefined;
  beforeEach(() => {
    api = new FakeKubeApi();
  });
  afterEach(async () => {
    cache?.stop();
    await api.stop();
  });

  it('answers nothing before its first LISTs, and names the kinds that never listed', async () => {
    const kc = await api.start();
    await api.stop(); // nothing listens any more
    cache = new KubeCache({
      kubeConfig: kc,
      logger: silent,
      readyTimeoutMs: 300,
      without: ['Pod', 'Secret'],
    });
    await expect(cache.get('Service', 'ns', 'x')).rejects.toThrow('never started');
    cache.start();
    expect(cache.ready).toBe(false);
    await expect(cache.get('Service', 'ns', 'x')).rejects.toThrow(
      'the Kubernetes object cache has not listed StatefulSet, Service, PodDisruptionBudget, PersistentVolumeClaim, NetworkPolicy yet',
    );
  });

  it('reads the operator’s own writes as written, never an older version', async () => {
    const kc = await api.start();
    let nowMs = Date.now();
    const c = new KubeCache({ kubeConfig: kc, logger: silent, now: () => nowMs });
    cache = c;
    c.start();
    await cache.whenReady();
    expect(await cache.get('Service', 'ns', 'demo-headless')).toBeNull();
    const core = trackWrites(boundedApiClient(kc, CoreV1Api), cache);
    const apply = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
    for (const port of [1, 2, 3]) {
      const written = await core.patchNamespacedService(
        { name: 'demo-headless', namespace: 'ns', body: service(port), fieldManager: 'm' },
        apply,
      );
      // At once: either "ask the API server" (undefined) or exactly what was written.
      const read = await cache.get<{ metadata: { resourceVersion: string } }>(
        'Service',
        'ns',
        'demo-headless',
      );
      if (read !== undefined) expect(read?.metadata.resourceVersion).toBe(written.metadata?.resourceVersion);
      const seen = await until(() =>
        c.get<{ metadata: { resourceVersion: string } }>('Service', 'ns', 'demo-headless'),
      );
      expect(seen.metadata.resourceVersion).toBe(written.metadata?.resourceVersion);
    }
    await core.deleteNamespacedService({ name: 'demo-headless', namespace: 'ns' });
    expect(await cache.get('Service', 'ns', 'demo-headless')).not.toBeTruthy();
    expect(await until(async () => (await c.get('Service', 'ns', 'demo-headless')) === null)).toBe(true);
    // A write the watch never delivers stops the cache answering for that object, until it lapses.
    api.put('api/v1/services', service(4) as never);
    await until(() => c.get('Service', 'ns', 'demo-headless'));
    cache.expect('Service', 'ns', 'demo-headless', 'never-delivered');
    expect(await cache.get('Service', 'ns', 'demo-headless')).toBeUndefined();
    expect(await cache.list('Service', 'ns', {})).toBeUndefined();
    nowMs += EXPECTATION_TTL_MS;
    expect(await cache.get('Service', 'ns', 'demo-headless')).toMatchObject({
      spec: { ports: [{ port: 4 }] },
    });
  });

  it('a write the watch delivered before its answer arrived (and a newer version after it) is in the cache', async () => {
    const kc = await api.start();
    const c = new KubeCache({ kubeConfig: kc, logger: silent });
    cache = c;
    c.start();
    await c.whenReady();
    const written = api.put('api/v1/services', service(1) as never);
    api.put('api/v1/services', service(2) as never); // a controller's update right after
    const port = async () =>
      (await c.get<{ spec: { ports: { port: number }[] } }>('Service', 'ns', 'demo-headless'))?.spec.ports[0]
        ?.port;
    await until(async () => (await port()) === 2);
    c.expect('Service', 'ns', 'demo-headless', written.metadata.resourceVersion ?? '');
    expect(await port()).toBe(2);
    // A delete answered after the watch delivered it, and the object made again meanwhile.
    api.remove('api/v1/services', 'ns', 'demo-headless');
    api.put('api/v1/services', service(3) as never);
    await until(async () => (await port()) === 3);
    c.expect('Service', 'ns', 'demo-headless', null);
    expect(await port()).toBe(3);
  });

  it('signals the owning cluster of every added, changed or deleted owned object', async () => {
    const kc = await api.start();
    cache = new KubeCache({ kubeConfig: kc, logger: silent });
    const changed: string[] = [];
    cache.onChange((k) => changed.push(`${k.namespace}/${k.name}`));
    cache.start();
    await cache.whenReady();
    api.put('api/v1/pods', { metadata: { name: 'demo-0', namespace: 'ns', labels } });
    api.put('api/v1/pods', { metadata: { name: 'demo-0', namespace: 'ns', labels } });
    api.remove('api/v1/pods', 'ns', 'demo-0');
    // Not the operator's (no managed-by label): not watched at all.
    api.put('api/v1/pods', { metadata: { name: 'other', namespace: 'ns', labels: { app: 'x' } } });
    await until(async () => changed.length >= 3);
    await new Promise((r) => setTimeout(r, 50));
    expect(changed).toEqual(['ns/demo', 'ns/demo', 'ns/demo']);
    expect(await cache.list('Pod', 'ns', {})).toEqual([]);
  });
});
