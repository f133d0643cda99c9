import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { KubeConfig, type V1Pod, type V1StatefulSet } from '@kubernetes/client-node';
import { StatefulSet } from 'kubernetes-models/apps/v1';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { adminCall } from '../../node/api/admin-client.js';
import { isAdminCertificate, isAuthorizedAdmin } from '../../node/certs/index.js';
import { type ConfluxCluster, confluxClusterSchema } from '../api/cluster.js';
import { isOutdated, KubernetesPlatform, memberPods, volumeOrdinals } from './kubernetes.js';
import { DEV_INSECURE_ANNOTATION, POD_TEMPLATE_HASH_ANNOTATION } from './kubernetes-objects.js';
import { issuedBy } from './tls-secrets.js';

const silent = pino({ level: 'silent' });

function cluster(spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): ConfluxCluster {
  return confluxClusterSchema.parse({
    apiVersion: 'conflux.io/v1alpha1',
    kind: 'ConfluxCluster',
    metadata: { name: 'demo', namespace: 'db', uid: 'uid-demo', ...metadata },
    spec,
  });
}

function pod(
  name: string,
  over: { phase?: string; ready?: boolean; deleting?: boolean; owner?: string } = {},
): V1Pod {
  return {
    metadata: {
      name,
      namespace: 'db',
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'StatefulSet',
          name: over.owner ?? 'demo',
          uid: 'sts',
          controller: true,
        },
      ],
      ...(over.deleting ? { deletionTimestamp: new Date() } : {}),
    },
    status: {
      phase: over.phase ?? 'Running',
      conditions: [{ type: 'Ready', status: over.ready === false ? 'False' : 'True' }],
    },
  };
}

describe('memberPods', () => {
  const c = cluster();

  it('every slot below the set size, and pods left beyond it', () => {
    const slots = memberPods(c, 3, [
      pod('demo-0'),
      pod('demo-1', { phase: 'Pending', ready: false }),
      pod('demo-4', { deleting: true }),
    ]);
    expect(slots.map((s) => [s.ordinal, s.name, s.running, s.ready])).toEqual([
      [0, 'demo-0', true, true],
      [1, 'demo-1', false, false],
      [2, 'demo-2', false, false], // not created yet
      [4, 'demo-4', false, false], // terminating, though its Ready condition is still True
    ]);
    expect(slots[0]!.addresses).toEqual({
      api: 'demo-0.demo-headless.db.svc:8080',
      raft: 'demo-0.demo-headless.db.svc:7000',
      admin: 'demo-0.demo-headless.db.svc:8443',
    });
  });

  it.each([
    ['another cluster', 'other-0', {}],
    ['a longer name that shares the prefix', 'demo-canary-0', {}],
    ['a leading zero', 'demo-01', {}],
    ['not an ordinal', 'demo-x', {}],
    ['another controller', 'demo-0', { owner: 'demo-old' }],
  ])('ignores %s', (_, name, over) => {
    expect(memberPods(c, 0, [pod(name, over)])).toEqual([]);
  });

  it('a running pod without a Ready condition is not ready', () => {
    const p = pod('demo-0');
    p.status!.conditions = [];
    expect(memberPods(c, 1, [p])[0]).toMatchObject({ running: true, ready: false });
  });

  it('the host can be mapped (for an API stand-in)', () => {
    const [slot] = memberPods(c, 1, [], (_c, _pod, name) => `${name}.local`);
    expect(slot!.addresses.api).toBe('demo-0.local:8080');
  });
});

describe('volumeOrdinals', () => {
  it('only data-<name>-<ordinal>, sorted', () => {
    expect(
      volumeOrdinals(cluster(), [
        'data-demo-10',
        'data-demo-2',
        'data-demo-x',
        'data-demo-01',
        'data-demo2-0',
        'demo-3',
      ]),
    ).toEqual([2, 10]);
  });
});

interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string | undefined;
  body: Record<string, unknown> | undefined;
}
type Obj = Record<string, unknown> & { metadata: { name: string; resourceVersion?: string } };

