import { StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Secret, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../node/config.js';
import { type ConfluxCluster, confluxClusterSchema } from '../api/cluster.js';
import {
  buildClusterObjects,
  buildPodDisruptionBudget,
  buildPodTemplate,
  buildStatefulSet,
  ClusterObjectsError,
  DEV_INSECURE_ANNOTATION,
  keepImmutableFields,
  POD_TEMPLATE_HASH_ANNOTATION,
  pvcName,
  resourceNames,
} from './kubernetes-objects.js';
import { buildAdminTlsSecret, buildCaSecret, buildNodeTlsSecret } from './kubernetes-tls-objects.js';

function cluster(over: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): ConfluxCluster {
  return confluxClusterSchema.parse({
    apiVersion: 'conflux.io/v1alpha1',
    kind: 'ConfluxCluster',
    metadata: { name: 'demo', namespace: 'db', uid: '6f1c2a4e-0000-4000-8000-000000000001', ...metadata },
    spec: over,
  });
}

const small = cluster();
const full = cluster({
  replicas: 5,
  image: 'registry.example.com/conflux:1.2.3',
  imagePullPolicy: 'Always',
  resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '1Gi' } },
  storage: { size: '20Gi', storageClassName: 'fast-ssd', reclaimPolicy: 'Retain' },
  raft: { tickMs: 20, electionTicks: 15, snapshotEntries: 50_000 },
  tls: { operatorManaged: false, nodeSecretName: 'my-node-tls', adminSecretName: 'my-admin-tls' },
  backup: {
    schedule: '0 3 * * *',
    destination: {
      uri: 's3://backups/demo',
      endpoint: 'https://minio.example.com',
      region: 'eu-west-1',
      pathStyle: true,
      credentialsSecret: { name: 's3-creds' },
    },
    retention: { keepLast: 7, maxAgeDays: 30 },
  },
  restore: { snapshotUri: 's3://backups/old/snap-1' },
  paused: false,
});
const pem = { caPem: 'CA', certPem: 'CERT', keyPem: 'KEY' };

function envOf(c: ConfluxCluster, size = 3) {
  const container = buildStatefulSet(c, size).spec!.template.spec!.containers[0]!;
  return container.env ?? [];
}

/** The pod's environment as the node would see it in pod `podName` ($(POD_NAME) expanded). */
function resolvedEnv(c: ConfluxCluster, podName: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of envOf(c)) {
    if (e.value !== undefined) out[e.name] = e.value.replaceAll('$(POD_NAME)', podName);
  }
  return out;
}

describe('every object validates against the Kubernetes schemas', () => {
  for (const [label, c] of [
    ['a small cluster', small],
    ['a fully specified cluster', full],
    ['a dev-insecure cluster', cluster({}, { annotations: { [DEV_INSECURE_ANNOTATION]: 'true' } })],
  ] as const) {
    it(label, () => {
      const o = buildClusterObjects(c, 3);
      new Service(o.headlessService as never).validate();
      new Service(o.clientService as never).validate();
      new StatefulSet(o.statefulSet as never).validate();
      new PodDisruptionBudget(o.podDisruptionBudget as never).validate();
      new Secret(buildNodeTlsSecret(c, pem) as never).validate();
      new Secret(buildAdminTlsSecret(c, pem) as never).validate();
      new Secret(buildCaSecret(c, { certPem: 'CA', keyPem: 'KEY' }) as never).validate();
    });
  }
});

