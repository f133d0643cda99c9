// The Kubernetes API stand-in, driven the way the operator and kubectl drive a real one: through
// a kubeconfig, with @kubernetes/client-node (typed APIs, Watch, informers), the operator's own
// platform and store classes, and the preinstalled kubectl.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type V1StatefulSet,
  Watch,
} from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confluxClusterSchema } from '../../operator/api/cluster.js';
import { KubernetesPlatform } from '../../operator/platform/kubernetes.js';
import { KubernetesStore } from '../../operator/platform/kubernetes-store.js';
import { kubernetesLeaseApi, LeaseConflictError } from '../../operator/platform/leader-election.js';
import { ConflictError } from '../../operator/platform/platform.js';
import { kubectlBinary } from '../support/helm.js';
import { type ApiServer, type KubeObject, startApiServer } from './api-server.js';

const run = promisify(execFile);
const silent = pino({ level: 'silent' });
const G = { group: 'conflux.io', version: 'v1alpha1' };
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const APPLY = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

// biome-ignore lint/suspicious/noExplicitAny: test-side JSON documents
type Obj = Record<string, any>;
const statusOf = (err: unknown): Obj => {
  if (!(err instanceof ApiException)) throw err;
  return { ...JSON.parse(err.body as string), httpCode: err.code };
};
const failure = async (p: Promise<unknown>): Promise<Obj> => {
  try {
    await p;
  } catch (err) {
    return statusOf(err);
  }
  throw new Error('expected the request to fail');
};
const until = async (check: () => boolean | Promise<boolean>, ms = 3_000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
};

let api: ApiServer;
let kc: KubeConfig;
let core: CoreV1Api;
let apps: AppsV1Api;
let custom: CustomObjectsApi;

const clusterBody = (name: string, spec: Obj = {}, labels?: Record<string, string>) => ({
  apiVersion: 'conflux.io/v1alpha1',
  kind: 'ConfluxCluster',
  metadata: { name, ...(labels ? { labels } : {}) },
  spec,
});
const createCluster = (name: string, spec: Obj = {}, namespace = 'default') =>
  custom.createNamespacedCustomObject({
    ...G,
    namespace,
    plural: 'confluxclusters',
    body: clusterBody(name, spec),
  }) as Promise<Obj>;
const getCluster = (name: string, namespace = 'default') =>
  custom.getNamespacedCustomObject({ ...G, namespace, plural: 'confluxclusters', name }) as Promise<Obj>;
const replaceCluster = (body: Obj) =>
  custom.replaceNamespacedCustomObject({
    ...G,
    namespace: 'default',
    plural: 'confluxclusters',
    name: body.metadata.name,
    body,
  }) as Promise<Obj>;

const statefulSet = (name: string, extra: Obj = {}): V1StatefulSet => ({
  apiVersion: 'apps/v1',
  kind: 'StatefulSet',
  metadata: { name },
  spec: {
    serviceName: name,
    replicas: 1,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] },
    },
    ...extra,
  },
});

beforeAll(async () => {
  api = await startApiServer({ bookmarkIntervalMs: 100 });
  kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
});
afterAll(async () => {
  await api?.stop();
});

describe('discovery', () => {
  it('serves /version, /api, /apis, group-version resource lists with subresources, and /openapi/v3', async () => {
    const get = async (path: string) => (await fetch(`${api.url}${path}`)).json() as Promise<Obj>;
    expect((await get('/version')).major).toBe('1');
    expect((await get('/api')).versions).toEqual(['v1']);
    const groups = (await get('/apis')).groups.map((g: Obj) => g.name);
    expect(groups).toEqual(
      expect.arrayContaining([
        'apps',
        'policy',
        'coordination.k8s.io',
        'events.k8s.io',
        'apiextensions.k8s.io',
        'conflux.io',
      ]),
    );
    const resources = (await get('/apis/conflux.io/v1alpha1')).resources as Obj[];
    expect(resources.find((r) => r.name === 'confluxclusters')).toMatchObject({
      kind: 'ConfluxCluster',
      namespaced: true,
      shortNames: ['cfx'],
    });
    expect(resources.find((r) => r.name === 'confluxclusters/scale')).toMatchObject({
      group: 'autoscaling',
      version: 'v1',
      kind: 'Scale',
    });
    expect(resources.map((r) => r.name)).toContain('confluxbackups/status');
    expect(resources.map((r) => r.name)).not.toContain('confluxbackups/scale');
    const openapi = await get('/openapi/v3');
    expect(Object.keys(openapi.paths)).toEqual(
      expect.arrayContaining(['api/v1', 'apis/apps/v1', 'apis/conflux.io/v1alpha1']),
    );
    expect((await fetch(`${api.url}/apis/nope/v1`)).status).toBe(404);
  });
});

