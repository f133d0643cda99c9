// Pure builders of everything a ConfluxCluster owns on Kubernetes: the headless and client
// Services, the StatefulSet, the PodDisruptionBudget and the TLS Secrets. No I/O: the platform
// (kubernetes.ts) applies what these return. Every object carries the cluster's labels and an
// ownerReference to it, so deleting the cluster deletes them (the PVCs are kept: whenDeleted
// Retain).
//
// Invariants:
// - The StatefulSet's replicas is the `size` argument, never spec.replicas: the reconciler grows
//   and shrinks the set one member at a time.
// - The selector is only name + instance, because a StatefulSet's selector is immutable.
// - The pod template carries a hash of itself (conflux.io/pod-template-hash), so a change of any
//   spec part that reaches the pods (image, resources, Raft timings, env, TLS, backup settings)
//   is visible on the pods. Renewed certificates are not part of it: members re-read their
//   mounted TLS files while they run, so a renewal restarts nothing.

import { createHash } from 'node:crypto';
import type {
  V1Container,
  V1EnvVar,
  V1ObjectMeta,
  V1OwnerReference,
  V1PodDisruptionBudget,
  V1PodTemplateSpec,
  V1Service,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { API_VERSION, type ConfluxCluster } from '../api/cluster.js';

export const PORTS = { raft: 7000, api: 8080, admin: 8443 } as const;
export const NODE_UID = 10001;
export const DATA_VOLUME = 'data';
export const DATA_DIR = '/data';
export const TLS_DIR = '/tls';
export const CONTAINER_NAME = 'conflux';
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';
export const POD_TEMPLATE_HASH_ANNOTATION = 'conflux.io/pod-template-hash';
/**
 * `conflux.io/dev-insecure: "true"` on a ConfluxCluster: nodes run --dev-insecure (no TLS, no
 * Secrets) and the operator talks plain HTTP. The node refuses --dev-insecure on non-loopback
 * addresses, so this only serves environments that run the pods' processes on loopback.
 */
export const DEV_INSECURE_ANNOTATION = 'conflux.io/dev-insecure';
/**
 * Longest cluster name whose derived names all stay valid: `<name>-<ordinal>` must fit the node
 * id prefix (54) and `<name>-<10-char revision hash>` a label value (63).
 */
export const MAX_CLUSTER_NAME_LENGTH = 51;

export interface ResourceNames {
  statefulSet: string;
  headlessService: string;
  clientService: string;
  podDisruptionBudget: string;
  /** The Secret mounted into the pods (ca.crt, tls.crt, tls.key); undefined in dev mode. */
  nodeSecret: string | undefined;
  /** The operator's admin client certificate; undefined in dev mode. */
  adminSecret: string | undefined;
  /** The operator-managed CA (ca.crt, ca.key); undefined when the user provides the Secrets. */
  caSecret: string | undefined;
}

export class ClusterObjectsError extends Error {
  override readonly name = 'ClusterObjectsError';
}

export function isDevInsecure(cluster: ConfluxCluster): boolean {
  return cluster.metadata.annotations?.[DEV_INSECURE_ANNOTATION] === 'true';
}

export function resourceNames(cluster: ConfluxCluster): ResourceNames {
  const name = cluster.metadata.name;
  const tls = cluster.spec.tls;
  const dev = isDevInsecure(cluster);
  return {
    statefulSet: name,
    headlessService: `${name}-headless`,
    clientService: name,
    podDisruptionBudget: name,
    nodeSecret: dev ? undefined : tls.operatorManaged ? `${name}-tls` : tls.nodeSecretName,
    adminSecret: dev ? undefined : tls.operatorManaged ? `${name}-admin-tls` : tls.adminSecretName,
    caSecret: dev || !tls.operatorManaged ? undefined : `${name}-ca`,
  };
}

/** The Secret names the pods and the operator need; throws when user-provided ones are missing. */
export function requiredSecretNames(cluster: ConfluxCluster): { node: string; admin: string } | undefined {
  if (isDevInsecure(cluster)) return undefined;
  const names = resourceNames(cluster);
  if (!names.nodeSecret || !names.adminSecret) {
    throw new ClusterObjectsError(
      `${cluster.metadata.namespace}/${cluster.metadata.name}: spec.tls.operatorManaged is false, so ` +
        'spec.tls.nodeSecretName and spec.tls.adminSecretName are both required',
    );
  }
  return { node: names.nodeSecret, admin: names.adminSecret };
}

export function selectorLabels(cluster: ConfluxCluster): Record<string, string> {
  return { 'app.kubernetes.io/name': 'conflux', 'app.kubernetes.io/instance': cluster.metadata.name };
}

export function commonLabels(cluster: ConfluxCluster): Record<string, string> {
  return { ...selectorLabels(cluster), 'app.kubernetes.io/managed-by': 'conflux-operator' };
}

export function labelSelector(cluster: ConfluxCluster): string {
  return Object.entries(selectorLabels(cluster))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export function ownerReference(cluster: ConfluxCluster): V1OwnerReference {
  if (!cluster.metadata.uid) {
    throw new ClusterObjectsError(
      `${cluster.metadata.namespace}/${cluster.metadata.name} has no uid; read it from the API server first`,
    );
  }
  return {
    apiVersion: API_VERSION,
    kind: 'ConfluxCluster',
    name: cluster.metadata.name,
    uid: cluster.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function meta(cluster: ConfluxCluster, name: string): V1ObjectMeta {
  if (cluster.metadata.name.length > MAX_CLUSTER_NAME_LENGTH) {
    throw new ClusterObjectsError(
      `cluster name ${cluster.metadata.name} is longer than ${MAX_CLUSTER_NAME_LENGTH} characters; ` +
        'the names derived from it (pods, node ids, revision labels) would not be valid',
    );
  }
  return {
    name,
    namespace: cluster.metadata.namespace,
    labels: commonLabels(cluster),
    ownerReferences: [ownerReference(cluster)],
  };
}

/** `<pod>.<name>-headless.<ns>.svc`: how peers and the operator reach one pod. */
export function podHost(cluster: ConfluxCluster, podName: string): string {
  return `${podName}.${resourceNames(cluster).headlessService}.${cluster.metadata.namespace}.svc`;
}

export function podName(cluster: ConfluxCluster, ordinal: number): string {
  return `${cluster.metadata.name}-${ordinal}`;
}

export function pvcName(cluster: ConfluxCluster, ordinal: number): string {
  return `${DATA_VOLUME}-${podName(cluster, ordinal)}`;
}

export function buildHeadlessService(cluster: ConfluxCluster): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(cluster, resourceNames(cluster).headlessService),
    spec: {
      clusterIP: 'None',
      // Peers must find each other before they are ready: readiness needs a formed cluster.
      publishNotReadyAddresses: true,
      selector: selectorLabels(cluster),
      ports: (['raft', 'api', 'admin'] as const).map((name) => ({
        name,
        port: PORTS[name],
        targetPort: name,
        protocol: 'TCP',
      })),
    },
  };
}

export function buildClientService(cluster: ConfluxCluster): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(cluster, resourceNames(cluster).clientService),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(cluster),
      ports: [{ name: 'api', port: PORTS.api, targetPort: 'api', protocol: 'TCP' }],
    },
  };
}

