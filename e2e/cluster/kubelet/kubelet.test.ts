// The process kubelet against the real control plane and pod network: three Nodes register and
// heartbeat, a StatefulSet's pods are scheduled, get PVs from the provisioner, run as non-root
// processes in their sandboxes with a Secret mounted, become Ready through their probes, see a
// Secret update in place, come back with a new IP after deletion, and a stopped node goes NotReady.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binariesPresent, ensureBinaries, hasGo } from '../binaries.js';
import { type ControlPlane, startControlPlane } from '../control-plane.js';
import { checkHost, type PodNetwork, preparePodNetwork } from '../network/pod-network.js';
import { issue, makeCa } from '../pki.js';
import { httpsRequest, until as untilDone } from '../proc.js';
import { skipUnless } from '../require.js';
import { confluxImage } from './images.js';
import { loadKubeConfig } from './kube.js';
import { controlPlaneCredentials, type Kubelet, startKubelet } from './kubelet.js';

const skip = skipUnless(
  (binariesPresent() || hasGo()) && process.getuid?.() === 0,
  'kubelet.test.ts',
  'needs root and the Kubernetes binaries (or Go to build them)',
);

const NS = 'kubelet-test';
const IMAGE = 'conflux.test/echo:1';
const CONFLUX = 'ghcr.io/conflux-io/conflux:0.1.0';
const REPO = resolve(import.meta.dirname, '../../..');

/** The echo image: serves its Secret file, its start count on the PVC, and a readiness endpoint. */
const ECHO = `
const fs = require('fs'), http = require('http');
const starts = (() => { try { return Number(fs.readFileSync('/data/starts', 'utf8')) } catch { return 0 } })() + 1;
fs.writeFileSync('/data/starts', String(starts));
http.createServer((q, r) => {
  if (q.url === '/ready') return r.end('ok');
  if (q.url === '/secret') return r.end(fs.readFileSync('/etc/echo/message', 'utf8'));
  if (q.url === '/serviceaccount') {
    const d = '/var/run/secrets/kubernetes.io/serviceaccount/';
    const read = (f) => fs.readFileSync(d + f, 'utf8');
    return r.end(JSON.stringify({ token: read('token'), namespace: read('namespace'), ca: read('ca.crt') }));
  }
  if (q.url === '/whoami') return r.end(JSON.stringify({ uid: process.getuid(), name: process.env.POD_NAME,
    ip: process.env.POD_IP, host: require('os').hostname(), starts, node: process.env.NODE_NAME }));
  r.statusCode = 404; r.end();
}).listen(8080, '0.0.0.0', () => console.log('listening'));
process.on('SIGTERM', () => { console.log('SIGTERM'); process.exit(0); });
`;

const until = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000) =>
  untilDone(what, fn, timeoutMs);

async function get(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  return res.text();
}

const isReady = (p: V1Pod) =>
  p.status?.phase === 'Running' &&
  p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');