describe('ownership and labels', () => {
  const o = buildClusterObjects(small, 3);
  const all = [
    ...Object.values(o),
    buildNodeTlsSecret(small, pem),
    buildAdminTlsSecret(small, pem),
    buildCaSecret(small, { certPem: 'CA', keyPem: 'KEY' }),
  ];
  it.each(all.map((x) => [`${x.kind} ${x.metadata?.name}`, x] as const))('%s', (_, obj) => {
    expect(obj.metadata?.namespace).toBe('db');
    expect(obj.metadata?.labels).toEqual({
      'app.kubernetes.io/name': 'conflux',
      'app.kubernetes.io/instance': 'demo',
      'app.kubernetes.io/managed-by': 'conflux-operator',
    });
    expect(obj.metadata?.ownerReferences).toEqual([
      {
        apiVersion: 'conflux.io/v1alpha1',
        kind: 'ConfluxCluster',
        name: 'demo',
        uid: small.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
  });

  it('names', () => {
    expect(all.map((x) => `${x.kind}/${x.metadata?.name}`)).toEqual([
      'Service/demo-headless',
      'Service/demo',
      'StatefulSet/demo',
      'PodDisruptionBudget/demo',
      'Secret/demo-tls',
      'Secret/demo-admin-tls',
      'Secret/demo-ca',
    ]);
    expect(pvcName(small, 4)).toBe('data-demo-4');
  });

  it('refuses a cluster without a uid (the owner reference needs it)', () => {
    expect(() => buildClusterObjects(cluster({}, { uid: undefined }), 1)).toThrow(/no uid/);
  });

  it('refuses a name too long for the names derived from it', () => {
    expect(() => buildClusterObjects(cluster({}, { name: 'a'.repeat(52) }), 1)).toThrow(ClusterObjectsError);
    expect(() => buildClusterObjects(cluster({}, { name: 'a'.repeat(51) }), 1)).not.toThrow();
  });
});

describe('services and disruption budget', () => {
  const o = buildClusterObjects(small, 3);
  it('headless service publishes every pod, ready or not', () => {
    expect(o.headlessService.spec).toMatchObject({
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: { 'app.kubernetes.io/name': 'conflux', 'app.kubernetes.io/instance': 'demo' },
    });
    expect(o.headlessService.spec?.ports?.map((p) => [p.name, p.port])).toEqual([
      ['raft', 7000],
      ['api', 8080],
      ['admin', 8443],
    ]);
  });
  it('client service exposes only the client API', () => {
    expect(o.clientService.spec?.clusterIP).toBeUndefined();
    expect(o.clientService.spec?.ports?.map((p) => [p.name, p.port])).toEqual([['api', 8080]]);
  });
  it('PDB keeps a quorum of the desired voters up (3 voters: one may be evicted)', () => {
    expect(o.podDisruptionBudget.spec).toEqual({
      minAvailable: 2,
      selector: {
        matchLabels: { 'app.kubernetes.io/name': 'conflux', 'app.kubernetes.io/instance': 'demo' },
      },
    });
  });
  it.each([
    [1, 1],
    [2, 2],
    [3, 2],
    [4, 3],
    [5, 3],
  ])('PDB with %i voters refuses evictions below a quorum (minAvailable %i)', (replicas, min) => {
    expect(buildPodDisruptionBudget(cluster({ replicas })).spec?.minAvailable).toBe(min);
  });
  it('the StatefulSet leaves rolling to the operator (OnDelete)', () => {
    expect(o.statefulSet.spec?.updateStrategy).toEqual({ type: 'OnDelete' });
  });
  it('spec.env reaches the container last, after the variables the operator sets', () => {
    const env = buildPodTemplate(cluster({ env: [{ name: 'CONFLUX_LOG_LEVEL', value: 'debug' }] })).spec
      ?.containers[0]?.env;
    expect(env?.at(-1)).toEqual({ name: 'CONFLUX_LOG_LEVEL', value: 'debug' });
  });
});

describe('StatefulSet', () => {
  it.each([
    [small, 0, 'Delete', '1Gi', undefined],
    [small, 1, 'Delete', '1Gi', undefined],
    [full, 4, 'Retain', '20Gi', 'fast-ssd'],
  ] as const)('size %#', (c, size, whenScaled, storage, storageClassName) => {
    const spec = buildStatefulSet(c, size).spec!;
    expect(spec.replicas).toBe(size); // the argument, never spec.replicas
    expect(spec.serviceName).toBe('demo-headless');
    expect(spec.podManagementPolicy).toBe('Parallel');
    expect(spec.selector.matchLabels).toEqual({
      'app.kubernetes.io/name': 'conflux',
      'app.kubernetes.io/instance': 'demo',
    });
    expect(spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenScaled, whenDeleted: 'Retain' });
    const claim = spec.volumeClaimTemplates![0]!;
    expect(claim.metadata?.name).toBe('data');
    expect(claim.spec?.resources?.requests).toEqual({ storage });
    expect(claim.spec?.storageClassName).toBe(storageClassName);
    expect(claim.spec?.accessModes).toEqual(['ReadWriteOnce']);
  });

  it('refuses a negative or fractional size', () => {
    expect(() => buildStatefulSet(small, -1)).toThrow(ClusterObjectsError);
    expect(() => buildStatefulSet(small, 1.5)).toThrow(ClusterObjectsError);
  });

  it('runs the node unprivileged', () => {
    const pod = buildStatefulSet(small, 3).spec!.template.spec!;
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 10001,
      fsGroup: 10001,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.containers[0]!.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(pod.terminationGracePeriodSeconds).toBe(30);
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.enableServiceLinks).toBe(false);
  });

  it('container: image, pull policy, resources, ports, mounts', () => {
    const s = buildStatefulSet(small, 3).spec!.template.spec!;
    const f = buildStatefulSet(full, 3).spec!.template.spec!;
    expect(s.containers[0]).toMatchObject({ name: 'conflux', image: 'ghcr.io/conflux-io/conflux:0.1.0' });
    expect(s.containers[0]!.imagePullPolicy).toBeUndefined();
    expect(s.containers[0]!.resources).toBeUndefined();
    expect(f.containers[0]).toMatchObject({
      image: 'registry.example.com/conflux:1.2.3',
      imagePullPolicy: 'Always',
      resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '1Gi' } },
    });
    expect(s.containers[0]!.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ['raft', 7000],
      ['api', 8080],
      ['admin', 8443],
    ]);
    expect(s.containers[0]!.volumeMounts).toEqual([
      { name: 'data', mountPath: '/data' },
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'tls', mountPath: '/tls', readOnly: true },
    ]);
    expect(s.volumes?.find((v) => v.name === 'tls')?.secret?.secretName).toBe('demo-tls');
    expect(f.volumes?.find((v) => v.name === 'tls')?.secret?.secretName).toBe('my-node-tls');
  });

  it('probes: HTTPS /readyz and /healthz on the API port', () => {
    const c = buildStatefulSet(small, 3).spec!.template.spec!.containers[0]!;
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'api', scheme: 'HTTPS' });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'api', scheme: 'HTTPS' });
    expect(c.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 'api', scheme: 'HTTPS' });
  });
});