describe('CRUD, errors and optimistic concurrency', () => {
  it('creates, reads, lists by label, replaces and deletes; failures are Kubernetes Status bodies', async () => {
    const namespace = 'default';
    const body = { metadata: { name: 'crud', labels: { tier: 'a' } }, data: { k: 'v' } };
    const created = await core.createNamespacedConfigMap({ namespace, body });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata?.creationTimestamp).toBeDefined();
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'crud-other', labels: { tier: 'b' } } },
    });
    const listed = await core.listNamespacedConfigMap({ namespace, labelSelector: 'tier=a' });
    expect(listed.items.map((c) => c.metadata?.name)).toEqual(['crud']);
    const setBased = await core.listNamespacedConfigMap({
      namespace,
      labelSelector: 'tier in (a,b),tier!=a',
    });
    expect(setBased.items.map((c) => c.metadata?.name)).toEqual(['crud-other']);

    const again = await failure(core.createNamespacedConfigMap({ namespace, body }));
    expect(again).toMatchObject({
      kind: 'Status',
      status: 'Failure',
      reason: 'AlreadyExists',
      code: 409,
      httpCode: 409,
    });

    const replaced = await core.replaceNamespacedConfigMap({
      name: 'crud',
      namespace,
      body: { ...created, data: { k: 'w' } },
    });
    expect(Number(replaced.metadata?.resourceVersion)).toBeGreaterThan(
      Number(created.metadata?.resourceVersion),
    );
    const stale = await failure(
      core.replaceNamespacedConfigMap({ name: 'crud', namespace, body: { ...created, data: { k: 'x' } } }),
    );
    expect(stale).toMatchObject({
      reason: 'Conflict',
      code: 409,
      details: { name: 'crud', kind: 'configmaps' },
    });
    expect(stale.message).toContain('the object has been modified');

    await core.deleteNamespacedConfigMap({ name: 'crud', namespace });
    const gone = await failure(core.readNamespacedConfigMap({ name: 'crud', namespace }));
    expect(gone).toMatchObject({ reason: 'NotFound', code: 404, message: 'configmaps "crud" not found' });
    const noNs = await failure(
      core.createNamespacedConfigMap({ namespace: 'nowhere', body: { metadata: { name: 'x' } } }),
    );
    expect(noNs).toMatchObject({ reason: 'NotFound', message: 'namespaces "nowhere" not found' });
  });

  it('custom resources need a resourceVersion to update; a stale one is a 409', async () => {
    const c = await createCluster('occ');
    const { resourceVersion: _, ...meta } = c.metadata;
    expect(await failure(replaceCluster({ ...c, metadata: meta }))).toMatchObject({
      code: 422,
      reason: 'Invalid',
    });
    await replaceCluster({ ...c, spec: { ...c.spec, replicas: 5 } });
    expect(await failure(replaceCluster({ ...c, spec: { ...c.spec, replicas: 7 } }))).toMatchObject({
      code: 409,
      reason: 'Conflict',
    });
  });

  it('prunes unknown fields with a warning, or refuses them with fieldValidation=Strict', async () => {
    // client-node's typed APIs drop unknown fields themselves, so this goes over plain HTTP.
    const body = { metadata: { name: 'unknown-field' }, data: { a: 'b' }, bogus: 1 };
    const post = (query: string) =>
      fetch(`${api.url}/api/v1/namespaces/default/configmaps${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const strict = await post('?fieldValidation=Strict');
    expect(strict.status).toBe(400);
    expect(await strict.json()).toMatchObject({
      reason: 'BadRequest',
      message: 'strict decoding error: unknown field "bogus"',
    });
    const res = await post('');
    expect(res.status).toBe(201);
    expect(res.headers.get('warning')).toContain('unknown field');
    expect(((await res.json()) as Obj).bogus).toBeUndefined();
  });
});

describe('custom resources: defaults, generation, subresources, CEL', () => {
  it('applies the CRD defaults on create', async () => {
    const c = await createCluster('defaults');
    expect(c.spec).toMatchObject({
      replicas: 3,
      image: 'ghcr.io/conflux-io/conflux:0.1.0',
      storage: { size: '1Gi', reclaimPolicy: 'Delete' },
      raft: { tickMs: 50, electionTicks: 10, snapshotEntries: 10000 },
      tls: { operatorManaged: true },
      paused: false,
    });
    expect(c.metadata.generation).toBe(1);
    expect(c.status).toBeUndefined();
  });

  it('bumps metadata.generation on spec changes only; an unchanged write is a no-op', async () => {
    let c = await createCluster('gen');
    c = await replaceCluster({ ...c, metadata: { ...c.metadata, labels: { x: 'y' } } });
    expect(c.metadata.generation).toBe(1);
    c = await replaceCluster({ ...c, spec: { ...c.spec, paused: true } });
    expect(c.metadata.generation).toBe(2);
    const same = await replaceCluster(c);
    expect(same.metadata.resourceVersion).toBe(c.metadata.resourceVersion);
    const s = (await custom.replaceNamespacedCustomObjectStatus({
      ...G,
      namespace: 'default',
      plural: 'confluxclusters',
      name: 'gen',
      body: { ...c, status: { phase: 'Running' } },
    })) as Obj;
    expect(s.metadata.generation).toBe(2);

    const sts = await apps.createNamespacedStatefulSet({ namespace: 'default', body: statefulSet('gen') });
    expect(sts.metadata?.generation).toBe(1);
    const annotated = await apps.patchNamespacedStatefulSet(
      { name: 'gen', namespace: 'default', body: { metadata: { annotations: { a: 'b' } } } },
      MERGE,
    );
    expect(annotated.metadata?.generation).toBe(1);
    const scaled = await apps.patchNamespacedStatefulSet(
      { name: 'gen', namespace: 'default', body: { spec: { replicas: 2 } } },
      MERGE,
    );
    expect(scaled.metadata?.generation).toBe(2);
  });

  it('the status subresource writes only status; the main resource ignores status', async () => {
    const c = await createCluster('status');
    const body = { ...c, spec: { ...c.spec, replicas: 9 }, status: { phase: 'Running', readyReplicas: 3 } };
    const s = (await custom.replaceNamespacedCustomObjectStatus({
      ...G,
      namespace: 'default',
      plural: 'confluxclusters',
      name: 'status',
      body,
    })) as Obj;
    expect(s.spec.replicas).toBe(3);
    expect(s.status).toEqual({ phase: 'Running', readyReplicas: 3 });
    const main = await replaceCluster({
      ...s,
      spec: { ...s.spec, replicas: 5 },
      status: { phase: 'Failed' },
    });
    expect(main.spec.replicas).toBe(5);
    expect(main.status.phase).toBe('Running');
    const stale = await failure(
      custom.replaceNamespacedCustomObjectStatus({
        ...G,
        namespace: 'default',
        plural: 'confluxclusters',
        name: 'status',
        body,
      }),
    );
    expect(stale).toMatchObject({ code: 409, reason: 'Conflict' });
    const bad = await failure(
      custom.replaceNamespacedCustomObjectStatus({
        ...G,
        namespace: 'default',
        plural: 'confluxclusters',
        name: 'status',
        body: { ...main, status: { phase: 'Sleeping' } },
      }),
    );
    expect(bad).toMatchObject({ code: 422, reason: 'Invalid' });
    expect(bad.details.causes[0]).toMatchObject({ field: 'status.phase', reason: 'FieldValueNotSupported' });
  });

  it('the scale subresource reads and writes spec.replicas (validated by the CRD schema)', async () => {
    await createCluster('scale');
    await custom.patchNamespacedCustomObjectStatus(
      {
        ...G,
        namespace: 'default',
        plural: 'confluxclusters',
        name: 'scale',
        body: { status: { replicas: 3, selector: 'app=x' } },
      },
      MERGE,
    );
    const scale = (await custom.getNamespacedCustomObjectScale({
      ...G,
      namespace: 'default',
      plural: 'confluxclusters',
      name: 'scale',
    })) as Obj;
    expect(scale).toMatchObject({
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      spec: { replicas: 3 },
      status: { replicas: 3, selector: 'app=x' },
    });
    await custom.patchNamespacedCustomObjectScale(
      {
        ...G,
        namespace: 'default',
        plural: 'confluxclusters',
        name: 'scale',
        body: { spec: { replicas: 5 } },
      },
      MERGE,
    );
    const c = await getCluster('scale');
    expect(c.spec.replicas).toBe(5);
    expect(c.metadata.generation).toBe(2);
    const tooMany = await failure(
      custom.patchNamespacedCustomObjectScale(
        {
          ...G,
          namespace: 'default',
          plural: 'confluxclusters',
          name: 'scale',
          body: { spec: { replicas: 100 } },
        },
        MERGE,
      ),
    );
    expect(tooMany).toMatchObject({ code: 422, reason: 'Invalid' });
    expect(tooMany.message).toContain('spec.replicas in body should be less than or equal to 99');

    await apps.createNamespacedStatefulSet({ namespace: 'default', body: statefulSet('scale') });
    await apps.patchNamespacedStatefulSetScale(
      { name: 'scale', namespace: 'default', body: { spec: { replicas: 4 } } },
      MERGE,
    );
    const sts = await apps.readNamespacedStatefulSetScale({ name: 'scale', namespace: 'default' });
    expect(sts.spec?.replicas).toBe(4);
    expect(sts.status?.selector).toBe('app=scale');
  });

  it('evaluates the CEL rules: spec.restore is immutable (transition rule), tls needs both secrets', async () => {
    const c = await createCluster('cel');
    const withRestore = { ...c, spec: { ...c.spec, restore: { snapshotUri: 's3://b/snap' } } };
    const refused = await failure(replaceCluster(withRestore));
    expect(refused).toMatchObject({ code: 422, reason: 'Invalid' });
    expect(refused.details.causes[0]).toMatchObject({ field: 'spec.restore', reason: 'FieldValueForbidden' });
    expect(refused.message).toContain(
      'spec.restore can only be set when the cluster is created and never changed',
    );
    // Set at creation, it is accepted, and may then not change.
    const restored = await createCluster('cel-restored', { restore: { snapshotUri: 's3://b/snap' } });
    const changed = await failure(
      replaceCluster({ ...restored, spec: { ...restored.spec, restore: { snapshotUri: 's3://b/other' } } }),
    );
    expect(changed.details.causes[0].field).toBe('spec.restore');

    const tls = await failure(
      createCluster('cel-tls', { tls: { operatorManaged: false, nodeSecretName: 'node' } }),
    );
    expect(tls.message).toContain(
      'tls.nodeSecretName and tls.adminSecretName are required when tls.operatorManaged is false',
    );
    const both = await failure(createCluster('cel-tls', { tls: { nodeSecretName: 'node' } }));
    expect(both.message).toContain('are used only when tls.operatorManaged is false');
    const backup = (await custom.createNamespacedCustomObject({
      ...G,
      namespace: 'default',
      plural: 'confluxbackups',
      body: {
        apiVersion: 'conflux.io/v1alpha1',
        kind: 'ConfluxBackup',
        metadata: { name: 'b' },
        spec: { clusterName: 'cel' },
      },
    })) as Obj;
    const immutable = await failure(
      custom.replaceNamespacedCustomObject({
        ...G,
        namespace: 'default',
        plural: 'confluxbackups',
        name: 'b',
        body: { ...backup, spec: { clusterName: 'other' } },
      }),
    );
    expect(immutable.message).toContain('the spec of a ConfluxBackup is immutable');
    const schema = await failure(
      createCluster('cel-schema', { replicas: 0, storage: { reclaimPolicy: 'Keep' } }),
    );
    expect(schema.details.causes.map((x: Obj) => x.field).sort()).toEqual([
      'spec.replicas',
      'spec.storage.reclaimPolicy',
    ]);
  });
});

describe('builtin validation', () => {
  it('checks StatefulSets against the real schema and the StatefulSet rules', async () => {
    const badType = await failure(
      apps.createNamespacedStatefulSet({
        namespace: 'default',
        body: statefulSet('bad', { replicas: 'three' as never }),
      }),
    );
    expect(badType).toMatchObject({ code: 400, reason: 'BadRequest' });
    expect(badType.message).toContain('spec.replicas');
    const { template: _, ...noTemplate } = statefulSet('bad').spec!;
    const missing = await failure(
      apps.createNamespacedStatefulSet({
        namespace: 'default',
        body: { ...statefulSet('bad'), spec: noTemplate as never },
      }),
    );
    expect(missing).toMatchObject({ code: 422, reason: 'Invalid' });
    expect(missing.details.causes).toContainEqual(
      expect.objectContaining({ field: 'spec.template', reason: 'FieldValueRequired' }),
    );
    const mismatch = await failure(
      apps.createNamespacedStatefulSet({
        namespace: 'default',
        body: statefulSet('bad', { selector: { matchLabels: { app: 'other' } } }),
      }),
    );
    expect(mismatch.message).toContain('`selector` does not match template `labels`');
    const badName = await failure(
      apps.createNamespacedStatefulSet({ namespace: 'default', body: statefulSet('Bad_Name') }),
    );
    expect(badName.details.causes[0].field).toBe('metadata.name');

    await apps.createNamespacedStatefulSet({ namespace: 'default', body: statefulSet('immutable') });
    const forbidden = await failure(
      apps.patchNamespacedStatefulSet(
        { name: 'immutable', namespace: 'default', body: { spec: { serviceName: 'other' } } },
        MERGE,
      ),
    );
    expect(forbidden.message).toContain('updates to statefulset spec for fields other than');
  });

  it('applies the builtin defaults (StatefulSet, pod template, Service cluster IP, Secret stringData)', async () => {
    const sts = await apps.createNamespacedStatefulSet({
      namespace: 'default',
      body: statefulSet('defaults'),
    });
    expect(sts.spec).toMatchObject({
      podManagementPolicy: 'OrderedReady',
      revisionHistoryLimit: 10,
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 0 } },
    });
    expect(sts.spec?.template.spec?.containers[0]).toMatchObject({
      imagePullPolicy: 'IfNotPresent',
      terminationMessagePath: '/dev/termination-log',
    });
    const svc = await core.createNamespacedService({
      namespace: 'default',
      body: { metadata: { name: 'defaults' }, spec: { ports: [{ port: 80 }] } },
    });
    expect(svc.spec).toMatchObject({
      type: 'ClusterIP',
      ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }],
    });
    expect(svc.spec?.clusterIP).toMatch(/^10\.96\./);
    const secret = await core.createNamespacedSecret({
      namespace: 'default',
      body: { metadata: { name: 'defaults' }, stringData: { a: 'b' } },
    });
    expect(secret).toMatchObject({ type: 'Opaque', data: { a: Buffer.from('b').toString('base64') } });
    expect(secret.stringData).toBeUndefined();
  });
});

describe('pods, as a kubelet stand-in drives them', () => {
  it('binding sets spec.nodeName once, pods/status writes only status, deletion of a bound pod is graceful', async () => {
    const namespace = 'default';
    const body = {
      metadata: { name: 'kubelet' },
      spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] },
    };
    const pod = await core.createNamespacedPod({ namespace, body });
    expect(pod.status).toMatchObject({ phase: 'Pending', qosClass: 'BestEffort' });
    expect(pod.spec).toMatchObject({
      restartPolicy: 'Always',
      serviceAccountName: 'default',
      terminationGracePeriodSeconds: 30,
    });
    const move = await failure(
      core.patchNamespacedPod({ name: 'kubelet', namespace, body: { spec: { nodeName: 'n1' } } }, MERGE),
    );
    expect(move).toMatchObject({ code: 422, reason: 'Invalid' });
    await core.createNamespacedPodBinding({
      name: 'kubelet',
      namespace,
      body: { metadata: { name: 'kubelet' }, target: { kind: 'Node', name: 'n1' } },
    });
    const again = await failure(
      core.createNamespacedPodBinding({
        name: 'kubelet',
        namespace,
        body: { metadata: { name: 'kubelet' }, target: { kind: 'Node', name: 'n2' } },
      }),
    );
    expect(again).toMatchObject({ code: 409, reason: 'Conflict' });
    const bound = await core.readNamespacedPod({ name: 'kubelet', namespace });
    expect(bound.spec?.nodeName).toBe('n1');

    const running = await core.replaceNamespacedPodStatus({
      name: 'kubelet',
      namespace,
      body: {
        ...bound,
        spec: { ...bound.spec!, containers: [{ name: 'c', image: 'other:2' }] },
        status: { phase: 'Running', podIP: '127.0.0.2', conditions: [{ type: 'Ready', status: 'True' }] },
      },
    });
    expect(running.status?.phase).toBe('Running');
    expect(running.spec?.containers[0]?.image).toBe('busybox:1.36');

    const terminating = (await core.deleteNamespacedPod({ name: 'kubelet', namespace })) as Obj;
    expect(terminating.metadata.deletionTimestamp).toBeDefined();
    expect(terminating.metadata.deletionGracePeriodSeconds).toBe(30);
    expect(
      (await core.readNamespacedPod({ name: 'kubelet', namespace })).metadata?.deletionTimestamp,
    ).toBeDefined();
    await core.deleteNamespacedPod({ name: 'kubelet', namespace, gracePeriodSeconds: 0 });
    expect(api.read('v1', 'pods', namespace, 'kubelet')).toBeUndefined();
  });
});

describe('watch', () => {
  const collect = async (path: string, query: Obj, count: number, ms = 3_000) => {
    const events: Array<{ type: string; object: Obj }> = [];
    let done: Error | null | undefined;
    const controller = await new Watch(kc).watch(
      path,
      query,
      (type, object) => events.push({ type, object }),
      (err) => {
        done = err ?? null;
      },
    );
    try {
      await until(() => events.length >= count || done !== undefined, ms);
    } finally {
      controller.abort();
    }
    return { events, done };
  };

  it('replays the changes after a resourceVersion, with label selectors on old and new states', async () => {
    const from = (await core.listNamespacedConfigMap({ namespace: 'default' })).metadata!.resourceVersion!;
    const cm = await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'watched', labels: { w: '1' } } },
    });
    await core.patchNamespacedConfigMap(
      { name: 'watched', namespace: 'default', body: { data: { a: 'b' } } },
      MERGE,
    );
    await core.patchNamespacedConfigMap(
      { name: 'watched', namespace: 'default', body: { metadata: { labels: { w: '2' } } } },
      MERGE,
    );
    await core.deleteNamespacedConfigMap({ name: 'watched', namespace: 'default' });
    const all = await collect('/api/v1/namespaces/default/configmaps', { resourceVersion: from }, 4);
    expect(all.events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED']);
    const rvs = all.events.map((e) => Number(e.object.metadata.resourceVersion));
    expect(rvs).toEqual([...rvs].sort((a, b) => a - b));
    expect(rvs[0]).toBe(Number(cm.metadata?.resourceVersion));
    const selected = await collect(
      '/api/v1/namespaces/default/configmaps',
      { resourceVersion: from, labelSelector: 'w=1' },
      3,
    );
    // The relabel makes the object leave the selection: DELETED, and the real delete is not seen.
    expect(selected.events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
  });

  it('answers a too-old resourceVersion with 410 Expired, and the informer relists', async () => {
    const small = await startApiServer({ crds: [], watchHistorySize: 3 });
    try {
      const skc = new KubeConfig();
      skc.loadFromFile(small.kubeconfigPath);
      const score = skc.makeApiClient(CoreV1Api);
      const from = (await score.listNamespacedConfigMap({ namespace: 'default' })).metadata!.resourceVersion!;
      for (let i = 0; i < 5; i += 1)
        await score.createNamespacedConfigMap({
          namespace: 'default',
          body: { metadata: { name: `c${i}` } },
        });
      const events: Obj[] = [];
      let ended = false;
      await new Watch(skc).watch(
        '/api/v1/namespaces/default/configmaps',
        { resourceVersion: from },
        (type, object) => events.push({ type, object }),
        () => {
          ended = true;
        },
      );
      await until(() => ended);
      expect(events).toEqual([
        { type: 'ERROR', object: expect.objectContaining({ kind: 'Status', code: 410, reason: 'Expired' }) },
      ]);

      // An informer that comes back after its resourceVersion expired lists again.
      const informer = makeInformer(skc, '/api/v1/namespaces/default/configmaps', () =>
        score.listNamespacedConfigMap({ namespace: 'default' }),
      );
      const added = new Set<string>();
      informer.on('add', (o) => added.add(o.metadata!.name!));
      await informer.start();
      await until(() => added.has('c4'));
      await informer.stop();
      for (let i = 5; i < 10; i += 1)
        await score.createNamespacedConfigMap({
          namespace: 'default',
          body: { metadata: { name: `c${i}` } },
        });
      await informer.start();
      await until(() => added.has('c9'));
      await informer.stop();
      expect(
        small.requests.filter((l) => l.startsWith('GET /api/v1/namespaces/default/configmaps ')).length,
      ).toBeGreaterThanOrEqual(3);
    } finally {
      await small.stop();
    }
  });

  it('sends bookmarks when asked', async () => {
    const { events } = await collect(
      '/api/v1/namespaces/default/configmaps',
      { resourceVersion: String(api.store.resourceVersion), allowWatchBookmarks: true },
      2,
    );
    expect(events.map((e) => e.type)).toEqual(['BOOKMARK', 'BOOKMARK']);
    expect(Number(events[1]!.object.metadata.resourceVersion)).toBeGreaterThan(0);
  });
});

describe('garbage collection', () => {
  const ownerRef = (c: Obj) => ({
    apiVersion: 'conflux.io/v1alpha1',
    kind: 'ConfluxCluster',
    name: c.metadata.name,
    uid: c.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  });

  it('deletes dependents in the background when the owner goes; Orphan keeps them', async () => {
    const owner = await createCluster('owner');
    await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'owned-cm', ownerReferences: [ownerRef(owner)] } },
    });
    await apps.createNamespacedStatefulSet({
      namespace: 'default',
      body: {
        ...statefulSet('owned-sts'),
        metadata: { name: 'owned-sts', ownerReferences: [ownerRef(owner)] },
      },
    });
    await custom.deleteNamespacedCustomObject({
      ...G,
      namespace: 'default',
      plural: 'confluxclusters',
      name: 'owner',
    });
    await until(
      () =>
        !api.read('v1', 'configmaps', 'default', 'owned-cm') &&
        !api.read('apps/v1', 'statefulsets', 'default', 'owned-sts'),
    );

    const keeper = await createCluster('keeper');
    await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'orphan-cm', ownerReferences: [ownerRef(keeper)] } },
    });
    await custom.deleteNamespacedCustomObject({
      ...G,
      namespace: 'default',
      plural: 'confluxclusters',
      name: 'keeper',
      propagationPolicy: 'Orphan',
    });
    api.settle();
    const orphan = await core.readNamespacedConfigMap({ name: 'orphan-cm', namespace: 'default' });
    expect(orphan.metadata?.ownerReferences).toBeUndefined();
  });

  it('foreground deletion keeps the owner (with a finalizer) until its dependents are gone', async () => {
    const owner = await createCluster('fg');
    await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'fg-cm', ownerReferences: [ownerRef(owner)] } },
    });
    const marked = (await custom.deleteNamespacedCustomObject({
      ...G,
      namespace: 'default',
      plural: 'confluxclusters',
      name: 'fg',
      propagationPolicy: 'Foreground',
    })) as Obj;
    expect(marked.metadata.finalizers).toEqual(['foregroundDeletion']);
    expect(marked.metadata.deletionTimestamp).toBeDefined();
    await until(() => !api.read('conflux.io/v1alpha1', 'confluxclusters', 'default', 'fg'));
    expect(api.read('v1', 'configmaps', 'default', 'fg-cm')).toBeUndefined();
  });
});

describe('server-side apply', () => {
  const svc = (ports: number[], labels: Record<string, string> = {}) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'ssa', namespace: 'default', labels: { app: 'ssa', ...labels } },
    spec: {
      selector: { app: 'ssa' },
      ports: ports.map((port) => ({ name: `p${port}`, port, protocol: 'TCP' })),
    },
  });
  const applySvc = (body: Obj, force = true) =>
    core.patchNamespacedService(
      { name: 'ssa', namespace: 'default', body, fieldManager: 'conflux-operator', force },
      APPLY,
    );

  it('creates, then updates: removes what the manager stopped applying, keeps what others set', async () => {
    const created = await applySvc(svc([80, 81]));
    expect(created.spec?.ports?.map((p) => p.port)).toEqual([80, 81]);
    expect(created.metadata?.managedFields?.[0]).toMatchObject({
      manager: 'conflux-operator',
      operation: 'Apply',
    });
    await core.patchNamespacedService(
      {
        name: 'ssa',
        namespace: 'default',
        body: { metadata: { labels: { team: 'x' } } },
        fieldManager: 'someone',
      },
      MERGE,
    );
    const again = await applySvc(svc([80, 81]));
    const updated = await applySvc(svc([80]));
    expect(updated.spec?.ports?.map((p) => p.port)).toEqual([80]);
    expect(updated.metadata?.labels).toEqual({ app: 'ssa', team: 'x' });
    expect(updated.spec?.clusterIP).toBe(created.spec?.clusterIP);
    const same = await applySvc(svc([80]));
    expect(same.metadata?.resourceVersion).toBe(updated.metadata?.resourceVersion);
    expect(Number(again.metadata?.resourceVersion)).toBeGreaterThan(
      Number(created.metadata?.resourceVersion),
    );
    const conflict = await failure(applySvc(svc([80], { team: 'y' }), false));
    expect(conflict).toMatchObject({ code: 409, reason: 'Conflict' });
    expect(conflict.message).toContain('conflict with "someone"');
    const forced = await applySvc(svc([80], { team: 'y' }));
    expect(forced.metadata?.labels?.team).toBe('y');
  });

  it('drives the operator platform: ensureMembers twice, pods by label, volume reclaim behind PVC protection', async () => {
    await core.createNamespace({ body: { metadata: { name: 'op' } } });
    await createCluster('demo', { replicas: 3 }, 'op');
    const cluster = confluxClusterSchema.parse(await getCluster('demo', 'op'));
    const platform = new KubernetesPlatform({ kubeConfig: kc, logger: silent });
    await platform.ensureMembers(cluster, 1);
    const sts1 = api.read('apps/v1', 'statefulsets', 'op', 'demo')!;
    expect(sts1.metadata.ownerReferences?.[0]?.uid).toBe(cluster.metadata.uid);
    expect(api.read('policy/v1', 'poddisruptionbudgets', 'op', 'demo')).toBeDefined();
    expect(api.read('v1', 'services', 'op', 'demo-headless')?.spec).toMatchObject({ clusterIP: 'None' });
    await platform.ensureMembers(cluster, 1);
    expect(api.read('apps/v1', 'statefulsets', 'op', 'demo')!.metadata.resourceVersion).toBe(
      sts1.metadata.resourceVersion,
    );
    await platform.ensureMembers(cluster, 3);
    const sts3 = api.read('apps/v1', 'statefulsets', 'op', 'demo')!;
    expect((sts3.spec as Obj).replicas).toBe(3);
    expect(sts3.metadata.generation).toBe(2);
    expect(await platform.setSize(cluster)).toBe(3);
    // A StatefulSet controller reports status; the operator's next apply changes nothing.
    const withStatus = await apps.readNamespacedStatefulSet({ name: 'demo', namespace: 'op' });
    const reported = await apps.replaceNamespacedStatefulSetStatus({
      name: 'demo',
      namespace: 'op',
      body: { ...withStatus, status: { replicas: 3, readyReplicas: 3, observedGeneration: 2 } },
      fieldManager: 'pod-runner',
    });
    await platform.ensureMembers(cluster, 3);
    const after = api.read('apps/v1', 'statefulsets', 'op', 'demo')!;
    expect(after.metadata.resourceVersion).toBe(reported.metadata?.resourceVersion);
    expect(
      after.metadata.managedFields?.map((e) => `${e.manager}/${e.operation}/${e.subresource ?? ''}`),
    ).toEqual(['conflux-operator/Apply/', 'pod-runner/Update/status']);

    const labels = { 'app.kubernetes.io/name': 'conflux', 'app.kubernetes.io/instance': 'demo' };
    await core.createNamespacedPod({
      namespace: 'op',
      body: {
        metadata: { name: 'demo-0', labels },
        spec: {
          containers: [{ name: 'conflux', image: 'x:1' }],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data-demo-3' } }],
        },
      },
    });
    await core.createNamespacedPod({
      namespace: 'op',
      body: {
        metadata: { name: 'other', labels: { app: 'x' } },
        spec: { containers: [{ name: 'c', image: 'x:1' }] },
      },
    });
    expect((await platform.pods(cluster)).map((p) => p.name)).toEqual(['demo-0', 'demo-1', 'demo-2']);

    await core.createNamespacedPersistentVolumeClaim({
      namespace: 'op',
      body: {
        metadata: { name: 'data-demo-3', labels },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      },
    });
    expect(await platform.volumes(cluster)).toEqual([3]);
    await platform.deleteVolume(cluster, 3);
    api.settle();
    // demo-0 mounts it: the claim stays, being deleted, until the pod is gone.
    expect(
      api.read('v1', 'persistentvolumeclaims', 'op', 'data-demo-3')?.metadata.deletionTimestamp,
    ).toBeDefined();
    expect(await platform.volumes(cluster)).toEqual([]);
    await core.deleteNamespacedPod({ name: 'demo-0', namespace: 'op' });
    await until(() => !api.read('v1', 'persistentvolumeclaims', 'op', 'data-demo-3'));
  });
});

describe('the operator store, events and leases', () => {
  it('lists, watches (informer) and writes status; stale writes are ConflictError', async () => {
    const store = new KubernetesStore({ kubeConfig: kc, logger: silent, namespace: 'default' });
    const seen: string[] = [];
    const stop = store.watch((k) => seen.push(k.name));
    try {
      await createCluster('informed');
      await until(() => seen.includes('informed'));
      const c = (await store.getCluster('default', 'informed'))!;
      const written = await store.writeClusterStatus(c, {
        phase: 'Running',
        observedGeneration: 1,
        conditions: [],
      } as never);
      expect(written.status?.phase).toBe('Running');
      await expect(store.writeClusterStatus(c, { phase: 'Degraded' } as never)).rejects.toBeInstanceOf(
        ConflictError,
      );
      expect((await store.listClusters()).map((x) => x.metadata.name)).toContain('informed');

      await store.event(written, 'Normal', 'Bootstrapped', 'cluster formed');
      await store.event(written, 'Normal', 'Bootstrapped', 'cluster formed');
      const events = api
        .list('events.k8s.io/v1', 'events', 'default')
        .filter((e) => (e.regarding as Obj)?.name === 'informed');
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        reason: 'Bootstrapped',
        note: 'cluster formed',
        series: { count: 2 },
      });
      const coreEvent = (await core.listNamespacedEvent({ namespace: 'default' })).items.find(
        (e) => e.involvedObject.name === 'informed',
      );
      expect(coreEvent?.message).toBe('cluster formed');
    } finally {
      stop();
    }
  });

  it('serves Leases with optimistic concurrency, and refuses non-microsecond MicroTimes', async () => {
    const leases = kubernetesLeaseApi(kc, 'default', 'conflux-operator');
    expect(await leases.get()).toBeNull();
    const first = await leases.create({
      holderIdentity: 'a',
      leaseDurationSeconds: 15,
      renewTime: new Date(),
    });
    const renewed = await leases.update(
      { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: new Date() },
      first.resourceVersion,
    );
    expect(renewed.record.holderIdentity).toBe('a');
    await expect(leases.update({ holderIdentity: 'b' }, first.resourceVersion)).rejects.toBeInstanceOf(
      LeaseConflictError,
    );
    const res = await fetch(`${api.url}/apis/coordination.k8s.io/v1/namespaces/default/leases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ metadata: { name: 'millis' }, spec: { renewTime: new Date().toISOString() } }),
    });
    expect(res.status).toBe(400);
  });
});

