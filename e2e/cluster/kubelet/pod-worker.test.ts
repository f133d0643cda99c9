// One pod worker on the real API server without a node: the pods, their Secret, claim and
// volume are real API objects, and the worker reads them and patches pod status with the admin's
// credentials as a kubelet does with its own; only the pod network is a stand-in (loopback IPs in
// the host's network namespace). Real processes in their own mount and UTS namespaces. Needs root
// (unshare, mount, setpriv) and the Kubernetes binaries. What the process kubelet does on nodes
// (scheduling, StatefulSets, a missing image, a node going NotReady) is kubelet.test.ts.

import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type V1Pod, type V1PodStatus } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binariesPresent, ensureBinaries, hasGo } from '../binaries.js';
import { type ControlPlane, startControlPlane } from '../control-plane.js';
import { skipUnless } from '../require.js';
import { loadKubeConfig, readIfExists, sleep } from './kube.js';
import { podEnvSources, podVolumeApi } from './node-agent.js';
import { type PodNetworkApi, PodWorker, type PodWorkerContext } from './pod-worker.js';

const skip = skipUnless(
  (binariesPresent() || hasGo()) && process.getuid?.() === 0,
  'pod-worker.test.ts',
  'needs root (mount and UTS namespaces) and the Kubernetes binaries (or Go to build them)',
);

const NS = 'pods';

/** Loopback addresses in the host namespace stand in for sandboxes. */
class FakeNetwork implements PodNetworkApi {
  hostAddress = '127.0.0.1';
  private next = 10 + Math.floor(Math.random() * 200);
  readonly torn: string[] = [];
  async setupPod() {
    return { ip: `127.0.${this.next++}.1`, execPrefix: [] };
  }
  async teardownPod(uid: string) {
    this.torn.push(uid);
  }
}

const SERVER = `
const fs = require('fs'), http = require('http');
const base = process.env.MNT;
http.createServer((q, r) => {
  try {
    if (q.url === '/secret') return r.end(fs.readFileSync(base + '/cfg/message', 'utf8'));
    if (q.url === '/whoami') return r.end(JSON.stringify({ uid: process.getuid(), gid: process.getgid(),
      groups: process.getgroups(), host: require('os').hostname(), ip: process.env.POD_IP }));
    if (q.url === '/write') {
      fs.writeFileSync(base + '/data/note', 'kept');
      fs.writeFileSync(base + '/scratch/x', 'x');
      let root = 'wrote';
      try { fs.writeFileSync('/conflux-kubelet-unit-root', 'no'); } catch (e) { root = e.code; }
      try { fs.writeFileSync(base + '/cfg/x', 'no'); return r.end('wrote ' + root); } catch (e) { return r.end(e.code + ' ' + root); }
    }
  } catch (e) { r.statusCode = 500; return r.end(String(e)); }
  r.statusCode = 404; r.end();
}).listen(8080, process.env.POD_IP, () => console.log('listening'));
process.on('SIGTERM', () => { console.log('got SIGTERM'); process.exit(0); });
`;

