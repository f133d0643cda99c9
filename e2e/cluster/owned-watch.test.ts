// The operator's watch-backed cache on the real API server: a deleted headless Service of a
// bootstrapped cluster is back within a few seconds, through the Service watch enqueuing its
// cluster's pass, not at the next resync (set to ten minutes here) nor at the next health check
// (every 5 s while no member answers). Only the control plane runs (no nodes: the member pods
// stay Pending), so the cluster is "bootstrapped" by its status (status.clusterId) and its
// passes wait for members that never answer; repairs of owned objects come before that wait.

import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION } from '../../operator/api/cluster.js';
import { backupCrd, clusterCrd } from '../../operator/api/crd.js';
import { KubeCache } from '../../operator/platform/kube-cache.js';
import { KubernetesPlatform } from '../../operator/platform/kubernetes.js';
import { KubernetesStore } from '../../operator/platform/kubernetes-store.js';
import { Reconciler } from '../../operator/reconcile/reconciler.js';
import { ensureBinaries } from './binaries.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';

const silent = pino({ level: 'silent' });
const NS = 'watched';
const NAME = 'demo';
const RESYNC_MS = 600_000;
/** The requeue of a pass that waits for a member to answer (REQUEUE_MS.health). */
const HEALTH_REQUEUE_MS = 5_000;

describe('owned objects are watched on the real API server', () => {
  let cp: ControlPlane;
  let reconciler: Reconciler | undefined;
  let cache: KubeCache | undefined;
  const passes: { action: string; endedMs: number }[] = [];

  const kubectl = async (args: string[], input?: unknown) =>
    (await cp.kubectl(args, input === undefined ? undefined : { input: JSON.stringify(input) })).stdout;
  const serviceUid = async (): Promise<string | null> => {
    const r = await cp.api('GET', `/api/v1/namespaces/${NS}/services/${NAME}-headless`);
    if (r.status === 404) return null;
    const s = JSON.parse(r.body) as { metadata: { uid: string; deletionTimestamp?: string } };
    return s.metadata.deletionTimestamp ? null : s.metadata.uid;
  };
  const until = async <T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 60_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    await kubectl(['create', '-f', '-'], clusterCrd());
    await kubectl(['create', '-f', '-'], backupCrd());
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    await kubectl(['create', 'namespace', NS]);
    for (let i = 0; ; i++) {
      try {
        await kubectl(['create', '-f', '-'], {
          apiVersion: API_VERSION,
          kind: 'ConfluxCluster',
          metadata: { name: NAME, namespace: NS },
          spec: { replicas: 3 },
        });
        break;
      } catch (err) {
        if (i > 50) throw err; // a CRD established a moment ago may still answer 429/404
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await kubectl([
      'patch',
      'confluxcluster',
      NAME,
      '-n',
      NS,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { clusterId: 'c-e2e' } }),
    ]);
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cp.kubeconfigPath);
    cache = new KubeCache({ kubeConfig, logger: silent, without: ['NetworkPolicy'] });
    const store = new KubernetesStore({ kubeConfig, logger: silent, cache });
    const platform = new KubernetesPlatform({ kubeConfig, logger: silent, cache, adminTimeoutMs: 1_000 });
    cache.start();
    reconciler = new Reconciler({
      store,
      platform,
      logger: silent,
      resyncMs: RESYNC_MS,
      onPass: (_key, action) => passes.push({ action: action.type, endedMs: performance.now() }),
    });
    await reconciler.start();
  }, 30 * 60_000);

  afterAll(async () => {
    await reconciler?.stop();
    cache?.stop();
    await cp?.stop();
  }, 60_000);

  it('a deleted headless Service is back within seconds, before any timed pass was due', async () => {
    // The first pass recreates the member slots (none existed), with their Services.
    const first = await until('the headless Service', serviceUid);
    await until('a pass that waits for the members', async () => passes.at(-1)?.action === 'wait');
    // Right after a waiting pass: its own requeue is HEALTH_REQUEUE_MS away.
    const waited = passes.length;
    await until(
      'the next waiting pass',
      async () => passes.length > waited && passes.at(-1)?.action === 'wait',
    );
    const lastPassMs = passes.at(-1)?.endedMs ?? 0;
    const deletedMs = performance.now();
    await kubectl(['delete', 'service', `${NAME}-headless`, '-n', NS, '--wait=false']);
    const back = await until('the headless Service again', async () => {
      const uid = await serviceUid();
      return uid !== null && uid !== first ? uid : null;
    });
    const backMs = performance.now();
    console.log(
      `headless Service back ${(backMs - deletedMs).toFixed(0)} ms after its deletion ` +
        `(the last pass ended ${(deletedMs - lastPassMs).toFixed(0)} ms before it; passes requeue after ${HEALTH_REQUEUE_MS} ms, resync ${RESYNC_MS} ms)`,
    );
    expect(back).not.toBe(first);
    // The pass that applied it reports once its status is written.
    await until(
      'the repair pass to end',
      async () => passes.some((p) => p.action === 'repair-owned'),
      10_000,
    );
    // Repaired before the waiting pass's own requeue could have run.
    expect(backMs - lastPassMs).toBeLessThan(HEALTH_REQUEUE_MS);
    expect(backMs - deletedMs).toBeLessThan(3_000);
  }, 120_000);
});
