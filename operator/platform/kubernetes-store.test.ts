import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { confluxBackupSchema, confluxClusterSchema } from '../api/cluster.js';
import { changeFingerprint, KubernetesStore } from './kubernetes-store.js';
import { ConflictError } from './platform.js';

const BASE = '/apis/conflux.io/v1alpha1';

function clusterObject(name: string, over: Record<string, unknown> = {}) {
  return {
    apiVersion: 'conflux.io/v1alpha1',
    kind: 'ConfluxCluster',
    metadata: { name, namespace: 'db', uid: `uid-${name}`, generation: 1, resourceVersion: '5' },
    spec: { replicas: 3 },
    ...over,
  };
}
/** Fails the schema: replicas must be an integer between 1 and 99. */
const badCluster = clusterObject('bad', { spec: { replicas: 'three' } });
const backupObject = {
  apiVersion: 'conflux.io/v1alpha1',
  kind: 'ConfluxBackup',
  metadata: { name: 'nightly-1', namespace: 'db', uid: 'uid-b', generation: 1, resourceVersion: '7' },
  spec: { clusterName: 'demo' },
};

interface Recorded {
  method: string;
  url: string;
  contentType: string | undefined;
  body: unknown;
}

/** Just enough of an API server for the calls under test; the full stand-in is another task. */
class FakeApiServer {
  server: Server = createServer((req, res) => this.handle(req, res));
  requests: Recorded[] = [];
  clusters = new Map<string, Record<string, unknown>>();
  backups = new Map<string, Record<string, unknown>>();
  listFailures = 0;
  eventFailures = 0;
  watchers: ServerResponse[] = [];
  kubeConfig = new KubeConfig();

