// The operator's every-pass duties on the real API server (kube-apiserver + etcd + controllers,
// no kubelet): with the clock moved forward, a settled cluster's certificates are renewed and its
// CA rotated without any spec change, and a deleted Service or disruption budget is applied again
// by the next pass. Each pass is the reconciler's own observe -> plan -> act, on KubernetesPlatform
// with an injected clock; the members never answer here (no kubelet), which the rules for what a
// cluster owns run ahead of.

import { X509Certificate } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, type ConfluxCluster, confluxClusterSchema } from '../../operator/api/cluster.js';
import { clusterCrd } from '../../operator/api/crd.js';
import { KubernetesPlatform } from '../../operator/platform/kubernetes.js';
import { KubernetesStore } from '../../operator/platform/kubernetes-store.js';
import { act } from '../../operator/reconcile/act.js';
import { observe } from '../../operator/reconcile/observe.js';
import { plan } from '../../operator/reconcile/plan.js';
import type { Action } from '../../operator/reconcile/types.js';
import { binariesPresent, ensureBinaries, hasGo } from './binaries.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';

const NS = 'operator-production';
const DAY = 24 * 60 * 60 * 1000;
const canRun = binariesPresent() || hasGo();

describe.skipIf(!canRun)('a settled cluster on the real API server, pass by pass', () => {
  let cp: ControlPlane;
  let platform: KubernetesPlatform;
  let cluster: ConfluxCluster;
  let now = new Date();

  const secret = async (name: string): Promise<V1Secret> =>
    JSON.parse((await cp.kubectl(['-n', NS, 'get', 'secret', name, '-o', 'json'])).stdout) as V1Secret;
  const certOf = async (name: string, key = 'tls.crt') =>
    new X509Certificate(Buffer.from((await secret(name)).data?.[key] ?? '', 'base64'));
  const exists = async (kind: string, name: string) =>
    cp.kubectl(['-n', NS, 'get', kind, name]).then(
      () => true,
      () => false,
    );

  /** One reconciler pass as the Reconciler takes it (observe, plan, act), at the test's clock. */
  const pass = async (): Promise<Action> => {
    const obs = await observe(platform, cluster, now);
    const p = plan(obs);
    await act(platform, obs, p.action);
    return p.action;
  };

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(clusterCrd()) });
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    await cp.kubectl(['create', 'namespace', NS]);
    const created = await cp.kubectl(['create', '-o', 'json', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: API_VERSION,
        kind: 'ConfluxCluster',
        metadata: { name: 'demo', namespace: NS },
        spec: { replicas: 3 },
      }),
    });
    // Bootstrapped long ago: what the status of a settled cluster records.
    cluster = confluxClusterSchema.parse({
      ...JSON.parse(created.stdout),
      status: { clusterId: 'c-settled' },
    });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cp.kubeconfigPath);
    platform = new KubernetesPlatform({ kubeConfig, logger: pino({ level: 'silent' }), now: () => now });
    await platform.ensureMembers(cluster, 3, 2);
  }, 90 * 60_000);

  afterAll(async () => {
    await cp?.stop();
  }, 60_000);

  it('takes no step for what it owns while nothing is due', async () => {
    const action = await pass();
    expect(['renew-certificates', 'rotate-ca', 'repair-owned']).not.toContain(action.type);
  });

  it('renews the leaves 29 days before they expire, and is settled again after', async () => {
    const before = await certOf('demo-tls');
    const adminBefore = await certOf('demo-admin-tls');
    now = new Date(Date.parse(before.validTo) - 31 * DAY);
    expect((await pass()).type).not.toBe('renew-certificates');
    now = new Date(Date.parse(before.validTo) - 29 * DAY);
    expect(await pass()).toMatchObject({ type: 'renew-certificates' });
    const after = await certOf('demo-tls');
    expect(after.serialNumber).not.toBe(before.serialNumber);
    expect(Date.parse(after.validTo)).toBeGreaterThan(Date.parse(before.validTo));
    expect((await certOf('demo-admin-tls')).serialNumber).not.toBe(adminBefore.serialNumber);
    expect(after.checkIssued(await certOf('demo-ca', 'ca.crt'))).toBe(true);
    expect((await pass()).type).not.toBe('renew-certificates');
  });

  it('rotates the CA 29 days before it expires: trust both, re-issue from the new one, drop the old', async () => {
    const oldCa = await certOf('demo-ca', 'ca.crt');
    now = new Date(Date.parse(oldCa.validTo) - 29 * DAY);
    const steps: string[] = [];
    for (let i = 0; i < 12 && !steps.includes('rotate-ca:finish'); i++) {
      const a = await pass();
      steps.push(a.type === 'rotate-ca' ? `rotate-ca:${a.step}` : a.type);
      // No member answers here: each phase moves on once its wait for them ran out.
      if (a.type === 'wait') now = new Date(now.getTime() + 6 * 60_000);
      if (a.type === 'rotate-ca' && a.step === 'start') {
        const ca = await secret('demo-ca');
        expect(ca.metadata?.annotations?.['conflux.io/ca-rotation-phase']).toBe('trust-new');
        const bundle = Buffer.from((await secret('demo-tls')).data?.['ca.crt'] ?? '', 'base64').toString();
        expect(bundle.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
      }
    }
    // Leaves within 30 days of the old CA's end were renewed first, as any pass does.
    expect(steps.filter((s) => s.startsWith('rotate-ca'))).toEqual([
      'rotate-ca:start',
      'rotate-ca:promote',
      'rotate-ca:finish',
    ]);
    const newCa = await certOf('demo-ca', 'ca.crt');
    expect(newCa.fingerprint256).not.toBe(oldCa.fingerprint256);
    expect((await certOf('demo-tls')).checkIssued(newCa)).toBe(true);
    expect((await certOf('demo-admin-tls')).checkIssued(newCa)).toBe(true);
    const bundle = Buffer.from((await secret('demo-tls')).data?.['ca.crt'] ?? '', 'base64').toString();
    expect(bundle.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect((await secret('demo-ca')).metadata?.annotations?.['conflux.io/ca-rotation-phase']).toBeUndefined();
    const settled = await pass();
    expect(['renew-certificates', 'rotate-ca']).not.toContain(settled.type);
  });

  it('applies a deleted Service and a deleted disruption budget again with the next pass', async () => {
    await cp.kubectl(['-n', NS, 'delete', 'service', 'demo-headless', '--wait=true']);
    await cp.kubectl(['-n', NS, 'delete', 'pdb', 'demo', '--wait=true']);
    expect(await exists('service', 'demo-headless')).toBe(false);
    expect(await pass()).toMatchObject({
      type: 'repair-owned',
      repairs: ['Service demo-headless: missing', 'PodDisruptionBudget demo: missing'],
    });
    expect(await exists('service', 'demo-headless')).toBe(true);
    expect(await exists('pdb', 'demo')).toBe(true);
    expect((await pass()).type).not.toBe('repair-owned');
  });

  it('applies a Service whose selector was edited by hand again', async () => {
    await cp.kubectl([
      '-n',
      NS,
      'patch',
      'service',
      'demo',
      '--type=merge',
      '-p',
      '{"spec":{"selector":{"app.kubernetes.io/instance":"x"}}}',
    ]);
    expect(await pass()).toMatchObject({ type: 'repair-owned', repairs: ['Service demo: selector changed'] });
    const svc = JSON.parse((await cp.kubectl(['-n', NS, 'get', 'service', 'demo', '-o', 'json'])).stdout);
    expect(svc.spec.selector).toEqual({
      'app.kubernetes.io/name': 'conflux',
      'app.kubernetes.io/instance': 'demo',
    });
  });
});