/**
 * Evictions (node drains) may take members down only while a quorum of the voters stays up: the
 * same line the operator's rolling update never crosses. `minAvailable` comes from plan(), which
 * counts the live voters and the pods of a scale in progress (reconcile/plan/owned.ts); without
 * it, a quorum of the spec's replicas.
 */
export function buildPodDisruptionBudget(
  cluster: ConfluxCluster,
  minAvailable = quorumOf(cluster.spec.replicas),
): V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(cluster, resourceNames(cluster).podDisruptionBudget),
    spec: {
      minAvailable,
      selector: { matchLabels: selectorLabels(cluster) },
    },
  };
}

/** A majority of `voters`. */
export function quorumOf(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

const value = (name: string, v: string | number | boolean): V1EnvVar => ({ name, value: String(v) });

/** The conflux-node settings of a pod, as CONFLUX_* variables (see node/config.ts). */
export function nodeEnv(cluster: ConfluxCluster): V1EnvVar[] {
  const { raft, backup } = cluster.spec;
  const advertise = (port: number) =>
    `$(POD_NAME).${resourceNames(cluster).headlessService}.${cluster.metadata.namespace}.svc:${port}`;
  const env: V1EnvVar[] = [
    // First: the $(POD_NAME) references below resolve only against variables defined before them.
    { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
    // The node makes `<pod>-<8 hex>` at its first start and keeps it in its data dir.
    value('CONFLUX_NODE_ID_PREFIX', '$(POD_NAME)'),
    value('CONFLUX_DATA_DIR', DATA_DIR),
    value('CONFLUX_RAFT_ADDR', `0.0.0.0:${PORTS.raft}`),
    value('CONFLUX_API_ADDR', `0.0.0.0:${PORTS.api}`),
    value('CONFLUX_ADMIN_ADDR', `0.0.0.0:${PORTS.admin}`),
    value('CONFLUX_ADVERTISE_RAFT_ADDR', advertise(PORTS.raft)),
    value('CONFLUX_ADVERTISE_API_ADDR', advertise(PORTS.api)),
    value('CONFLUX_ADVERTISE_ADMIN_ADDR', advertise(PORTS.admin)),
    value('CONFLUX_TICK_MS', raft.tickMs),
    value('CONFLUX_ELECTION_TICKS', raft.electionTicks),
    value('CONFLUX_SNAPSHOT_ENTRIES', raft.snapshotEntries),
  ];
  if (isDevInsecure(cluster)) {
    env.push(value('CONFLUX_DEV_INSECURE', 'true'));
  } else {
    env.push(
      value('CONFLUX_TLS_CERT', `${TLS_DIR}/tls.crt`),
      value('CONFLUX_TLS_KEY', `${TLS_DIR}/tls.key`),
      value('CONFLUX_TLS_CA', `${TLS_DIR}/ca.crt`),
    );
  }
  if (backup) {
    // The node itself streams snapshots to the destination, so it needs the S3 settings.
    const d = backup.destination;
    env.push(value('CONFLUX_BACKUP_DESTINATION', d.uri));
    if (d.endpoint) env.push(value('CONFLUX_S3_ENDPOINT', d.endpoint));
    if (d.region) env.push(value('CONFLUX_S3_REGION', d.region));
    if (d.pathStyle) env.push(value('CONFLUX_S3_PATH_STYLE', 'true'));
    if (backup.retention?.keepLast) env.push(value('CONFLUX_BACKUP_KEEP_LAST', backup.retention.keepLast));
    if (backup.retention?.maxAgeDays) {
      env.push(value('CONFLUX_BACKUP_MAX_AGE_DAYS', backup.retention.maxAgeDays));
    }
    if (d.credentialsSecret) {
      const ref = (key: string) => ({ secretKeyRef: { name: d.credentialsSecret!.name, key } });
      env.push(
        { name: 'AWS_ACCESS_KEY_ID', valueFrom: ref(d.credentialsSecret.accessKeyIdKey) },
        { name: 'AWS_SECRET_ACCESS_KEY', valueFrom: ref(d.credentialsSecret.secretAccessKeyKey) },
      );
    }
  }
  // Last, so a user's variable never shadows one above (the schema refuses the reserved names).
  for (const e of cluster.spec.env ?? []) env.push(value(e.name, e.value));
  return env;
}

function container(cluster: ConfluxCluster): V1Container {
  const { image, imagePullPolicy, resources } = cluster.spec;
  const scheme = isDevInsecure(cluster) ? 'HTTP' : 'HTTPS';
  const probe = (path: string) => ({ httpGet: { path, port: 'api', scheme } });
  return {
    name: CONTAINER_NAME,
    image,
    ...(imagePullPolicy ? { imagePullPolicy } : {}),
    ...(resources ? { resources } : {}),
    env: nodeEnv(cluster),
    ports: (['raft', 'api', 'admin'] as const).map((name) => ({
      name,
      containerPort: PORTS[name],
      protocol: 'TCP',
    })),
    // Opening a large write-ahead log can take a while: liveness starts only after this passes.
    startupProbe: { ...probe('/healthz'), periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 120 },
    readinessProbe: { ...probe('/readyz'), periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3 },
    livenessProbe: { ...probe('/healthz'), periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 },
    volumeMounts: [
      { name: DATA_VOLUME, mountPath: DATA_DIR },
      { name: 'tmp', mountPath: '/tmp' },
      ...(isDevInsecure(cluster) ? [] : [{ name: 'tls', mountPath: TLS_DIR, readOnly: true }]),
    ],
    securityContext: {
      runAsNonRoot: true,
      runAsUser: NODE_UID,
      runAsGroup: NODE_UID,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}

export function buildPodTemplate(cluster: ConfluxCluster): V1PodTemplateSpec {
  const secrets = requiredSecretNames(cluster);
  const template: V1PodTemplateSpec = {
    metadata: { labels: commonLabels(cluster) },
    spec: {
      // The node never talks to the Kubernetes API, and Service links would inject variables
      // (for a cluster named "conflux": CONFLUX_PORT, ...) into its environment.
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 30,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: NODE_UID,
        runAsGroup: NODE_UID,
        fsGroup: NODE_UID,
        fsGroupChangePolicy: 'OnRootMismatch',
        seccompProfile: { type: 'RuntimeDefault' },
      },
      affinity: {
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 100,
              podAffinityTerm: {
                topologyKey: 'kubernetes.io/hostname',
                labelSelector: { matchLabels: selectorLabels(cluster) },
              },
            },
          ],
        },
      },
      containers: [container(cluster)],
      volumes: [
        { name: 'tmp', emptyDir: {} },
        // 0440: readable by the fsGroup the node runs in, never by others.
        ...(secrets ? [{ name: 'tls', secret: { secretName: secrets.node, defaultMode: 0o440 } }] : []),
      ],
    },
  };
  const hash = objectHash(template);
  template.metadata = {
    ...template.metadata,
    annotations: { ...template.metadata?.annotations, [POD_TEMPLATE_HASH_ANNOTATION]: hash },
  };
  return template;
}