  async start() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.kubeConfig.loadFromOptions({
      clusters: [
        {
          name: 'fake',
          server: `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`,
          skipTLSVerify: true,
        },
      ],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'c', cluster: 'fake', user: 'u' }],
      currentContext: 'c',
    });
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  /** Send a watch event to every open watch. */
  emit(type: string, object: unknown) {
    for (const w of this.watchers) w.write(`${JSON.stringify({ type, object })}\n`);
  }

  /** End every open watch with 410 Gone, as an API server does when the resourceVersion is too old. */
  expireWatches() {
    this.emit('ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 });
    for (const w of this.watchers.splice(0)) w.end();
  }

  private handle(req: IncomingMessage, res: ServerResponse) {
    let raw = '';
    req.on('data', (c) => {
      raw += c;
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const body = raw ? JSON.parse(raw) : undefined;
      this.requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        contentType: req.headers['content-type'],
        body,
      });
      const send = (code: number, obj: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      const status = (code: number, reason: string) =>
        send(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message: reason, code });
      const p = url.pathname;

      if (req.method === 'GET' && (p === `${BASE}/confluxclusters` || p === `${BASE}/confluxbackups`)) {
        if (url.searchParams.get('watch') === 'true') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.flushHeaders();
          this.watchers.push(res);
          return;
        }
        if (this.listFailures > 0) {
          this.listFailures--;
          return status(500, 'InternalError');
        }
        const items = p.endsWith('confluxclusters') ? this.clusters : this.backups;
        return send(200, {
          apiVersion: 'conflux.io/v1alpha1',
          metadata: { resourceVersion: '100' },
          items: [...items.values()],
        });
      }
      if (req.method === 'GET' && p === `${BASE}/namespaces/db/confluxbackups`) {
        return send(200, { metadata: {}, items: [...this.backups.values()] });
      }
      const one =
        /^\/apis\/conflux\.io\/v1alpha1\/namespaces\/db\/(confluxclusters|confluxbackups)\/([^/]+)(\/status)?$/.exec(
          p,
        );
      if (one) {
        const map = one[1] === 'confluxclusters' ? this.clusters : this.backups;
        const current = map.get(one[2]!) as { metadata: { resourceVersion: string } } | undefined;
        if (!current) return status(404, 'NotFound');
        if (req.method === 'GET' && !one[3]) return send(200, current);
        if (req.method === 'PUT' && one[3]) {
          if (body.metadata?.resourceVersion !== current.metadata.resourceVersion)
            return status(409, 'Conflict');
          const next = {
            ...current,
            status: body.status,
            metadata: {
              ...current.metadata,
              resourceVersion: String(Number(current.metadata.resourceVersion) + 1),
            },
          };
          map.set(one[2]!, next);
          return send(200, next);
        }
      }
      if (p.startsWith('/apis/events.k8s.io/v1/namespaces/db/events')) {
        if (this.eventFailures > 0) {
          this.eventFailures--;
          return status(500, 'InternalError');
        }
        return send(req.method === 'POST' ? 201 : 200, body);
      }
      status(404, 'NotFound');
    });
  }
}

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function until(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

let api: FakeApiServer;
beforeEach(async () => {
  api = new FakeApiServer();
  await api.start();
});
afterEach(async () => {
  await api.stop();
});

describe('reads parse with the zod schemas', () => {
  it('listClusters skips (and logs) what does not parse, and applies defaults', async () => {
    api.clusters.set('demo', clusterObject('demo'));
    api.clusters.set('bad', badCluster);
    const { logger, lines } = capture();
    const store = new KubernetesStore({ kubeConfig: api.kubeConfig, logger });
    const clusters = await store.listClusters();
    expect(clusters.map((c) => c.metadata.name)).toEqual(['demo']);
    expect(clusters[0]!.spec.storage).toEqual({ size: '1Gi', reclaimPolicy: 'Delete' });
    expect(lines.find((l) => l.msg === 'skipping a resource that does not match its schema')).toMatchObject({
      kind: 'ConfluxCluster',
      namespace: 'db',
      name: 'bad',
      issues: [expect.stringMatching(/^spec\.replicas: /)],
    });
  });

  it('a namespaced store lists one namespace', async () => {
    api.backups.set('nightly-1', backupObject);
    const store = new KubernetesStore({
      kubeConfig: api.kubeConfig,
      logger: capture().logger,
      namespace: 'db',
    });
    const backups = await store.listBackups('db');
    expect(backups.map((b) => b.spec.clusterName)).toEqual(['demo']);
    expect(api.requests.at(-1)?.url).toBe(`${BASE}/namespaces/db/confluxbackups`);
  });

  it('getCluster: the object, null when absent, null when it does not parse', async () => {
    api.clusters.set('demo', clusterObject('demo'));
    api.clusters.set('bad', badCluster);
    const store = new KubernetesStore({ kubeConfig: api.kubeConfig, logger: capture().logger });
    expect((await store.getCluster('db', 'demo'))?.metadata.uid).toBe('uid-demo');
    expect(await store.getCluster('db', 'missing')).toBeNull();
    expect(await store.getCluster('db', 'bad')).toBeNull();
  });
});

describe('status writes', () => {
  it('replace the status subresource with the resourceVersion read; a stale one is a ConflictError', async () => {
    api.clusters.set('demo', clusterObject('demo'));
    const store = new KubernetesStore({ kubeConfig: api.kubeConfig, logger: capture().logger });
    const cluster = (await store.getCluster('db', 'demo'))!;
    const written = await store.writeClusterStatus(cluster, {
      phase: 'Running',
      replicas: 3,
      operation: null,
    });
    expect(written.status).toEqual({ phase: 'Running', replicas: 3, operation: null });
    expect(written.metadata.resourceVersion).toBe('6');
    const put = api.requests.at(-1)!;
    expect(put.method).toBe('PUT');
    expect(put.url).toBe(`${BASE}/namespaces/db/confluxclusters/demo/status`);
    expect(put.body).toMatchObject({ metadata: { resourceVersion: '5' }, status: { phase: 'Running' } });

    const stale = store.writeClusterStatus(cluster, { phase: 'Degraded' });
    await expect(stale).rejects.toBeInstanceOf(ConflictError);
    await expect(stale).rejects.toThrow(/ConfluxCluster db\/demo changed since it was read/);
  });

  it('backups too', async () => {
    api.backups.set('nightly-1', backupObject);
    const store = new KubernetesStore({ kubeConfig: api.kubeConfig, logger: capture().logger });
    const backup = confluxBackupSchema.parse(backupObject);
    const done = await store.writeBackupStatus(backup, { phase: 'Succeeded', uri: 's3://b/x' });
    expect(done.status?.phase).toBe('Succeeded');
    await expect(store.writeBackupStatus(backup, { phase: 'Failed' })).rejects.toBeInstanceOf(ConflictError);
  });

  it('other failures pass through unchanged', async () => {
    const store = new KubernetesStore({ kubeConfig: api.kubeConfig, logger: capture().logger });
    const ghost = confluxClusterSchema.parse(clusterObject('ghost'));
    const err = await store.writeClusterStatus(ghost, {}).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(ConflictError);
    expect((err as { code?: number }).code).toBe(404);
  });
});

describe('events', () => {
  const cluster = confluxClusterSchema.parse(clusterObject('demo'));
  const now = new Date('2030-01-01T00:00:00.250Z');

  it('creates an events.k8s.io/v1 Event; a repeat counts on its series', async () => {
    const store = new KubernetesStore({
      kubeConfig: api.kubeConfig,
      logger: capture().logger,
      reportingInstance: 'operator-0',
      now: () => now,
    });
    await store.event(cluster, 'Warning', 'ScaleBlocked', 'would leave 1 of 3 voters');
    const created = api.requests.at(-1)!;
    expect(created.method).toBe('POST');
    expect(created.url).toBe('/apis/events.k8s.io/v1/namespaces/db/events');
    const name = (created.body as { metadata: { name: string } }).metadata.name;
    expect(name).toMatch(/^demo\.[0-9a-f]{16}$/);
    expect(created.body).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      eventTime: '2030-01-01T00:00:00.250000Z',
      reportingController: 'conflux.io/operator',
      reportingInstance: 'operator-0',
      action: 'Reconcile',
      reason: 'ScaleBlocked',
      note: 'would leave 1 of 3 voters',
      type: 'Warning',
      regarding: {
        apiVersion: 'conflux.io/v1alpha1',
        kind: 'ConfluxCluster',
        name: 'demo',
        namespace: 'db',
        uid: 'uid-demo',
      },
    });

    await store.event(cluster, 'Warning', 'ScaleBlocked', 'would leave 1 of 3 voters');
    const patched = api.requests.at(-1)!;
    expect(patched.method).toBe('PATCH');
    expect(patched.url).toBe(`/apis/events.k8s.io/v1/namespaces/db/events/${name}`);
    expect(patched.contentType).toBe('application/json-patch+json');
    expect(patched.body).toEqual([
      { op: 'add', path: '/series', value: { count: 2, lastObservedTime: '2030-01-01T00:00:00.250000Z' } },
    ]);

    await store.event(cluster, 'Warning', 'ScaleBlocked', 'another message');
    expect(api.requests.at(-1)!.method).toBe('POST');
  });

  it('a failed Event is logged, never thrown', async () => {
    api.eventFailures = 1;
    const { logger, lines } = capture();
    const store = new KubernetesStore({ kubeConfig: api.kubeConfig, logger });
    await expect(store.event(cluster, 'Normal', 'Scaled', 'to 5')).resolves.toBeUndefined();
    expect(lines.some((l) => l.msg === 'could not record an Event')).toBe(true);
  });
});