// API requests per resync at a hundred clusters: each cluster's pass as the reconciler takes it
// (KubernetesStore, KubernetesPlatform), every Kubernetes request counted through the bounded
// clients. The clusters are bootstrapped (status.clusterId) with one slot each and settled in
// everything they own; their members do not answer here, which changes no API request a pass makes
// (member probes are admin-port calls, not API requests) except the ConfluxBackup list a pass with
// a known leader adds.
describe.skipIf(!canRun)('API requests per resync with 100 clusters', () => {
  const N = 100;
  const NS100 = 'hundred';
  let cp: ControlPlane;

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(clusterCrd()) });
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    await cp.kubectl(['create', 'namespace', NS100]);
  }, 90 * 60_000);

  afterAll(async () => {
    await cp?.stop();
  }, 60_000);

  it(
    'counts the requests of settled passes, by verb and resource',
    async () => {
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(cp.kubeconfigPath);
      const counts = new Map<string, number>();
      let counting = false;
      const api = {
        // A loaded machine's API server can be slow; the measure counts requests, not latency.
        timeoutMs: 120_000,
        onRequest: (method: string, url: string) => {
          if (!counting) return;
          // GET /api/v1/namespaces/hundred/secrets/c7-tls -> GET secrets
          const parts = new URL(url).pathname.split('/').filter(Boolean);
          const at = parts.indexOf('namespaces');
          const resource = at >= 0 ? (parts[at + 2] ?? 'namespaces') : (parts.at(-1) ?? '');
          const verb = method === 'GET' && at >= 0 && parts.length <= at + 3 ? 'LIST' : method;
          const key = `${verb} ${resource}${parts.at(-1) === 'status' ? '/status' : ''}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        },
      };
      const logger = pino({ level: 'silent' });
      const store = new KubernetesStore({ kubeConfig, logger, api });
      const platform = new KubernetesPlatform({ kubeConfig, logger, api });
      const docs = Array.from({ length: N }, (_, i) => ({
        apiVersion: API_VERSION,
        kind: 'ConfluxCluster',
        metadata: { name: `c${i}`, namespace: NS100 },
        spec: { replicas: 1 },
      }));
      await cp.kubectl(['create', '-f', '-'], { input: docs.map((d) => JSON.stringify(d)).join('\n') });
      const created = await store.listClusters();
      expect(created).toHaveLength(N);
      for (let i = 0; i < N; i += 10) {
        await Promise.all(
          created.slice(i, i + 10).map(async (c) => {
            await store.writeClusterStatus(c, { clusterId: `id-${c.metadata.name}` });
            await platform.ensureMembers(c, 1, 1);
          }),
        );
      }
      // One pass as Reconciler.pass takes it: read the cluster, observe, plan, act, then the status
      // write (a fresh read, and a write only when the status changed).
      const passOf = async (name: string): Promise<Action> => {
        const c = await store.getCluster(NS100, name);
        if (!c) throw new Error(`${name} is gone`);
        const obs = await observe(platform, c);
        const p = plan(obs);
        await act(platform, obs, p.action);
        const fresh = await store.getCluster(NS100, name);
        if (fresh && !isDeepStrictEqual(fresh.status ?? {}, p.status))
          await store.writeClusterStatus(fresh, p.status);
        return p.action;
      };
      const names = created.map((c) => c.metadata.name);
      // The first pass of each cluster writes its status once; the second is a settled resync.
      for (const name of names) await passOf(name);
      counting = true;
      const unsettled: string[] = [];
      for (const name of names) {
        const action = await passOf(name);
        if (['renew-certificates', 'rotate-ca', 'repair-owned', 'ensure-members'].includes(action.type)) {
          unsettled.push(`${name}: ${action.type}`);
        }
      }
      counting = false;
      const requests = [...counts.values()].reduce((a, b) => a + b, 0);
      const perPass = requests / N;
      const table = [...counts.entries()].sort().map(([k, v]) => `${k}: ${(v / N).toFixed(2)}`);
      console.log(
        `${N} settled clusters, one resync: ${requests} API requests (${perPass.toFixed(2)} per cluster)\n  ${table.join('\n  ')}`,
      );
      expect(unsettled).toEqual([]);
      // A settled resync writes nothing: reads only.
      expect([...counts.keys()].filter((k) => !k.startsWith('GET') && !k.startsWith('LIST'))).toEqual([]);
      // Measured on 2026-12-07: 13 per cluster (2 ConfluxCluster, 2 StatefulSet, 4 Secret, 2 Service reads,
      // 1 PodDisruptionBudget, 1 LIST pods, 1 LIST claims) for a platform built without its watch cache,
      // as here; cached-requests.test.ts measures the operator as it runs, with the cache: 0 per resync.
      expect(perPass).toBeLessThanOrEqual(13);
    },
    30 * 60_000,
  );
});