export function buildStatefulSet(cluster: ConfluxCluster, size: number): V1StatefulSet {
  if (!(Number.isInteger(size) && size >= 0)) {
    throw new ClusterObjectsError(`StatefulSet size must be an integer >= 0, got ${size}`);
  }
  const { storage } = cluster.spec;
  const template = buildPodTemplate(cluster);
  const metadata = meta(cluster, resourceNames(cluster).statefulSet);
  metadata.annotations = {
    [POD_TEMPLATE_HASH_ANNOTATION]: template.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION] ?? '',
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata,
    spec: {
      serviceName: resourceNames(cluster).headlessService,
      podManagementPolicy: 'Parallel',
      replicas: size,
      selector: { matchLabels: selectorLabels(cluster) },
      // The operator rolls a new template through the members itself (followers first, the
      // leader last after a transfer, never below zero fault tolerance) by deleting one pod at a
      // time; the StatefulSet re-creates a deleted pod from the current template.
      updateStrategy: { type: 'OnDelete' },
      persistentVolumeClaimRetentionPolicy: { whenScaled: storage.reclaimPolicy, whenDeleted: 'Retain' },
      volumeClaimTemplates: [
        {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name: DATA_VOLUME, labels: commonLabels(cluster) },
          spec: {
            accessModes: ['ReadWriteOnce'],
            resources: { requests: { storage: storage.size } },
            ...(storage.storageClassName ? { storageClassName: storage.storageClassName } : {}),
          },
        },
      ],
      template,
    },
  };
}