describe('node environment', () => {
  it('POD_NAME comes first, from the downward API', () => {
    expect(envOf(small)[0]).toEqual({
      name: 'POD_NAME',
      valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } },
    });
  });

  it.each([
    ['CONFLUX_NODE_ID_PREFIX', 'demo-2'],
    ['CONFLUX_DATA_DIR', '/data'],
    ['CONFLUX_RAFT_ADDR', '0.0.0.0:7000'],
    ['CONFLUX_API_ADDR', '0.0.0.0:8080'],
    ['CONFLUX_ADMIN_ADDR', '0.0.0.0:8443'],
    ['CONFLUX_ADVERTISE_RAFT_ADDR', 'demo-2.demo-headless.db.svc:7000'],
    ['CONFLUX_ADVERTISE_API_ADDR', 'demo-2.demo-headless.db.svc:8080'],
    ['CONFLUX_ADVERTISE_ADMIN_ADDR', 'demo-2.demo-headless.db.svc:8443'],
    ['CONFLUX_TICK_MS', '50'],
    ['CONFLUX_ELECTION_TICKS', '10'],
    ['CONFLUX_SNAPSHOT_ENTRIES', '10000'],
    ['CONFLUX_TLS_CERT', '/tls/tls.crt'],
    ['CONFLUX_TLS_KEY', '/tls/tls.key'],
    ['CONFLUX_TLS_CA', '/tls/ca.crt'],
  ])('%s = %s', (name, value) => {
    expect(resolvedEnv(small, 'demo-2')[name]).toBe(value);
  });

  it('a small cluster has no backup settings', () => {
    expect(Object.keys(resolvedEnv(small, 'demo-0')).filter((k) => /BACKUP|S3|AWS/.test(k))).toEqual([]);
  });

  it('a fully specified cluster: Raft timings, backup destination and credentials', () => {
    const env = resolvedEnv(full, 'demo-0');
    expect(env).toMatchObject({
      CONFLUX_TICK_MS: '20',
      CONFLUX_ELECTION_TICKS: '15',
      CONFLUX_SNAPSHOT_ENTRIES: '50000',
      CONFLUX_BACKUP_DESTINATION: 's3://backups/demo',
      CONFLUX_S3_ENDPOINT: 'https://minio.example.com',
      CONFLUX_S3_REGION: 'eu-west-1',
      CONFLUX_S3_PATH_STYLE: 'true',
      CONFLUX_BACKUP_KEEP_LAST: '7',
      CONFLUX_BACKUP_MAX_AGE_DAYS: '30',
    });
    const refs = envOf(full).filter((e) => e.valueFrom?.secretKeyRef);
    expect(
      refs.map((e) => [e.name, e.valueFrom?.secretKeyRef?.name, e.valueFrom?.secretKeyRef?.key]),
    ).toEqual([
      ['AWS_ACCESS_KEY_ID', 's3-creds', 'AWS_ACCESS_KEY_ID'],
      ['AWS_SECRET_ACCESS_KEY', 's3-creds', 'AWS_SECRET_ACCESS_KEY'],
    ]);
  });

  it.each([
    ['small', small],
    ['full', full],
  ] as const)('the %s environment is a valid conflux-node configuration', (_, c) => {
    const config = loadConfig([], resolvedEnv(c, 'demo-1'));
    expect(config).toMatchObject({
      nodeIdPrefix: 'demo-1',
      dataDir: '/data',
      advertiseRaftAddr: 'demo-1.demo-headless.db.svc:7000',
      advertiseApiAddr: 'demo-1.demo-headless.db.svc:8080',
      advertiseAdminAddr: 'demo-1.demo-headless.db.svc:8443',
      tickMs: c.spec.raft.tickMs,
      electionTicks: c.spec.raft.electionTicks,
      snapshotEntries: c.spec.raft.snapshotEntries,
      tlsCert: '/tls/tls.crt',
      tlsKey: '/tls/tls.key',
      tlsCa: '/tls/ca.crt',
      devInsecure: false,
    });
  });
});

