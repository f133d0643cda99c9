// One pod worker without a control plane: a fake pod network (loopback IPs in the host's network
// namespace), a fake API that records status patches, real processes in their own mount and UTS
// namespaces. Needs root (unshare, mount, setpriv).

import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CoreV1Api, V1Pod, V1PodStatus, V1Secret } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnless } from '../require.js';
import { sleep } from './kube.js';
import { type PodNetworkApi, PodWorker, type PodWorkerContext } from './pod-worker.js';

const skip = skipUnless(
  process.getuid?.() === 0,
  'pod-worker.test.ts',
  'needs root (mount and UTS namespaces)',
);

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

describe.skipIf(skip)('pod worker (fake network, fake API)', () => {
  let dir: string;
  let mnt: string;
  let secret: V1Secret;
  const statuses = new Map<string, V1PodStatus[]>();
  const network = new FakeNetwork();
  let ctx: PodWorkerContext;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kubelet-unit-'));
    // Mount targets are made on the host if missing: keep them in one place we remove.
    mnt = `/mnt/conflux-kubelet-unit-${process.pid}`;
    secret = {
      metadata: { name: 'cfg', namespace: 'ns' },
      data: { message: Buffer.from('one').toString('base64') },
    };
    const core = {
      async patchNamespacedPodStatus(req: { name: string; body: { status: V1PodStatus } }) {
        const list = statuses.get(req.name) ?? [];
        list.push(req.body.status);
        statuses.set(req.name, list);
        return {};
      },
    } as unknown as CoreV1Api;
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
      volumeApi: {
        secret: async (_ns, name) => (name === 'cfg' ? secret : null),
        configMap: async () => null,
        claim: async (_ns, name) => ({
          metadata: { name },
          spec: { volumeName: 'pv-1' },
          status: { phase: 'Bound' },
        }),
        volume: async () => ({ spec: { local: { path: join(dir, 'pv-1') } } }),
        requestToken: async () => ({ token: 'tkn', expiresAt: new Date(Date.now() + 3600_000) }),
      },
      envSources: { secret: async () => secret, configMap: async () => null, services: async () => [] },
      allocatable: { cpu: '2', memory: '8Gi', pods: '110' },
      backoff: { initialMs: 300, maxMs: 1200 },
      volumeResyncMs: 200,
      logFile: (ns, pod, c) => join(dir, 'logs', ns, pod, `${c}.log`),
      log: () => {},
      event: () => {},
    };
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(mnt, { recursive: true, force: true });
  });

  const last = (name: string) => statuses.get(name)?.at(-1);
  async function until<T>(
    what: string,
    fn: () => T | undefined | Promise<T | undefined>,
    ms = 20_000,
  ): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last('p1'))}`);
      await sleep(100);
    }
  }

  const pod = (name: string, spec: V1Pod['spec']): V1Pod => ({
    metadata: { name, namespace: 'ns', uid: `uid-${name}` },
    spec: { terminationGracePeriodSeconds: 5, ...spec!, containers: spec!.containers },
  });

  it('runs as the pod user with volumes mounted, becomes Ready, sees a Secret update in place', async () => {
    const w = new PodWorker(
      pod('p1', {
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
      }),
      ctx,
    );
    const ready = await until('Ready', () =>
      last('p1')?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? last('p1') : undefined,
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

    secret = { ...secret, data: { message: Buffer.from('two').toString('base64') } };
    await until('the new Secret', async () => ((await get('/secret')) === 'two' ? true : undefined));

    await w.terminate(5000);
    expect(network.torn).toContain('uid-p1');
    expect(readFileSync(join(dir, 'logs/ns/p1/app.log'), 'utf8')).toContain('got SIGTERM');
    expect(last('p1')?.containerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);
    // The PV's data stays; the pod's own volumes are gone.
    expect(readFileSync(note, 'utf8')).toBe('kept');
    expect(() => statSync(join(dir, 'pods', 'uid-p1'))).toThrow();
  });

  it('restarts a crashing container with back-off, and one that fails its liveness probe', async () => {
    const w = new PodWorker(
      pod('p2', {
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
    const s = await until('restarts of both', () => {
      const st = last('p2');
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
    const w = new PodWorker(
      pod('p3', { restartPolicy: 'Never', containers: [{ name: 'c', image: 'done' }] }),
      ctx,
    );
    const s = await until('Succeeded', () => (last('p3')?.phase === 'Succeeded' ? last('p3') : undefined));
    expect(s.containerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
    await until('sandbox removed', () => network.torn.includes('uid-p3'));
    expect(w.finished()).toBe(true);
  });

  it('runs init containers first, in order, sharing volumes with the containers', async () => {
    const sh = (script: string) => ({ command: ['/bin/sh', '-c', script] });
    const w = new PodWorker(
      pod('p5', {
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
    const s = await until('Succeeded', () => (last('p5')?.phase === 'Succeeded' ? last('p5') : undefined));
    expect(s.initContainerStatuses?.map((c) => c.state?.terminated?.exitCode)).toEqual([0, 0]);
    expect(s.conditions?.find((c) => c.type === 'Initialized')?.status).toBe('True');
    expect(readFileSync(join(dir, 'logs/ns/p5/main.log'), 'utf8')).toMatch(/one\ntwo\n/);
    await w.kill();
  });

  it('an unknown image waits in ErrImagePull', async () => {
    const w = new PodWorker(pod('p4', { containers: [{ name: 'c', image: 'nowhere/none:1' }] }), ctx);
    const s = await until('ErrImagePull', () =>
      last('p4')?.containerStatuses?.[0]?.state?.waiting?.reason === 'ErrImagePull' ? last('p4') : undefined,
    );
    expect(s.phase).toBe('Pending');
    await w.kill();
  });
});