describe.skipIf(skip)('pod worker on the real API server (fake pod network)', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let dir: string;
  let mnt: string;
  /** Every pod status read from the API server, per pod, in order. */
  const statuses = new Map<string, V1PodStatus[]>();
  const network = new FakeNetwork();
  let ctx: PodWorkerContext;

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    core = loadKubeConfig(cp.kubeconfigPath).makeApiClient(CoreV1Api);
    dir = mkdtempSync(join(tmpdir(), 'kubelet-unit-'));
    // Mount targets are made on the host if missing: keep them in one place we remove.
    mnt = `/mnt/conflux-kubelet-unit-${process.pid}`;
    await cp.kubectl(['create', 'namespace', NS]);
    // Pods are admitted once the namespace's default ServiceAccount exists.
    for (
      let i = 0;
      !(await readIfExists(() => core.readNamespacedServiceAccount({ name: 'default', namespace: NS })));
      i++
    ) {
      if (i > 150) throw new Error('no default ServiceAccount in namespace pods');
      await sleep(200);
    }
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'cfg' }, stringData: { message: 'one' } },
    });
    await core.createPersistentVolume({
      body: {
        metadata: { name: 'pv-1' },
        spec: {
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteOnce'],
          storageClassName: '',
          persistentVolumeReclaimPolicy: 'Retain',
          claimRef: { namespace: NS, name: 'data' },
          local: { path: join(dir, 'pv-1') },
          nodeAffinity: {
            required: {
              nodeSelectorTerms: [
                {
                  matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['worker-1'] }],
                },
              ],
            },
          },
        },
      },
    });
    await core.createNamespacedPersistentVolumeClaim({
      namespace: NS,
      body: {
        metadata: { name: 'data' },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: '',
          volumeName: 'pv-1',
          resources: { requests: { storage: '1Gi' } },
        },
      },
    });
    // The PV controller binds them.
    for (let i = 0; ; i++) {
      const claim = await core.readNamespacedPersistentVolumeClaim({ name: 'data', namespace: NS });
      if (claim.status?.phase === 'Bound') break;
      if (i > 150) throw new Error(`claim data not bound: ${JSON.stringify(claim.status)}`);
      await sleep(200);
    }
    ctx = {
      nodeName: 'worker-1',
      stateDir: dir,
      network,
      podCidr: '127.0.0.0/8',
      images: {
        server: { command: [process.execPath, '-e', SERVER] },
        crash: { command: [process.execPath, '-e', 'console.log("crashing"); process.exit(3)'] },
        done: { command: [process.execPath, '-e', 'console.log("done")'] },
      },
      core,
      volumeApi: podVolumeApi(core),
      envSources: podEnvSources(core),
      allocatable: { cpu: '2', memory: '8Gi', pods: '110' },
      backoff: { initialMs: 300, maxMs: 1200 },
      volumeResyncMs: 200,
      logFile: (ns, pod, c) => join(dir, 'logs', ns, pod, `${c}.log`),
      log: () => {},
      event: () => {},
    };
  }, 90 * 60_000);

  afterAll(async () => {
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (mnt) rmSync(mnt, { recursive: true, force: true });
  }, 60_000);

  /** The pod's status as the API server now holds it (and recorded in `statuses`). */
  async function read(name: string): Promise<V1PodStatus | undefined> {
    const status = (await core.readNamespacedPod({ name, namespace: NS })).status;
    if (status) statuses.set(name, [...(statuses.get(name) ?? []), status]);
    return status;
  }
  const last = (name: string) => statuses.get(name)?.at(-1);
  async function until<T>(
    what: string,
    name: string,
    fn: (status: V1PodStatus | undefined) => T | undefined | false | Promise<T | undefined | false>,
    ms = 20_000,
  ): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await fn(await read(name));
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last(name))}`);
      await sleep(100);
    }
  }

  /** The pod as the API server admits it; no scheduler takes it (the worker is its node). */
  const pod = (name: string, spec: V1Pod['spec']): Promise<V1Pod> =>
    core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name },
        spec: {
          terminationGracePeriodSeconds: 5,
          schedulerName: 'none',
          automountServiceAccountToken: false,
          ...spec!,
          containers: spec!.containers,
        },
      },
    });

  it('runs as the pod user with volumes mounted, becomes Ready, sees a Secret update in place', async () => {
    const p1 = await pod('p1', {
      securityContext: { runAsUser: 10001, runAsGroup: 10001, fsGroup: 2000, runAsNonRoot: true },
      containers: [
        {
          name: 'app',
          image: 'server',
          env: [
            { name: 'MNT', value: mnt },
            { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          ],
          readinessProbe: { httpGet: { path: '/secret', port: 8080 }, periodSeconds: 1 },
          securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
          volumeMounts: [
            { name: 'cfg', mountPath: `${mnt}/cfg`, readOnly: true },
            { name: 'data', mountPath: `${mnt}/data` },
            { name: 'scratch', mountPath: `${mnt}/scratch` },
          ],
        },
      ],
      volumes: [
        { name: 'cfg', secret: { secretName: 'cfg', defaultMode: 0o440 } },
        { name: 'data', persistentVolumeClaim: { claimName: 'data' } },
        { name: 'scratch', emptyDir: {} },
      ],
    });
    const w = new PodWorker(p1, ctx);
    const ready = await until('Ready', 'p1', (st) =>
      st?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? st : undefined,
    );
    const ip = ready.podIP!;
    expect(ready.phase).toBe('Running');
    expect(ready.containerStatuses?.[0]).toMatchObject({ ready: true, started: true, restartCount: 0 });
    const get = async (path: string) => (await fetch(`http://${ip}:8080${path}`)).text();
    const who = JSON.parse(await get('/whoami')) as {
      uid: number;
      gid: number;
      groups: number[];
      host: string;
    };
    expect(who).toMatchObject({ uid: 10001, gid: 10001, host: 'p1', ip });
    expect(who.groups).toContain(2000);
    expect(await get('/secret')).toBe('one');
    // The Secret volume is read-only, and so is the root filesystem (readOnlyRootFilesystem).
    expect(await get('/write')).toBe('EROFS EROFS');
    const note = join(dir, 'pv-1', 'note');
    expect(readFileSync(note, 'utf8')).toBe('kept');
    expect(statSync(note).uid).toBe(10001);

    await core.replaceNamespacedSecret({
      name: 'cfg',
      namespace: NS,
      body: { metadata: { name: 'cfg' }, stringData: { message: 'two' } },
    });
    await until('the new Secret', 'p1', async () => ((await get('/secret')) === 'two' ? true : undefined));

    await w.terminate(5000);
    expect(network.torn).toContain(p1.metadata!.uid);
    expect(readFileSync(join(dir, 'logs/pods/p1/app.log'), 'utf8')).toContain('got SIGTERM');
    const final = await until('the final status', 'p1', (st) =>
      st?.containerStatuses?.[0]?.state?.terminated ? st : undefined,
    );
    expect(final.containerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);
    // The PV's data stays; the pod's own volumes are gone.
    expect(readFileSync(note, 'utf8')).toBe('kept');
    expect(() => statSync(join(dir, 'pods', p1.metadata!.uid!))).toThrow();
  });

  it('restarts a crashing container with back-off, and one that fails its liveness probe', async () => {
    const w = new PodWorker(
      await pod('p2', {
        containers: [
          { name: 'crash', image: 'crash' },
          {
            name: 'sick',
            image: 'server',
            env: [
              { name: 'MNT', value: mnt },
              { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
            ],
            livenessProbe: { exec: { command: ['false'] }, periodSeconds: 1, failureThreshold: 1 },
          },
        ],
      }),
      ctx,
    );
    const s = await until('restarts of both', 'p2', (st) => {
      const [crash, sick] = st?.containerStatuses ?? [];
      return (crash?.restartCount ?? 0) >= 2 && (sick?.restartCount ?? 0) >= 1 ? st : undefined;
    });
    const all = statuses.get('p2')!;
    const loop = all
      .flatMap((x) => x.containerStatuses ?? [])
      .find((c) => c.name === 'crash' && c.state?.waiting?.reason === 'CrashLoopBackOff');
    expect(loop?.lastState?.terminated).toMatchObject({ exitCode: 3, reason: 'Error' });
    expect(s.phase).toBe('Running');
    await w.kill();
  });

  it('a pod that never restarts ends Succeeded and gives its sandbox back', async () => {
    const p3 = await pod('p3', { restartPolicy: 'Never', containers: [{ name: 'c', image: 'done' }] });
    const w = new PodWorker(p3, ctx);
    const s = await until('Succeeded', 'p3', (st) => (st?.phase === 'Succeeded' ? st : undefined));
    expect(s.containerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
    await until('sandbox removed', 'p3', () => network.torn.includes(p3.metadata!.uid!));
    expect(w.finished()).toBe(true);
  });

  it('runs init containers first, in order, sharing volumes with the containers', async () => {
    const sh = (script: string) => ({ command: ['/bin/sh', '-c', script] });
    const w = new PodWorker(
      await pod('p5', {
        restartPolicy: 'Never',
        initContainers: [
          {
            name: 'one',
            image: 'done',
            ...sh(`echo one >> ${mnt}/shared/order`),
            volumeMounts: [{ name: 's', mountPath: `${mnt}/shared` }],
          },
          {
            name: 'two',
            image: 'done',
            ...sh(`echo two >> ${mnt}/shared/order`),
            volumeMounts: [{ name: 's', mountPath: `${mnt}/shared` }],
          },
        ],
        containers: [
          {
            name: 'main',
            image: 'done',
            ...sh(`cat ${mnt}/shared/order`),
            volumeMounts: [{ name: 's', mountPath: `${mnt}/shared` }],
          },
        ],
        volumes: [{ name: 's', emptyDir: {} }],
      }),
      ctx,
    );
    const s = await until('Succeeded', 'p5', (st) => (st?.phase === 'Succeeded' ? st : undefined));
    expect(s.initContainerStatuses?.map((c) => c.state?.terminated?.exitCode)).toEqual([0, 0]);
    expect(s.conditions?.find((c) => c.type === 'Initialized')?.status).toBe('True');
    expect(readFileSync(join(dir, 'logs/pods/p5/main.log'), 'utf8')).toMatch(/one\ntwo\n/);
    await w.kill();
  });
});