/** A generic in-memory object store behind the REST paths (not a full API server). */
class FakeApiServer {
  server: Server = createServer((req, res) => this.handle(req, res));
  objects = new Map<string, Obj>();
  requests: Recorded[] = [];
  kubeConfig = new KubeConfig();
  private rv = 0;

  async start() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const port = (this.server.address() as AddressInfo).port;
    this.kubeConfig.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'c', cluster: 'fake', user: 'u' }],
      currentContext: 'c',
    });
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  /** The stored object at `path`, seen as `T` (the tests know what they stored). */
  get<T>(path: string): T {
    return this.objects.get(path) as unknown as T;
  }

  put(path: string, obj: Record<string, unknown>) {
    const o = obj as Obj;
    this.objects.set(path, { ...o, metadata: { ...o.metadata, resourceVersion: String(++this.rv) } });
  }

  writes(prefix: string) {
    return this.requests.filter((r) => r.method !== 'GET' && r.path.startsWith(prefix));
  }

  private handle(req: IncomingMessage, res: ServerResponse) {
    let raw = '';
    req.on('data', (c) => {
      raw += c;
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const path = url.pathname;
      const body = raw ? (JSON.parse(raw) as Obj) : undefined;
      this.requests.push({
        method: req.method ?? '',
        path,
        query: url.searchParams,
        contentType: req.headers['content-type'],
        body,
      });
      const send = (code: number, obj: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      const status = (code: number, reason: string) =>
        send(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, code });
      const existing = this.objects.get(path);
      switch (req.method) {
        case 'GET': {
          if (existing) return send(200, existing);
          const items = [...this.objects].filter(([k]) => k.startsWith(`${path}/`)).map(([, v]) => v);
          return items.length > 0 || /\/(pods|persistentvolumeclaims)$/.test(path)
            ? send(200, { metadata: {}, items })
            : status(404, 'NotFound');
        }
        case 'POST': {
          const key = `${path}/${body!.metadata.name}`;
          if (this.objects.has(key)) return status(409, 'AlreadyExists');
          this.put(key, body!);
          return send(201, this.objects.get(key));
        }
        case 'PUT':
          if (!existing) return status(404, 'NotFound');
          if (body!.metadata.resourceVersion !== existing.metadata.resourceVersion)
            return status(409, 'Conflict');
          this.put(path, body!);
          return send(200, this.objects.get(path));
        case 'PATCH':
          if (req.headers['content-type'] !== 'application/apply-patch+yaml')
            return status(415, 'UnsupportedMediaType');
          this.put(path, body!);
          return send(200, this.objects.get(path));
        case 'DELETE':
          if (!existing) return status(404, 'NotFound');
          this.objects.delete(path);
          return send(200, { kind: 'Status', status: 'Success' });
      }
      status(405, 'MethodNotAllowed');
    });
  }
}

const SECRETS = '/api/v1/namespaces/db/secrets';
const STS = '/apis/apps/v1/namespaces/db/statefulsets/demo';
const secretText = (api: FakeApiServer, name: string, key: string) => {
  const data = api.get<{ data?: Record<string, string> } | undefined>(`${SECRETS}/${name}`)?.data;
  return data?.[key] ? Buffer.from(data[key], 'base64').toString() : undefined;
};