describe('TLS modes', () => {
  it('operator-managed: the generated Secrets', () => {
    expect(resourceNames(small)).toMatchObject({
      nodeSecret: 'demo-tls',
      adminSecret: 'demo-admin-tls',
      caSecret: 'demo-ca',
    });
    const node = buildNodeTlsSecret(small, pem);
    expect(node.type).toBe('kubernetes.io/tls');
    expect(Object.keys(node.data ?? {})).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    expect(Buffer.from(node.data!['tls.crt']!, 'base64').toString()).toBe('CERT');
    const ca = buildCaSecret(small, { certPem: 'C', keyPem: 'K' });
    expect(ca.type).toBe('Opaque');
    expect(Object.keys(ca.data ?? {})).toEqual(['ca.crt', 'ca.key']);
  });

  it('user-provided: references the named Secrets, no CA', () => {
    expect(resourceNames(full)).toMatchObject({
      nodeSecret: 'my-node-tls',
      adminSecret: 'my-admin-tls',
      caSecret: undefined,
    });
  });

  it('user-provided without the Secret names is refused', () => {
    // The schema refuses this too; the builders must not trust that every caller parsed.
    const c: ConfluxCluster = { ...small, spec: { ...small.spec, tls: { operatorManaged: false } } };
    expect(() => buildStatefulSet(c, 1)).toThrow(/nodeSecretName and spec.tls.adminSecretName/);
  });

  it('dev-insecure: no TLS files, plain HTTP probes, --dev-insecure', () => {
    const c = cluster({}, { annotations: { [DEV_INSECURE_ANNOTATION]: 'true' } });
    const pod = buildStatefulSet(c, 1).spec!.template.spec!;
    expect(pod.volumes?.map((v) => v.name)).toEqual(['tmp']);
    expect(pod.containers[0]!.readinessProbe?.httpGet?.scheme).toBe('HTTP');
    const env = resolvedEnv(c, 'demo-0');
    expect(env.CONFLUX_DEV_INSECURE).toBe('true');
    expect(env.CONFLUX_TLS_CERT).toBeUndefined();
    expect(resourceNames(c)).toMatchObject({
      nodeSecret: undefined,
      adminSecret: undefined,
      caSecret: undefined,
    });
  });
});

