// The pod runner against the Kubernetes API stand-in: a StatefulSet built by the operator's own
// builders (a dev-insecure ConfluxCluster: plain HTTP on loopback, since TLS hostname checks
// cannot match the pods' 127.0.0.x addresses) becomes real conflux-node processes on their own
// loopback IPs, with PVCs, restarts after kill -9 and scale-down.

import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConfluxCluster, confluxClusterSchema } from '../../operator/api/cluster.js';
import { memberPods } from '../../operator/platform/kubernetes.js';
import { buildClusterObjects, DEV_INSECURE_ANNOTATION } from '../../operator/platform/kubernetes-objects.js';
import { type ApiServer, startApiServer } from './api-server.js';
import { type PodRunner, startPodRunner } from './pod-runner.js';

const NS = 'default';

let api: ApiServer;
let runner: PodRunner;
let root: string;
let core: CoreV1Api;
let apps: AppsV1Api;
let custom: CustomObjectsApi;

beforeAll(async () => {
  api = await startApiServer();
  root = mkdtempSync(join(tmpdir(), 'pod-runner-e2e-'));
  runner = await startPodRunner({ kubeconfigPath: api.kubeconfigPath, root });
  const kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
});

afterAll(async () => {
  await runner?.stop();
  await api?.stop();
  if (root && !process.env.CONFLUX_KEEP_E2E) rmSync(root, { recursive: true, force: true });
});

/** A dev-insecure ConfluxCluster, created in the API (the StatefulSet's owner must exist, or the
 * garbage collector removes it). No operator runs here: the test acts in its place. */
async function devCluster(name: string, reclaimPolicy: 'Delete' | 'Retain'): Promise<ConfluxCluster> {
  const created = await custom.createNamespacedCustomObject({
    group: 'conflux.io',
    version: 'v1alpha1',
    namespace: NS,
    plural: 'confluxclusters',
    body: {
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name, namespace: NS, annotations: { [DEV_INSECURE_ANNOTATION]: 'true' } },
      spec: { replicas: 2, storage: { reclaimPolicy }, raft: { tickMs: 20 } },
    },
  });
  return confluxClusterSchema.parse(created);
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

const isReady = (p: V1Pod) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
const pods = async (prefix: string) =>
  (await core.listNamespacedPod({ namespace: NS })).items.filter((p) => p.metadata?.name?.startsWith(prefix));
const claimNames = async () =>
  (await core.listNamespacedPersistentVolumeClaim({ namespace: NS })).items
    .map((c) => c.metadata?.name)
    .sort();

async function healthz(ip: string): Promise<string | undefined> {
  const res = await fetch(`http://${ip}:8080/healthz`, { signal: AbortSignal.timeout(1_000) });
  return res.ok ? ((await res.json()) as { node: string }).node : undefined;
}