describe('KubernetesPlatform (against an in-memory stand-in)', () => {
  let api: FakeApiServer;
  let now = new Date();
  let platform: KubernetesPlatform;
  beforeEach(async () => {
    api = new FakeApiServer();
    await api.start();
    now = new Date();
    platform = new KubernetesPlatform({ kubeConfig: api.kubeConfig, logger: silent, now: () => now });
  });
  afterEach(async () => {
    await api.stop();
  });

  it('ensureMembers: Secrets first, then server-side apply of every object, with the set at `size`', async () => {
    const c = cluster({ replicas: 5 });
    expect(await platform.setSize(c)).toBe(0);
    await platform.ensureMembers(c, 1);

    const writes = api.requests.filter((r) => r.method !== 'GET');
    expect(writes.map((r) => `${r.method} ${r.path}`)).toEqual([
      `POST ${SECRETS}`,
      `POST ${SECRETS}`,
      `POST ${SECRETS}`,
      'PATCH /api/v1/namespaces/db/services/demo-headless',
      'PATCH /api/v1/namespaces/db/services/demo',
      'PATCH /apis/policy/v1/namespaces/db/poddisruptionbudgets/demo',
      `PATCH ${STS}`,
    ]);
    expect(writes.slice(0, 3).map((w) => (w.body as Obj | undefined)?.metadata.name)).toEqual([
      'demo-ca',
      'demo-tls',
      'demo-admin-tls',
    ]);
    for (const w of writes.slice(3)) {
      expect(w.contentType).toBe('application/apply-patch+yaml');
      expect(w.query.get('fieldManager')).toBe('conflux-operator');
      expect(w.query.get('force')).toBe('true');
    }
    const sts = api.get<{
      spec: { replicas: number; template: { metadata: { annotations: Record<string, string> } } };
    }>(STS);
    expect(sts.spec.replicas).toBe(1);
    new StatefulSet(sts as never).validate();
    expect(await platform.setSize(c)).toBe(1);

    // The node certificate is signed by the CA the Secrets carry.
    const ca = secretText(api, 'demo-ca', 'ca.crt')!;
    expect(secretText(api, 'demo-tls', 'ca.crt')).toBe(ca);
    expect(issuedBy(secretText(api, 'demo-tls', 'tls.crt')!, ca)).toBe(true);
  });

  it('a second ensure writes no Secret; growing changes only replicas', async () => {
    const c = cluster();
    await platform.ensureMembers(c, 1);
    const hash = api.get<{ spec: { template: unknown } }>(STS).spec.template;
    const before = api.requests.length;
    await platform.ensureMembers(c, 3);
    const later = api.requests.slice(before);
    expect(later.filter((r) => r.path.startsWith(SECRETS) && r.method !== 'GET')).toEqual([]);
    const sts = api.get<{ spec: { replicas: number; template: unknown } }>(STS);
    expect(sts.spec.replicas).toBe(3);
    expect(sts.spec.template).toEqual(hash);
  });

  it('renews certificates close to expiry: Secrets replaced with their resourceVersion, pods left running', async () => {
    const c = cluster();
    await platform.ensureMembers(c, 3);
    const template = () => api.get<{ spec: { template: unknown } }>(STS).spec.template;
    const templateBefore = template();
    const oldCert = secretText(api, 'demo-tls', 'tls.crt');
    now = new Date(now.getTime() + 340 * 24 * 3600 * 1000);
    const before = api.requests.length;
    await platform.ensureMembers(c, 3);
    const secretWrites = api.requests
      .slice(before)
      .filter((r) => r.path.startsWith(SECRETS) && r.method !== 'GET');
    expect(secretWrites.map((r) => `${r.method} ${r.path}`)).toEqual([
      `PUT ${SECRETS}/demo-tls`,
      `PUT ${SECRETS}/demo-admin-tls`,
    ]);
    expect(secretText(api, 'demo-tls', 'tls.crt')).not.toBe(oldCert);
    // Members re-read their mounted TLS files: the renewal leaves the pod template (and pods) alone.
    expect(template()).toEqual(templateBefore);
  });

  it('the admin client certificate and the node certificate complete a mutual TLS handshake', async () => {
    const c = cluster();
    await platform.ensureMembers(c, 1);
    const client = await platform.adminClient(c);
    expect(client.timeoutMs).toBe(10_000);
    expect(isAdminCertificate(String(client.tls?.cert))).toBe(true);

    const node = createHttpsServer(
      {
        cert: secretText(api, 'demo-tls', 'tls.crt'),
        key: secretText(api, 'demo-tls', 'tls.key'),
        ca: secretText(api, 'demo-tls', 'ca.crt'),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ admin: isAuthorizedAdmin(req.socket as TLSSocket) }));
      },
    );
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    try {
      const port = (node.address() as AddressInfo).port;
      // `localhost` is one of the certificate's names (as `<pod>.<name>-headless.<ns>.svc` is).
      const answer = await adminCall(`localhost:${port}`, 'GET', '/', undefined, client);
      expect(answer).toMatchObject({ status: 200, body: { admin: true } });
    } finally {
      node.closeAllConnections();
      await new Promise((r) => node.close(r));
    }
  });

  it('adminClient of a new cluster issues the operator-managed TLS Secrets before any member exists', async () => {
    const c = cluster();
    const client = await platform.adminClient(c);
    expect(isAdminCertificate(String(client.tls?.cert))).toBe(true);
    expect(api.writes(SECRETS).map((r) => `${r.method} ${r.path}`)).toEqual([
      `POST ${SECRETS}`,
      `POST ${SECRETS}`,
      `POST ${SECRETS}`,
    ]);
    expect(client.tls?.ca).toBe(secretText(api, 'demo-tls', 'ca.crt'));
    // Members then get the same material: nothing is issued twice.
    await platform.ensureMembers(c, 3);
    expect(api.writes(SECRETS)).toHaveLength(3);
  });

  it('keeps the volume claim templates of an existing set when spec.storage changed', async () => {
    await platform.ensureMembers(cluster(), 3);
    await platform.ensureMembers(cluster({ storage: { size: '100Gi' } }), 3);
    const sts = api.get<{
      spec: { volumeClaimTemplates: { spec: { resources: { requests: { storage: string } } } }[] };
    }>(STS);
    expect(sts.spec.volumeClaimTemplates[0]!.spec.resources.requests.storage).toBe('1Gi');
  });

  it('user-provided TLS: refers to the Secrets, writes none, fails clearly when they are missing', async () => {
    const c = cluster({
      tls: { operatorManaged: false, nodeSecretName: 'mine', adminSecretName: 'mine-admin' },
    });
    await expect(platform.ensureMembers(c, 1)).rejects.toThrow(/node TLS Secret db\/mine is missing/);
    await expect(platform.adminClient(c)).rejects.toThrow(/admin client Secret db\/mine-admin not found/);

    // Borrow operator-made material for the user's Secrets.
    await platform.ensureMembers(cluster({}, { name: 'src', uid: 'uid-src' }), 1);
    const copy = (from: string, to: string, withCa: boolean) => {
      const s = api.get<{ data: Record<string, string> }>(`${SECRETS}/${from}`);
      const { 'ca.crt': ca, ...rest } = s.data;
      api.put(`${SECRETS}/${to}`, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: to },
        data: withCa ? s.data : rest,
      });
      return ca;
    };
    copy('src-tls', 'mine', true);
    copy('src-admin-tls', 'mine-admin', false); // no ca.crt: taken from the node Secret
    const before = api.requests.length;
    await platform.ensureMembers(c, 1);
    expect(
      api.requests.slice(before).filter((r) => r.path.startsWith(SECRETS) && r.method !== 'GET'),
    ).toEqual([]);
    const client = await platform.adminClient(c);
    expect(client.tls?.ca).toBe(secretText(api, 'src-tls', 'ca.crt'));
  });

  it('refuses to replace a CA Secret that exists but is unusable', async () => {
    api.put(`${SECRETS}/demo-ca`, { metadata: { name: 'demo-ca' }, data: { 'ca.crt': 'bm90IGEgY2VydA==' } });
    await expect(platform.ensureMembers(cluster(), 1)).rejects.toThrow(
      /Secret db\/demo-ca holds no usable CA \(missing\); fix it .* or delete it/,
    );
    expect(api.writes(SECRETS)).toEqual([]);
  });

  it('dev-insecure: no Secrets, a plain admin client', async () => {
    const c = cluster({}, { annotations: { [DEV_INSECURE_ANNOTATION]: 'true' } });
    await platform.ensureMembers(c, 1);
    expect(api.writes(SECRETS)).toEqual([]);
    expect(await platform.adminClient(c)).toEqual({ timeoutMs: 10_000 });
  });

  it('deleteVolume: only beyond the set; a volume already gone is fine', async () => {
    const c = cluster();
    await platform.ensureMembers(c, 3);
    api.put('/api/v1/namespaces/db/persistentvolumeclaims/data-demo-3', {
      metadata: { name: 'data-demo-3' },
    });
    await expect(platform.deleteVolume(c, 2)).rejects.toThrow(
      /refusing to delete data-demo-2: slot 2 is still in the set/,
    );
    await platform.deleteVolume(c, 3);
    expect(api.objects.has('/api/v1/namespaces/db/persistentvolumeclaims/data-demo-3')).toBe(false);
    await expect(platform.deleteVolume(c, 3)).resolves.toBeUndefined();
    await expect(platform.deleteVolume(c, -1)).rejects.toThrow(/not an ordinal/);
  });

  it('recreateMember: deletes the claim, then the pod, of a slot in the set; refuses one beyond it', async () => {
    const c = cluster();
    await platform.ensureMembers(c, 3);
    api.put('/api/v1/namespaces/db/persistentvolumeclaims/data-demo-1', {
      metadata: { name: 'data-demo-1' },
    });
    api.put('/api/v1/namespaces/db/pods/demo-1', pod('demo-1') as Record<string, unknown>);
    api.requests = [];
    await platform.recreateMember(c, 1);
    expect(api.requests.filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual([
      '/api/v1/namespaces/db/persistentvolumeclaims/data-demo-1',
      '/api/v1/namespaces/db/pods/demo-1',
    ]);
    expect(api.objects.has('/api/v1/namespaces/db/pods/demo-1')).toBe(false);
    await expect(platform.recreateMember(c, 1)).resolves.toBeUndefined(); // both gone already: fine
    await expect(platform.recreateMember(c, 3)).rejects.toThrow(/not in the set/);
  });

  it('restartMember: applies a changed template first, then deletes the pod; refuses a slot beyond the set', async () => {
    const c = cluster();
    await platform.ensureMembers(c, 3);
    const applied = await platform.templateRevision(c);
    expect(
      api.get<{ spec: { template: { metadata: { annotations: Record<string, string> } } } }>(STS).spec
        .template.metadata.annotations[POD_TEMPLATE_HASH_ANNOTATION],
    ).toBe(applied);
    const changed = cluster({ env: [{ name: 'CONFLUX_LOG_LEVEL', value: 'warn' }] });
    const next = await platform.templateRevision(changed);
    expect(next).not.toBe(applied);
    api.put('/api/v1/namespaces/db/pods/demo-1', pod('demo-1') as Record<string, unknown>);
    api.requests = [];
    await platform.restartMember(changed, 1);
    const writes = api.requests.filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.path}`);
    expect(writes.indexOf(`PATCH ${STS}`)).toBeGreaterThanOrEqual(0);
    expect(writes.at(-1)).toBe('DELETE /api/v1/namespaces/db/pods/demo-1');
    expect(writes.indexOf(`PATCH ${STS}`)).toBeLessThan(writes.length - 1);
    expect(await platform.templateRevision(changed)).toBe(next);
    // The template is current now: a second restart only deletes the pod (gone already: fine).
    api.requests = [];
    await expect(platform.restartMember(changed, 1)).resolves.toBeUndefined();
    expect(api.requests.filter((r) => r.method !== 'GET').map((r) => r.method)).toEqual(['DELETE']);
    await expect(platform.restartMember(changed, 3)).rejects.toThrow(/not in the set/);
  });

  it('pods: listed by the cluster labels, mapped to slots', async () => {
    const c = cluster();
    await platform.ensureMembers(c, 2);
    api.put('/api/v1/namespaces/db/pods/demo-0', pod('demo-0') as Record<string, unknown>);
    const slots = await platform.pods(c);
    expect(slots.map((s) => [s.name, s.running])).toEqual([
      ['demo-0', true],
      ['demo-1', false],
    ]);
    const list = api.requests.find((r) => r.path === '/api/v1/namespaces/db/pods');
    expect(list?.query.get('labelSelector')).toBe(
      'app.kubernetes.io/name=conflux,app.kubernetes.io/instance=demo',
    );
  });

  it("volumes: the ordinals of the cluster's claims, labelled and not being deleted", async () => {
    const c = cluster();
    const pvcs = '/api/v1/namespaces/db/persistentvolumeclaims';
    api.put(`${pvcs}/data-demo-0`, { metadata: { name: 'data-demo-0' } });
    api.put(`${pvcs}/data-demo-4`, { metadata: { name: 'data-demo-4' } });
    api.put(`${pvcs}/data-demo-5`, {
      metadata: { name: 'data-demo-5', deletionTimestamp: '2030-01-01T00:00:00Z' },
    });
    api.put(`${pvcs}/scratch`, { metadata: { name: 'scratch' } });
    expect(await platform.volumes(c)).toEqual([0, 4]);
    const list = api.requests.find((r) => r.path === pvcs);
    expect(list?.query.get('labelSelector')).toBe(
      'app.kubernetes.io/name=conflux,app.kubernetes.io/instance=demo',
    );
  });

  it('backupCredentials: from the referenced Secret, with its key names', async () => {
    const backup = {
      schedule: '0 3 * * *',
      destination: {
        uri: 's3://b/p',
        credentialsSecret: { name: 's3', accessKeyIdKey: 'id', secretAccessKeyKey: 'key' },
      },
    };
    expect(await platform.backupCredentials(cluster())).toBeUndefined();
    await expect(platform.backupCredentials(cluster({ backup }))).rejects.toThrow(/Secret db\/s3 not found/);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    api.put(`${SECRETS}/s3`, { metadata: { name: 's3' }, data: { id: b64('AKIA1'), key: b64('s3cr3t') } });
    expect(await platform.backupCredentials(cluster({ backup }))).toEqual({
      accessKeyId: 'AKIA1',
      secretAccessKey: 's3cr3t',
    });
    api.put(`${SECRETS}/s3`, { metadata: { name: 's3' }, data: { id: b64('AKIA1') } });
    await expect(platform.backupCredentials(cluster({ backup }))).rejects.toThrow('Secret db/s3 lacks key');
  });
});

describe('pod template revisions (rolling updates)', () => {
  const c = cluster();
  const desired = 'hash-new';
  const withRevision = (name: string, hash: string, label: string): V1Pod => {
    const p = pod(name);
    p.metadata = {
      ...p.metadata,
      annotations: { [POD_TEMPLATE_HASH_ANNOTATION]: hash },
      labels: { 'controller-revision-hash': label },
    };
    return p;
  };
  const set = (updateRevision: string, observed = 2): V1StatefulSet => ({
    metadata: { name: 'demo', generation: 2 },
    status: { replicas: 3, updateRevision, observedGeneration: observed },
  });

  it('a pod whose template digest differs from the spec is outdated', () => {
    expect(isOutdated(withRevision('demo-0', 'hash-old', 'demo-a'), desired, set('demo-a'))).toBe(true);
    expect(isOutdated(withRevision('demo-0', desired, 'demo-a'), desired, set('demo-a'))).toBe(false);
  });

  it("a pod on another controller-revision-hash than the set's updateRevision is outdated, once the controller saw the set", () => {
    const p = withRevision('demo-0', desired, 'demo-a');
    expect(isOutdated(p, desired, set('demo-b'))).toBe(true);
    expect(isOutdated(p, desired, set('demo-b', 1))).toBe(false);
  });

  it('memberPods reports each pod revision and whether it is outdated', () => {
    const slots = memberPods(
      c,
      2,
      [withRevision('demo-0', desired, 'demo-a'), withRevision('demo-1', 'hash-old', 'demo-a')],
      undefined,
      { desired, set: set('demo-a') },
    );
    expect(slots.map((s) => [s.revision, s.outdated])).toEqual([
      [desired, false],
      ['hash-old', true],
    ]);
  });
});