describe('pod template hash', () => {
  const hashOf = (c: ConfluxCluster, size = 3) => {
    const sts = buildStatefulSet(c, size);
    const onPods = sts.spec!.template.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION];
    expect(sts.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION]).toBe(onPods);
    return onPods;
  };
  const base = hashOf(small);

  it('is a short hex digest, stable across builds', () => {
    expect(base).toMatch(/^[0-9a-f]{16}$/);
    expect(hashOf(cluster())).toBe(base);
  });

  it.each([
    ['size', () => hashOf(small, 5)],
    ['spec.replicas', () => hashOf(cluster({ replicas: 7 }))],
    ['spec.paused', () => hashOf(cluster({ paused: true }))],
  ])('does not change with %s', (_, hash) => {
    expect(hash()).toBe(base);
  });

  it('does not change with the backup schedule (only the operator uses it)', () => {
    const backup = full.spec.backup!;
    expect(hashOf(cluster({ backup: { ...backup, schedule: '1 * * * *' } }))).toBe(
      hashOf(cluster({ backup })),
    );
  });

  it.each([
    ['image', { image: 'x/conflux:2' }],
    ['imagePullPolicy', { imagePullPolicy: 'Never' }],
    ['resources', { resources: { limits: { cpu: '1' } } }],
    ['raft timings', { raft: { tickMs: 10 } }],
    ['backup destination', { backup: full.spec.backup }],
    ['TLS secrets', { tls: { operatorManaged: false, nodeSecretName: 'a', adminSecretName: 'b' } }],
  ])('changes with %s', (_, spec) => {
    expect(hashOf(cluster(spec))).not.toBe(base);
  });
});

describe('keepImmutableFields', () => {
  it('keeps the existing volume claim templates when spec.storage changed', () => {
    const existing = buildStatefulSet(small, 3);
    const desired = buildStatefulSet(cluster({ storage: { size: '50Gi' } }), 3);
    const { statefulSet, kept } = keepImmutableFields(desired, existing);
    expect(kept).toEqual(['volumeClaimTemplates']);
    expect(statefulSet.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage).toBe('1Gi');
    expect(statefulSet.spec?.template).toEqual(desired.spec?.template);
    new StatefulSet(statefulSet as never).validate();
  });

  it('changes nothing when nothing immutable differs, or there is no existing set', () => {
    const desired = buildStatefulSet(small, 3);
    expect(keepImmutableFields(desired, buildStatefulSet(small, 1)).kept).toEqual([]);
    expect(keepImmutableFields(desired, null)).toEqual({ statefulSet: desired, kept: [] });
  });
});