/**
 * A StatefulSet to apply over `existing`: the fields Kubernetes refuses to change (the volume
 * claim templates, selector, serviceName, podManagementPolicy) are kept as they are, so a changed
 * spec.storage does not make every apply fail. Returns the fields kept that differ, for a report.
 */
export function keepImmutableFields(
  desired: V1StatefulSet,
  existing: V1StatefulSet | null,
): { statefulSet: V1StatefulSet; kept: string[] } {
  if (!existing?.spec || !desired.spec) return { statefulSet: desired, kept: [] };
  const spec = { ...desired.spec };
  const kept: string[] = [];
  const claim = (s: V1StatefulSet) =>
    (s.spec?.volumeClaimTemplates ?? []).map((t) => ({
      name: t.metadata?.name,
      storage: t.spec?.resources?.requests?.storage,
      storageClassName: t.spec?.storageClassName,
    }));
  if (JSON.stringify(claim(desired)) !== JSON.stringify(claim(existing))) {
    kept.push('volumeClaimTemplates');
  }
  if (existing.spec.volumeClaimTemplates) {
    // Only the parts that are ours: the API server fills in status and defaults.
    spec.volumeClaimTemplates = existing.spec.volumeClaimTemplates.map((t) => ({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: {
        name: t.metadata?.name ?? DATA_VOLUME,
        ...(t.metadata?.labels ? { labels: t.metadata.labels } : {}),
      },
      ...(t.spec ? { spec: t.spec } : {}),
    }));
  }
  if (existing.spec.serviceName !== undefined && existing.spec.serviceName !== spec.serviceName) {
    kept.push('serviceName');
    spec.serviceName = existing.spec.serviceName;
  }
  if (existing.spec.podManagementPolicy && existing.spec.podManagementPolicy !== spec.podManagementPolicy) {
    kept.push('podManagementPolicy');
    spec.podManagementPolicy = existing.spec.podManagementPolicy;
  }
  return { statefulSet: { ...desired, spec }, kept };
}

export interface ClusterObjects {
  headlessService: V1Service;
  clientService: V1Service;
  statefulSet: V1StatefulSet;
  podDisruptionBudget: V1PodDisruptionBudget;
}

/** Everything a cluster owns except the TLS Secrets (they need generated material). */
export function buildClusterObjects(
  cluster: ConfluxCluster,
  size: number,
  minAvailable?: number,
): ClusterObjects {
  return {
    headlessService: buildHeadlessService(cluster),
    clientService: buildClientService(cluster),
    statefulSet: buildStatefulSet(cluster, size),
    podDisruptionBudget: buildPodDisruptionBudget(cluster, minAvailable),
  };
}

/** A short, stable digest of a JSON value (key order as built). */
export function objectHash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}