describe.skipIf(skip)('process kubelet', () => {
  let dir: string;
  let cp: ControlPlane;
  let network: PodNetwork;
  let kubelet: Kubelet;
  let kc: KubeConfig;
  let core: CoreV1Api;

  beforeAll(async () => {
    await ensureBinaries((line) => console.log(line));
    checkHost();
    dir = mkdtempSync(join(tmpdir(), 'conflux-kubelet-'));
    // Pod and Service ranges outside 127.0.0.0/8, which every network namespace keeps for itself.
    cp = await startControlPlane({
      dir: join(dir, 'cp'),
      clusterCidr: '10.244.0.0/16',
      serviceCidr: '10.96.0.0/16',
    });
    network = await preparePodNetwork({ stateDir: join(dir, 'net'), serviceCidr: cp.serviceCidr });
    kubelet = await startKubelet({
      ...(await controlPlaneCredentials(cp)),
      network,
      stateDir: join(dir, 'kubelet'),
      images: {
        [IMAGE]: { command: [process.execPath, '-e', ECHO] },
        [CONFLUX]: confluxImage({ repoDir: REPO }),
      },
      backoff: { initialMs: 1000, maxMs: 5000 },
      // Long: the Secret update below must arrive through the kubelet's watch of that Secret.
      volumeResyncMs: 60_000,
    });
    kc = loadKubeConfig(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
  }, 20 * 60_000);

  afterAll(async () => {
    await kubelet?.stop();
    await network?.stop();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('registers Ready nodes with a podCIDR, capacity and a lease', async () => {
    const nodes = (await core.listNode()).items;
    expect(nodes.map((n) => n.metadata?.name).sort()).toEqual(kubelet.nodeNames);
    for (const n of nodes) {
      expect(n.spec?.podCIDR).toMatch(/\/24$/);
      expect(n.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
      expect(n.status?.allocatable?.pods).toBe('110');
      expect(n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address).toBe(network.hostAddress);
    }
    const leases = await kc
      .makeApiClient(CoordinationV1Api)
      .listNamespacedLease({ namespace: 'kube-node-lease' });
    expect(leases.items.map((l) => l.spec?.holderIdentity).sort()).toEqual(kubelet.nodeNames);
  });

  it('runs a StatefulSet with a Secret and a PVC, updates the Secret in place, re-creates a pod', async () => {
    const apps = kc.makeApiClient(AppsV1Api);
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'echo' }, stringData: { message: 'first' } },
    });
    await core.createNamespacedService({
      namespace: NS,
      body: {
        metadata: { name: 'echo' },
        spec: { clusterIP: 'None', selector: { app: 'echo' }, ports: [{ name: 'http', port: 8080 }] },
      },
    });
    const t0 = Date.now();
    await apps.createNamespacedStatefulSet({
      namespace: NS,
      body: {
        metadata: { name: 'echo' },
        spec: {
          serviceName: 'echo',
          replicas: 2,
          podManagementPolicy: 'Parallel',
          selector: { matchLabels: { app: 'echo' } },
          template: {
            metadata: { labels: { app: 'echo' } },
            spec: {
              terminationGracePeriodSeconds: 5,
              securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001 },
              containers: [
                {
                  name: 'echo',
                  image: IMAGE,
                  env: [
                    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                    { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
                  ],
                  ports: [{ name: 'http', containerPort: 8080 }],
                  readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 1 },
                  livenessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 2 },
                  volumeMounts: [
                    { name: 'data', mountPath: '/data' },
                    { name: 'secret', mountPath: '/etc/echo', readOnly: true },
                  ],
                  securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
                },
              ],
              volumes: [{ name: 'secret', secret: { secretName: 'echo', defaultMode: 0o440 } }],
            },
          },
          volumeClaimTemplates: [
            {
              metadata: { name: 'data' },
              spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
            },
          ],
        },
      },
    });
    const ready = async () => {
      const pods = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=echo' })).items;
      return pods.length === 2 && pods.every(isReady) ? pods : undefined;
    };
    const pods = await until('2 ready echo pods', ready, 90_000);
    console.log(
      `StatefulSet of 2 Ready in ${Date.now() - t0} ms; kubelet: ${JSON.stringify([...kubelet.readyLatencies()])}`,
    );
    for (const p of pods) {
      const ip = p.status!.podIP!;
      expect(p.status?.podIPs).toEqual([{ ip }]);
      expect(p.status?.hostIP).toBe(network.hostAddress);
      const who = JSON.parse(await get(`http://${ip}:8080/whoami`)) as Record<string, unknown>;
      expect(who).toMatchObject({
        uid: 10001,
        name: p.metadata!.name,
        ip,
        host: p.metadata!.name,
        node: p.spec!.nodeName,
      });
      expect(await get(`http://${ip}:8080/secret`)).toBe('first');
      expect(p.status?.containerStatuses?.[0]).toMatchObject({ ready: true, started: true, restartCount: 0 });
    }
    // PVCs were provisioned and bound through the PV controller.
    const claims = (await core.listNamespacedPersistentVolumeClaim({ namespace: NS })).items;
    expect(claims.map((c) => c.status?.phase)).toEqual(['Bound', 'Bound']);

    // The Secret changes; the running processes read the new file (no restart).
    const tUpdate = Date.now();
    await core.replaceNamespacedSecret({
      name: 'echo',
      namespace: NS,
      body: { metadata: { name: 'echo' }, stringData: { message: 'second' } },
    });
    for (const p of pods) {
      await until(
        'the new Secret in the pod',
        async () => ((await get(`http://${p.status!.podIP}:8080/secret`)) === 'second' ? true : undefined),
        30_000,
      );
    }
    console.log(`Secret update visible in both pods after ${Date.now() - tUpdate} ms`);
    // The projected ServiceAccount token (TokenRequest bound to the pod) authenticates.
    const sa = JSON.parse(await get(`http://${pods[0]!.status!.podIP}:8080/serviceaccount`)) as Record<
      string,
      string
    >;
    expect(sa.namespace).toBe(NS);
    expect(sa.ca).toBe(cp.caPem);
    const review = await httpsRequest(
      `${cp.apiserverUrl}/apis/authentication.k8s.io/v1/selfsubjectreviews`,
      { ca: cp.caPem },
      {
        method: 'POST',
        token: sa.token,
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      },
    );
    const user = (
      JSON.parse(review.body) as {
        status: { userInfo: { username: string; extra?: Record<string, string[]> } };
      }
    ).status.userInfo;
    expect(user.username).toBe(`system:serviceaccount:${NS}:default`);
    expect(user.extra?.['authentication.kubernetes.io/pod-name']).toEqual([pods[0]!.metadata!.name]);

    const after = (await core.readNamespacedPod({ name: 'echo-0', namespace: NS })).status
      ?.containerStatuses?.[0];
    expect(after?.restartCount).toBe(0);

    // A deleted pod comes back (StatefulSet controller) on the same PVC with a new IP.
    const old = pods.find((p) => p.metadata?.name === 'echo-0')!;
    const t1 = Date.now();
    await core.deleteNamespacedPod({ name: 'echo-0', namespace: NS });
    const fresh = await until(
      'echo-0 re-created and ready',
      async () => {
        const p = await core.readNamespacedPod({ name: 'echo-0', namespace: NS });
        return p.metadata?.uid !== old.metadata?.uid && isReady(p) ? p : undefined;
      },
      90_000,
    );
    console.log(`echo-0 deleted and Ready again in ${Date.now() - t1} ms`);
    expect(fresh.status?.podIP).not.toBe(old.status?.podIP);
    const who = JSON.parse(await get(`http://${fresh.status!.podIP}:8080/whoami`)) as { starts: number };
    expect(who.starts).toBe(2);
    expect(readFileSync(kubelet.podLogPath(NS, 'echo-0'), 'utf8')).toContain('SIGTERM');
  }, 240_000);

  it('runs the Conflux image as the operator runs it: non-root, TLS from a Secret, HTTPS probes', async () => {
    const ca = await makeCa('conflux-test-ca');
    const tls = await issue(ca, {
      cn: 'db-0',
      server: true,
      client: true,
      dns: ['db-0.db.kubelet-test.svc'],
    });
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: 'db-tls' },
        stringData: { 'tls.crt': tls.certPem, 'tls.key': tls.keyPem, 'ca.crt': ca.certPem },
      },
    });
    const env = (name: string, value: string) => ({ name, value });
    const probe = (path: string, periodSeconds: number) => ({
      httpGet: { path, port: 'api', scheme: 'HTTPS' },
      periodSeconds,
      timeoutSeconds: 3,
    });
    const t0 = Date.now();
    await kc.makeApiClient(AppsV1Api).createNamespacedStatefulSet({
      namespace: NS,
      body: {
        metadata: { name: 'db' },
        spec: {
          serviceName: 'db',
          replicas: 1,
          selector: { matchLabels: { app: 'db' } },
          template: {
            metadata: { labels: { app: 'db' } },
            spec: {
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001 },
              containers: [
                {
                  name: 'conflux',
                  image: CONFLUX,
                  env: [
                    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                    env('CONFLUX_NODE_ID_PREFIX', '$(POD_NAME)'),
                    env('CONFLUX_DATA_DIR', '/data'),
                    env('CONFLUX_RAFT_ADDR', '0.0.0.0:7000'),
                    env('CONFLUX_API_ADDR', '0.0.0.0:8080'),
                    env('CONFLUX_ADMIN_ADDR', '0.0.0.0:8443'),
                    env('CONFLUX_ADVERTISE_RAFT_ADDR', `$(POD_NAME).db.${NS}.svc:7000`),
                    env('CONFLUX_TLS_CERT', '/tls/tls.crt'),
                    env('CONFLUX_TLS_KEY', '/tls/tls.key'),
                    env('CONFLUX_TLS_CA', '/tls/ca.crt'),
                    env('CONFLUX_BOOTSTRAP_EXPECT', '1'),
                  ],
                  ports: [
                    { name: 'raft', containerPort: 7000 },
                    { name: 'api', containerPort: 8080 },
                    { name: 'admin', containerPort: 8443 },
                  ],
                  startupProbe: { ...probe('/healthz', 1), failureThreshold: 120 },
                  readinessProbe: probe('/readyz', 1),
                  livenessProbe: probe('/healthz', 10),
                  volumeMounts: [
                    { name: 'data', mountPath: '/data' },
                    { name: 'tmp', mountPath: '/tmp' },
                    { name: 'tls', mountPath: '/tls', readOnly: true },
                  ],
                  securityContext: {
                    allowPrivilegeEscalation: false,
                    readOnlyRootFilesystem: true,
                    capabilities: { drop: ['ALL'] },
                  },
                },
              ],
              volumes: [
                { name: 'tmp', emptyDir: {} },
                { name: 'tls', secret: { secretName: 'db-tls', defaultMode: 0o440 } },
              ],
            },
          },
          volumeClaimTemplates: [
            {
              metadata: { name: 'data' },
              spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
            },
          ],
        },
      },
    });
    await until(
      'db-0 Ready',
      async () => {
        const p = await core.readNamespacedPod({ name: 'db-0', namespace: NS });
        return isReady(p) ? p : undefined;
      },
      120_000,
    );
    console.log(`Conflux node db-0 Ready ${Date.now() - t0} ms after its StatefulSet was created`);
    expect(readFileSync(kubelet.podLogPath(NS, 'db-0'), 'utf8')).toContain('cluster initialized');

    // A crash (SIGKILL): the kubelet restarts the node, which recovers its data from the PVC.
    await kubelet.killContainer(NS, 'db-0');
    const restarted = await until(
      'db-0 restarted and Ready',
      async () => {
        const p = await core.readNamespacedPod({ name: 'db-0', namespace: NS });
        return isReady(p) && p.status?.containerStatuses?.[0]?.restartCount === 1 ? p : undefined;
      },
      120_000,
    );
    expect(restarted.status?.containerStatuses?.[0]?.lastState?.terminated).toMatchObject({
      exitCode: 137,
      reason: 'Error',
    });
  }, 180_000);

  it('reports a missing image as ErrImagePull / ImagePullBackOff', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'no-image' },
        spec: { containers: [{ name: 'c', image: 'conflux.test/missing:0' }] },
      },
    });
    const reason = await until('a pull failure', async () => {
      const p = await core.readNamespacedPod({ name: 'no-image', namespace: NS });
      const r = p.status?.containerStatuses?.[0]?.state?.waiting?.reason;
      return r === 'ErrImagePull' || r === 'ImagePullBackOff' ? r : undefined;
    });
    expect(['ErrImagePull', 'ImagePullBackOff']).toContain(reason);
    await core.deleteNamespacedPod({ name: 'no-image', namespace: NS });
  });

  it('deleting a claim releases its PV, and the provisioner removes the PV and its directory', async () => {
    await kc.makeApiClient(AppsV1Api).deleteNamespacedStatefulSet({ name: 'echo', namespace: NS });
    const claim = await core.readNamespacedPersistentVolumeClaim({ name: 'data-echo-1', namespace: NS });
    const pv = claim.spec!.volumeName!;
    await until('the echo pods gone', async () => {
      const pods = await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=echo' });
      return pods.items.length === 0 ? true : undefined;
    });
    expect(existsSync(kubelet.volumePath(pv))).toBe(true);
    await core.deleteNamespacedPersistentVolumeClaim({ name: 'data-echo-1', namespace: NS });
    await until(`PV ${pv} deleted`, async () =>
      (await core.listPersistentVolume()).items.some((v) => v.metadata?.name === pv) ? undefined : true,
    );
    expect(existsSync(kubelet.volumePath(pv))).toBe(false);
  }, 120_000);

  it('a stopped node goes NotReady and comes back', async () => {
    const name = kubelet.nodeNames[2]!;
    await kubelet.stopNode(name);
    const t0 = Date.now();
    await until(
      `${name} NotReady`,
      async () => {
        const n = await core.readNode({ name });
        const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
        return ready?.status !== 'True' ? ready : undefined;
      },
      120_000,
    );
    console.log(`${name} NotReady ${Date.now() - t0} ms after its kubelet stopped`);
    const node = await core.readNode({ name });
    expect(node.spec?.taints?.map((t) => t.key)).toContain('node.kubernetes.io/unreachable');
    await kubelet.startNode(name);
    await until(
      `${name} Ready again`,
      async () => {
        const n = await core.readNode({ name });
        return n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? n : undefined;
      },
      60_000,
    );
  }, 240_000);
});