describe('namespaces and tables', () => {
  it('deleting a namespace deletes what is in it, then the namespace', async () => {
    await core.createNamespace({ body: { metadata: { name: 'doomed' } } });
    await core.createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'x' } } });
    const ns = await core.deleteNamespace({ name: 'doomed' });
    expect((ns as Obj).status?.phase).toBe('Terminating');
    await until(() => !api.read('v1', 'namespaces', undefined, 'doomed'));
    expect(api.read('v1', 'configmaps', 'doomed', 'x')).toBeUndefined();
  });

  it('answers Accept: as=Table with the CRD printer columns', async () => {
    const c = await createCluster('table');
    await custom.patchNamespacedCustomObjectStatus(
      {
        ...G,
        namespace: 'default',
        plural: 'confluxclusters',
        name: 'table',
        body: { status: { readyReplicas: 2, leaderId: 'table-0-ab', phase: 'Running' } },
      },
      MERGE,
    );
    const res = await fetch(`${api.url}/apis/conflux.io/v1alpha1/namespaces/default/confluxclusters/table`, {
      headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' },
    });
    const table = (await res.json()) as Obj;
    expect(table.kind).toBe('Table');
    expect(table.columnDefinitions.map((d: Obj) => d.name)).toEqual([
      'Name',
      'Replicas',
      'Ready',
      'Leader',
      'Phase',
      'Last Backup',
      'Age',
    ]);
    expect(table.rows[0].cells.slice(0, 6)).toEqual(['table', 3, 2, 'table-0-ab', 'Running', null]);
    expect(table.rows[0].cells[6]).toMatch(/^\d+s$/);
    expect(table.rows[0].object.metadata.uid).toBe(c.metadata.uid);
  });
});