/** A JSON merge patch of a StatefulSet (what `kubectl scale` / `kubectl patch --type merge` send). */
async function patchSet(name: string, body: object): Promise<void> {
  await apps.patchNamespacedStatefulSet(
    { name, namespace: NS, body },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

const scale = (name: string, replicas: number) => patchSet(name, { spec: { replicas } });

describe('pod runner', () => {
  it('runs the operator StatefulSet as conflux-node processes: status, PVCs, kill -9, scale-down (Delete)', async () => {
    const cluster = await devCluster('demo', 'Delete');
    const { statefulSet } = buildClusterObjects(cluster, 2);
    await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet });

    // Two pods, Running, with their own loopback IPs; each process answers there.
    const running = await until('two Running pods', async () => {
      const list = await pods('demo-');
      return list.length === 2 && list.every((p) => p.status?.phase === 'Running' && p.status.podIP) && list;
    });
    const ip = [runner.addressOf(NS, 'demo-0'), runner.addressOf(NS, 'demo-1')];
    expect(ip[0]).toMatch(/^127\.0\.0\.\d+$/);
    expect(ip[1]).not.toBe(ip[0]);
    for (const p of running) {
      const ordinal = Number(p.metadata!.name!.slice('demo-'.length));
      expect(p.status?.podIP).toBe(ip[ordinal]);
      expect(p.spec?.hostname).toBe(p.metadata?.name);
      expect(p.spec?.subdomain).toBe('demo-headless');
      expect(p.metadata?.ownerReferences?.[0]).toMatchObject({
        kind: 'StatefulSet',
        name: 'demo',
        controller: true,
      });
      expect(p.metadata?.labels).toMatchObject(statefulSet.spec!.template.metadata!.labels!);
      expect(p.metadata?.annotations).toMatchObject(statefulSet.spec!.template.metadata!.annotations!);
    }
    const ids = await until('both nodes answering /healthz', async () => {
      const got = await Promise.all(ip.map((a) => healthz(a!)));
      return got.every(Boolean) && (got as string[]);
    });
    expect(ids[0]).toMatch(/^demo-0-[0-9a-f]{8}$/);
    expect(ids[1]).toMatch(/^demo-1-[0-9a-f]{8}$/);

    // The PVCs, with the set's labels, and their host directories holding the nodes' data.
    expect(await claimNames()).toEqual(['data-demo-0', 'data-demo-1']);
    const claim = await core.readNamespacedPersistentVolumeClaim({ name: 'data-demo-1', namespace: NS });
    expect(claim.metadata?.labels).toMatchObject(statefulSet.spec!.selector!.matchLabels!);
    expect(readdirSync(runner.pvcPath(NS, 'data-demo-1')).length).toBeGreaterThan(0);

    // The operator's view of the pods, with the runner's memberHost.
    const members = memberPods(cluster, 2, running, runner.memberHost);
    expect(members.map((m) => m.addresses.admin)).toEqual([`${ip[0]}:8443`, `${ip[1]}:8443`]);

    // Initialized as the operator would: then the readiness probe passes and the set is ready.
    const address = (i: number) => ({
      api_address: `${ip[i]}:8080`,
      raft_address: `${ip[i]}:7000`,
      admin_address: `${ip[i]}:8443`,
    });
    const init = await fetch(`http://${ip[0]}:8443/_cluster/initialize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ members: { [ids[0]!]: address(0), [ids[1]!]: address(1) } }),
    });
    expect(init.status).toBeLessThan(300);
    await until('both pods Ready and the set status', async () => {
      const sts = await apps.readNamespacedStatefulSet({ name: 'demo', namespace: NS });
      const list = await pods('demo-');
      return (
        list.every(isReady) &&
        sts.status?.readyReplicas === 2 &&
        sts.status.replicas === 2 &&
        sts.status.observedGeneration === sts.metadata?.generation
      );
    });
    const put = await fetch(`http://${ip[0]}:8080/v1/kv/greeting`, { method: 'PUT', body: 'hello' });
    expect(put.status).toBeLessThan(300);

    // kill -9: the process comes back (restartCount 1) with the same data dir, so the same node id.
    const before = runner.processOf(NS, 'demo-1');
    await runner.kill(NS, 'demo-1');
    await until('demo-1 restarted and Ready', async () => {
      const p = await core.readNamespacedPod({ name: 'demo-1', namespace: NS });
      return p.status?.containerStatuses?.[0]?.restartCount === 1 && isReady(p);
    });
    expect(runner.processOf(NS, 'demo-1')?.pid).not.toBe(before?.pid);
    expect(await healthz(ip[1]!)).toBe(ids[1]);
    const read = await fetch(`http://${ip[1]}:8080/v1/kv/greeting?consistency=serializable`);
    expect(read.status).toBe(200);

    // Scale to 1: pod 1 goes, its process stops, its PVC (whenScaled Delete) and directory go.
    await scale('demo', 1);
    await until('demo-1 deleted', async () => (await pods('demo-')).length === 1);
    await expect(healthz(ip[1]!)).rejects.toThrow();
    expect(runner.processOf(NS, 'demo-1')).toBeUndefined();
    await until('data-demo-1 deleted', async () => !(await claimNames()).includes('data-demo-1'));
    await until('its directory removed', async () => !existsSync(runner.pvcPath(NS, 'data-demo-1')));
    expect(await claimNames()).toContain('data-demo-0');
    expect(await healthz(ip[0]!)).toBe(ids[0]);
    const sts = await until('status replicas 1', async () => {
      const s = await apps.readNamespacedStatefulSet({ name: 'demo', namespace: NS });
      return s.status?.replicas === 1 && s;
    });
    expect(sts.status?.observedGeneration).toBe(sts.metadata?.generation);
  });

  it('keeps the PVC and its data on scale-down with whenScaled Retain', async () => {
    const cluster = await devCluster('keep', 'Retain');
    await apps.createNamespacedStatefulSet({
      namespace: NS,
      body: buildClusterObjects(cluster, 2).statefulSet,
    });
    const ip1 = runner.addressOf(NS, 'keep-1');
    const id = await until('keep-1 answering', () => healthz(ip1));
    await scale('keep', 1);
    await until('keep-1 deleted', async () => (await pods('keep-')).length === 1);
    await expect(healthz(ip1)).rejects.toThrow();
    // Give the controller a few passes to (wrongly) delete it.
    await runner.settle();
    await runner.settle();
    expect(await claimNames()).toContain('data-keep-1');
    expect(readdirSync(runner.pvcPath(NS, 'data-keep-1')).length).toBeGreaterThan(0);

    // Scaled up again: the same volume, so the same node.
    await scale('keep', 2);
    expect(await until('keep-1 back', () => healthz(ip1).catch(() => undefined))).toBe(id);
  });

  it('rolls a changed pod template (RollingUpdate): the pod is re-created on the same volume once all are Ready', async () => {
    const cluster = await devCluster('roll', 'Delete');
    const sts = buildClusterObjects(cluster, 1).statefulSet;
    await apps.createNamespacedStatefulSet({
      namespace: NS,
      body: { ...sts, spec: { ...sts.spec!, updateStrategy: { type: 'RollingUpdate' } } },
    });
    const ip = runner.addressOf(NS, 'roll-0');
    const id = await until('roll-0 answering', () => healthz(ip).catch(() => undefined));
    const me = { api_address: `${ip}:8080`, raft_address: `${ip}:7000`, admin_address: `${ip}:8443` };
    const init = await fetch(`http://${ip}:8443/_cluster/initialize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ members: { [id]: me } }),
    });
    expect(init.status).toBeLessThan(300);
    const first = await until('roll ready', async () => {
      const s = await apps.readNamespacedStatefulSet({ name: 'roll', namespace: NS });
      return s.status?.readyReplicas === 1 && s.status.currentRevision === s.status.updateRevision && s;
    });
    const oldUid = (await core.readNamespacedPod({ name: 'roll-0', namespace: NS })).metadata?.uid;

    await patchSet('roll', {
      spec: { template: { metadata: { annotations: { 'example.com/rollout': '2' } } } },
    });

    const rolled = await until('roll-0 re-created from the new template and Ready', async () => {
      const s = await apps.readNamespacedStatefulSet({ name: 'roll', namespace: NS });
      const p = await core.readNamespacedPod({ name: 'roll-0', namespace: NS });
      return (
        s.status?.updateRevision !== first.status?.updateRevision &&
        p.metadata?.uid !== oldUid &&
        p.metadata?.labels?.['controller-revision-hash'] === s.status?.updateRevision &&
        p.metadata?.annotations?.['example.com/rollout'] === '2' &&
        isReady(p) &&
        s.status?.currentRevision === s.status?.updateRevision &&
        s.status?.readyReplicas === 1 &&
        s
      );
    });
    expect(rolled.status?.updatedReplicas).toBe(1);
    expect(await healthz(ip)).toBe(id);
  });

  it('OnDelete (the operator rolls): a changed template replaces nothing until the pod is deleted', async () => {
    const cluster = await devCluster('ondelete', 'Delete');
    const sts = buildClusterObjects(cluster, 1).statefulSet;
    expect(sts.spec?.updateStrategy?.type).toBe('OnDelete');
    await apps.createNamespacedStatefulSet({ namespace: NS, body: sts });
    const ip = runner.addressOf(NS, 'ondelete-0');
    const id = await until('ondelete-0 answering', () => healthz(ip).catch(() => undefined));
    const me = { api_address: `${ip}:8080`, raft_address: `${ip}:7000`, admin_address: `${ip}:8443` };
    const init = await fetch(`http://${ip}:8443/_cluster/initialize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ members: { [id]: me } }),
    });
    expect(init.status).toBeLessThan(300);
    const first = await until('ondelete ready', async () => {
      const s = await apps.readNamespacedStatefulSet({ name: 'ondelete', namespace: NS });
      return s.status?.readyReplicas === 1 && s.status.currentRevision === s.status.updateRevision && s;
    });
    const oldUid = (await core.readNamespacedPod({ name: 'ondelete-0', namespace: NS })).metadata?.uid;

    await patchSet('ondelete', {
      spec: { template: { metadata: { annotations: { 'example.com/rollout': '2' } } } },
    });
    const updated = await until('a new updateRevision', async () => {
      const s = await apps.readNamespacedStatefulSet({ name: 'ondelete', namespace: NS });
      return s.status?.updateRevision !== first.status?.updateRevision && s;
    });
    expect(updated.status?.currentRevision).toBe(first.status?.updateRevision);
    await runner.settle();
    await runner.settle();
    const kept = await core.readNamespacedPod({ name: 'ondelete-0', namespace: NS });
    expect(kept.metadata?.uid).toBe(oldUid);
    expect(kept.metadata?.labels?.['controller-revision-hash']).toBe(first.status?.updateRevision);

    await core.deleteNamespacedPod({ name: 'ondelete-0', namespace: NS });
    const rolled = await until('ondelete-0 re-created from the new template and Ready', async () => {
      const s = await apps.readNamespacedStatefulSet({ name: 'ondelete', namespace: NS });
      const p = await core.readNamespacedPod({ name: 'ondelete-0', namespace: NS });
      return (
        p.metadata?.uid !== oldUid &&
        p.metadata?.labels?.['controller-revision-hash'] === s.status?.updateRevision &&
        p.metadata?.annotations?.['example.com/rollout'] === '2' &&
        isReady(p) &&
        s.status?.currentRevision === s.status?.updateRevision &&
        s
      );
    });
    expect(rolled.status?.updatedReplicas).toBe(1);
    expect(await until('the same node on the same volume', () => healthz(ip).catch(() => undefined))).toBe(
      id,
    );
  });
});