describe('watch', () => {
  it('signals meaningful changes, restarts after failures and relists after 410 Gone', async () => {
    api.clusters.set('demo', clusterObject('demo'));
    api.listFailures = 1; // the first list fails: the watch must restart on its own
    const { logger, lines } = capture();
    const store = new KubernetesStore({ kubeConfig: api.kubeConfig, logger, watchRestartDelayMs: 20 });
    const seen: string[] = [];
    const stop = store.watch((k) => seen.push(`${k.namespace}/${k.name}`));
    try {
      await until(() => seen.includes('db/demo') && api.watchers.length === 2);
      expect(lines.some((l) => l.msg === 'watch failed; restarting')).toBe(true);
      seen.length = 0;

      // A status write (ours): no signal. A spec change: a signal.
      api.emit(
        'MODIFIED',
        clusterObject('demo', {
          metadata: { ...clusterObject('demo').metadata, resourceVersion: '6' },
          status: { phase: 'Running' },
        }),
      );
      const specChange = clusterObject('demo', {
        metadata: { ...clusterObject('demo').metadata, generation: 2, resourceVersion: '7' },
        spec: { replicas: 5 },
      });
      api.emit('MODIFIED', specChange);
      await until(() => seen.length === 1);
      expect(seen).toEqual(['db/demo']);

      // A backup signals the cluster it names; a cluster that does not parse signals itself (a
      // pass reports it InvalidSpec).
      api.emit('ADDED', badCluster);
      api.backups.set('nightly-1', backupObject);
      api.emit('ADDED', backupObject);
      await until(() => seen.length === 3);
      expect([...seen].sort()).toEqual(['db/bad', 'db/demo', 'db/demo']);

      // 410 Gone: the informer relists; what changed meanwhile is signalled, the rest is not.
      api.clusters.set('demo', specChange);
      api.clusters.set('other', clusterObject('other'));
      api.clusters.set('bad', badCluster);
      const lists = api.requests.filter((r) => r.method === 'GET' && !r.url.includes('watch=true')).length;
      api.expireWatches();
      await until(() => seen.includes('db/other'));
      expect(
        api.requests.filter((r) => r.method === 'GET' && !r.url.includes('watch=true')).length,
      ).toBeGreaterThan(lists);
      expect(seen.slice(3)).toEqual(['db/other']);

      // A deletion is signalled (once both watches are back).
      await until(() => api.watchers.length === 2);
      api.emit('DELETED', clusterObject('other'));
      await until(() => seen.length === 4);
    } finally {
      stop();
    }
    const after = api.requests.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(api.requests.length).toBe(after);
  });
});

describe('changeFingerprint', () => {
  const base = clusterObject('demo');
  it.each([
    ['status', { status: { phase: 'Running' } }, false],
    ['resourceVersion', { metadata: { ...base.metadata, resourceVersion: '99' } }, false],
    ['generation', { metadata: { ...base.metadata, generation: 2 } }, true],
    ['spec', { spec: { replicas: 5 } }, true],
    [
      'annotations',
      { metadata: { ...base.metadata, annotations: { 'conflux.io/dev-insecure': 'true' } } },
      true,
    ],
    ['deletion', { metadata: { ...base.metadata, deletionTimestamp: '2030-01-01T00:00:00Z' } }, true],
  ])('%s changes it: %s', (_, over, changes) => {
    expect(changeFingerprint({ ...base, ...over }) !== changeFingerprint(base)).toBe(changes);
  });
});