const kubectlAvailable = await run(kubectlBinary(), ['version', '--client'], { timeout: 10_000 }).then(
  () => true,
  () => false,
);

describe.skipIf(!kubectlAvailable)('kubectl against the stand-in', () => {
  let cacheDir: string;
  const kubectl = async (...args: string[]) =>
    (
      await run(kubectlBinary(), ['--kubeconfig', api.kubeconfigPath, '--cache-dir', cacheDir, ...args], {
        timeout: 20_000,
      })
    ).stdout;
  beforeAll(() => {
    cacheDir = mkdtempSync(join(tmpdir(), 'kubectl-cache-'));
  });
  afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

  it('get shows the printer columns, scale changes spec.replicas, get -o json and apply -f work', async () => {
    const manifest = join(cacheDir, 'demo.yaml');
    const write = (replicas: number, paused: boolean) =>
      writeFileSync(
        manifest,
        `apiVersion: conflux.io/v1alpha1\nkind: ConfluxCluster\nmetadata:\n  name: kdemo\n  labels: {team: a}\nspec:\n  replicas: ${replicas}\n${paused ? '  paused: true\n' : ''}`,
      );
    write(3, true);
    expect(await kubectl('apply', '-f', manifest)).toContain('confluxcluster.conflux.io/kdemo created');
    const table = await kubectl('get', 'confluxclusters');
    expect(table.split('\n')[0]!.split(/\s{2,}/)).toEqual([
      'NAME',
      'REPLICAS',
      'READY',
      'LEADER',
      'PHASE',
      'LAST BACKUP',
      'AGE',
    ]);
    expect(table).toMatch(/^kdemo\s+3\s/m);

    expect(await kubectl('scale', 'confluxcluster/kdemo', '--replicas=5')).toContain('scaled');
    const json = JSON.parse(await kubectl('get', 'confluxcluster', 'kdemo', '-o', 'json')) as KubeObject;
    expect(json.spec).toMatchObject({ replicas: 5, paused: true });
    expect(json.metadata.generation).toBe(2);

    write(4, false);
    expect(await kubectl('apply', '-f', manifest)).toContain('configured');
    const applied = api.read('conflux.io/v1alpha1', 'confluxclusters', 'default', 'kdemo')!;
    expect(applied.spec).toMatchObject({ replicas: 4, paused: false });
    expect(await kubectl('get', 'cfx', 'kdemo', '-o', 'jsonpath={.spec.replicas}')).toBe('4');
    expect(await kubectl('delete', 'cfx', 'kdemo')).toContain('deleted');
  });
});
