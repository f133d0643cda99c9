// The Kubernetes platform: a cluster's members are the pods of its StatefulSet. ensureMembers
// server-side-applies the objects kubernetes-objects.ts builds (after making sure the TLS Secrets
// exist and are current); the rest reads pods, Secrets and the StatefulSet, and deletes PVCs.
//
// Only typed client-node APIs are used (no discovery requests), so an API stand-in needs to serve
// just the paths called here.

import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  NetworkingV1Api,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type V1Pod,
  type V1Secret,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { AdminClientOptions } from '../../node/api/admin-client.js';
import type { ConfluxCluster } from '../api/cluster.js';
import type { OwnedView } from '../reconcile/types.js';
import { type BoundedClientOptions, boundedApiClient } from './kube-client.js';
import {
  buildClusterObjects,
  buildPodTemplate,
  type ClusterObjects,
  DATA_VOLUME,
  isDevInsecure,
  keepImmutableFields,
  labelSelector,
  POD_TEMPLATE_HASH_ANNOTATION,
  PORTS,
  podHost,
  podName,
  pvcName,
  requiredSecretNames,
  resourceNames,
} from './kubernetes-objects.js';
import { budgetDrift, budgetMinAvailable, serviceDrift, tlsView } from './kubernetes-owned.js';
import { ensureTlsSecrets } from './kubernetes-tls.js';
import { buildNetworkPolicy, type OperatorIdentity, toClientModel } from './network-policy.js';
import type { MemberPod, Platform } from './platform.js';

/** The field manager of every server-side apply (and the owner of the fields it sets). */
export const FIELD_MANAGER = 'conflux-operator';
const DEFAULT_ADMIN_TIMEOUT_MS = 10_000;

export interface KubernetesPlatformOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** For the node certificate's names (default cluster.local). */
  clusterDomain?: string;
  /** Timeout of admin API calls (default 10 s). */
  adminTimeoutMs?: number;
  now?: () => Date;
  /**
   * The host part of a member's addresses (default: `<pod>.<name>-headless.<ns>.svc`, which
   * needs the operator to run inside the cluster). An API stand-in may map pods elsewhere.
   */
  memberHost?: (cluster: ConfluxCluster, pod: V1Pod | undefined, podName: string) => string;
  /** Every request bounded by a timeout (kube-client.ts); `onRequest` counts them. */
  api?: BoundedClientOptions;
  /** memberHost maps pods to their IPs: TLS clusters are refused (certificates name pods by DNS). */
  podIpAddresses?: boolean;
  /**
   * Where the operator runs: given, every cluster also gets a NetworkPolicy admitting peers on
   * every port, the operator's pods on the admin port and labelled clients on the client API
   * (network-policy.ts).
   */
  networkPolicy?: OperatorIdentity;
}

export class KubernetesPlatform implements Platform {
  readonly kind = 'kubernetes' as const;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly policy: PolicyV1Api;
  private readonly networking: NetworkingV1Api;
  private readonly log: Logger;
  private readonly now: () => Date;

  constructor(private readonly o: KubernetesPlatformOptions) {
    this.core = boundedApiClient(o.kubeConfig, CoreV1Api, o.api);
    this.apps = boundedApiClient(o.kubeConfig, AppsV1Api, o.api);
    this.policy = boundedApiClient(o.kubeConfig, PolicyV1Api, o.api);
    this.networking = o.kubeConfig.makeApiClient(NetworkingV1Api);
    this.log = o.logger.child({ component: 'kubernetes-platform' });
    this.now = o.now ?? (() => new Date());
  }

  async ensureMembers(cluster: ConfluxCluster, size: number, minAvailable?: number): Promise<void> {
    const namespace = cluster.metadata.namespace;
    const log = this.log.child({ cluster: cluster.metadata.name, namespace });
    await this.ensureTls(cluster, log);
    const objects = buildClusterObjects(cluster, size, minAvailable);
    const existing = await this.readStatefulSet(cluster);
    const { statefulSet, kept } = keepImmutableFields(objects.statefulSet, existing);
    if (kept.length > 0) {
      log.warn({ kept }, 'StatefulSet fields Kubernetes cannot change were left as they are');
    }
    await this.applyCompanions(objects);
    await this.applyNetworkPolicy(cluster);
    await this.apps.patchNamespacedStatefulSet(
      {
        name: statefulSet.metadata!.name!,
        namespace,
        body: statefulSet,
        fieldManager: FIELD_MANAGER,
        force: true,
      },
      APPLY,
    );
  }

  /** The Services and the disruption budget, server-side applied. */
  private async applyCompanions(objects: ClusterObjects): Promise<void> {
    for (const service of [objects.headlessService, objects.clientService]) {
      const { name, namespace } = service.metadata as { name: string; namespace: string };
      await this.core.patchNamespacedService(
        { name, namespace, body: service, fieldManager: FIELD_MANAGER, force: true },
        APPLY,
      );
    }
    const pdb = objects.podDisruptionBudget;
    const { name, namespace } = pdb.metadata as { name: string; namespace: string };
    await this.policy.patchNamespacedPodDisruptionBudget(
      { name, namespace, body: pdb, fieldManager: FIELD_MANAGER, force: true },
      APPLY,
    );
  }

  /** The members' NetworkPolicy, server-side applied, when the operator was told where it runs. */
  private async applyNetworkPolicy(cluster: ConfluxCluster): Promise<void> {
    if (!this.o.networkPolicy) return;
    const body = toClientModel(buildNetworkPolicy(cluster, this.o.networkPolicy));
    const { name, namespace } = body.metadata as { name: string; namespace: string };
    await this.networking.patchNamespacedNetworkPolicy(
      { name, namespace, body, fieldManager: FIELD_MANAGER, force: true },
      APPLY,
    );
  }

  async observeOwned(cluster: ConfluxCluster): Promise<OwnedView> {
    const namespace = cluster.metadata.namespace;
    const names = resourceNames(cluster);
    const objects = buildClusterObjects(cluster, 0);
    const read = <T>(get: () => Promise<T>) =>
      get().catch((err: unknown) => {
        if (isNotFound(err)) return null;
        throw err;
      });
    const secret = (name: string | undefined) =>
      name ? this.readSecret(namespace, name) : Promise.resolve(null);
    const [headless, client, pdb, ca, node, admin] = await Promise.all([
      read(() => this.core.readNamespacedService({ name: names.headlessService, namespace })),
      read(() => this.core.readNamespacedService({ name: names.clientService, namespace })),
      read(() =>
        this.policy.readNamespacedPodDisruptionBudget({ name: names.podDisruptionBudget, namespace }),
      ),
      secret(names.caSecret),
      secret(names.nodeSecret),
      secret(names.adminSecret),
    ]);
    const drift = [
      serviceDrift(objects.headlessService, headless),
      serviceDrift(objects.clientService, client),
      budgetDrift(objects.podDisruptionBudget, pdb),
    ].filter((d): d is string => d !== null);
    const dev = isDevInsecure(cluster);
    return {
      drift,
      pdbMinAvailable: budgetMinAvailable(pdb),
      tls: dev ? null : tlsView(cluster, { ca, node, admin }, this.o.clusterDomain),
      unsupported:
        this.o.podIpAddresses && !dev
          ? [
              'the operator reaches members by pod IP (--member-address pod-ip), but member certificates name pods by DNS only, so TLS cannot verify them: run the operator with --member-address dns, or this cluster without TLS',
            ]
          : [],
    };
  }

  async repairOwned(cluster: ConfluxCluster, minAvailable: number): Promise<void> {
    const log = this.log.child({ cluster: cluster.metadata.name, namespace: cluster.metadata.namespace });
    await this.ensureTls(cluster, log);
    await this.applyCompanions(buildClusterObjects(cluster, 0, minAvailable));
    await this.applyNetworkPolicy(cluster);
  }

  async renewCertificates(cluster: ConfluxCluster): Promise<void> {
    await this.ensureTls(
      cluster,
      this.log.child({ cluster: cluster.metadata.name, namespace: cluster.metadata.namespace }),
    );
  }

  async rotateCa(cluster: ConfluxCluster, step: 'start' | 'promote' | 'finish'): Promise<void> {
    const log = this.log.child({ cluster: cluster.metadata.name, namespace: cluster.metadata.namespace });
    await this.ensureTls(cluster, log, step);
  }

  async setSize(cluster: ConfluxCluster): Promise<number> {
    const sts = await this.readStatefulSet(cluster);
    // The API server defaults replicas to 1, so it is absent only from hand-made objects.
    return sts ? (sts.spec?.replicas ?? 1) : 0;
  }

  async pods(cluster: ConfluxCluster): Promise<MemberPod[]> {
    const [sts, list] = await Promise.all([
      this.readStatefulSet(cluster),
      this.core.listNamespacedPod({
        namespace: cluster.metadata.namespace,
        labelSelector: labelSelector(cluster),
      }),
    ]);
    const size = sts ? (sts.spec?.replicas ?? 1) : 0;
    const revisions = { desired: this.revisionFor(cluster), set: sts };
    return memberPods(cluster, size, list.items, this.o.memberHost, revisions);
  }

  async templateRevision(cluster: ConfluxCluster): Promise<string> {
    return this.revisionFor(cluster);
  }

  /**
   * Delete the member's pod; the StatefulSet (OnDelete) re-creates it from its template on the
   * same claim. The template is brought up to date first when the spec changed since it was applied.
   */
  async restartMember(cluster: ConfluxCluster, ordinal: number): Promise<void> {
    const sts = await this.readStatefulSet(cluster);
    const size = sts ? (sts.spec?.replicas ?? 1) : 0;
    if (!(Number.isInteger(ordinal) && ordinal >= 0 && ordinal < size)) {
      throw new Error(`slot ${ordinal} is not in the set (size ${size})`);
    }
    const desired = this.revisionFor(cluster);
    if (sts?.spec?.template?.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION] !== desired) {
      await this.ensureMembers(cluster, size);
    }
    const name = podName(cluster, ordinal);
    try {
      await this.core.deleteNamespacedPod({ name, namespace: cluster.metadata.namespace });
      this.log.info(
        { cluster: cluster.metadata.name, pod: name, revision: desired },
        'deleted pod to roll it',
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Delete the member's claim, then its pod: the StatefulSet re-creates the pod with a new, empty
   * claim (the old claim goes once no pod uses it), so its node starts pristine with a new id.
   */
  async recreateMember(cluster: ConfluxCluster, ordinal: number): Promise<void> {
    const size = await this.setSize(cluster);
    if (!(Number.isInteger(ordinal) && ordinal >= 0 && ordinal < size)) {
      throw new Error(`slot ${ordinal} is not in the set (size ${size})`);
    }
    const namespace = cluster.metadata.namespace;
    for (const remove of [
      () => this.core.deleteNamespacedPersistentVolumeClaim({ name: pvcName(cluster, ordinal), namespace }),
      () => this.core.deleteNamespacedPod({ name: podName(cluster, ordinal), namespace }),
    ]) {
      try {
        await remove();
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    this.log.info(
      { cluster: cluster.metadata.name, ordinal },
      'deleted the claim and pod of a member to wipe it',
    );
  }

  /** The pod template revision of `cluster` now. */
  private revisionFor(cluster: ConfluxCluster): string {
    const template = buildPodTemplate(cluster);
    return template.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION] ?? '';
  }

  /**
   * Ordinals with a PVC `data-<name>-<ordinal>` that carries the cluster's labels (the
   * StatefulSet's claim template sets them). A claim without them is never reported, so never
   * reclaimed; one already being deleted is not reported either.
   */
  async volumes(cluster: ConfluxCluster): Promise<number[]> {
    const list = await this.core.listNamespacedPersistentVolumeClaim({
      namespace: cluster.metadata.namespace,
      labelSelector: labelSelector(cluster),
    });
    return volumeOrdinals(
      cluster,
      list.items.filter((pvc) => !pvc.metadata?.deletionTimestamp).map((pvc) => pvc.metadata?.name ?? ''),
    );
  }

  async deleteVolume(cluster: ConfluxCluster, ordinal: number): Promise<void> {
    if (!(Number.isInteger(ordinal) && ordinal >= 0)) throw new Error(`not an ordinal: ${ordinal}`);
    const size = await this.setSize(cluster);
    const name = pvcName(cluster, ordinal);
    if (ordinal < size) {
      throw new Error(`refusing to delete ${name}: slot ${ordinal} is still in the set (size ${size})`);
    }
    try {
      await this.core.deleteNamespacedPersistentVolumeClaim({ name, namespace: cluster.metadata.namespace });
      this.log.info({ cluster: cluster.metadata.name, pvc: name }, 'deleted the volume of a removed member');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * The operator's TLS client for the members. With operator-managed TLS a missing admin Secret
   * is issued here: a new cluster's first pass observes before ensureMembers ever ran, and a
   * deleted Secret must not leave the cluster unreconcilable.
   */
  async adminClient(cluster: ConfluxCluster): Promise<AdminClientOptions> {
    return this.readAdminClient(cluster, true);
  }

  private async readAdminClient(cluster: ConfluxCluster, issue: boolean): Promise<AdminClientOptions> {
    const timeoutMs = this.o.adminTimeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS;
    const names = requiredSecretNames(cluster);
    if (!names) return { timeoutMs };
    const namespace = cluster.metadata.namespace;
    let admin = await this.readSecret(namespace, names.admin);
    if (!admin && issue && cluster.spec.tls.operatorManaged) {
      await this.ensureTls(cluster, this.log.child({ cluster: cluster.metadata.name, namespace }));
      admin = await this.readSecret(namespace, names.admin);
    }
    if (!admin) throw new Error(`admin client Secret ${namespace}/${names.admin} not found`);
    const cert = secretText(admin, 'tls.crt');
    const key = secretText(admin, 'tls.key');
    if (!cert || !key) throw new Error(`Secret ${namespace}/${names.admin} lacks tls.crt or tls.key`);
    let ca = secretText(admin, 'ca.crt');
    if (!ca) {
      const node = await this.readSecret(namespace, names.node);
      ca = node ? secretText(node, 'ca.crt') : undefined;
    }
    if (!ca) throw new Error(`neither ${names.admin} nor ${names.node} in ${namespace} has a ca.crt`);
    return { tls: { cert, key, ca }, timeoutMs };
  }

  async backupCredentials(
    cluster: ConfluxCluster,
  ): Promise<{ accessKeyId: string; secretAccessKey: string } | undefined> {
    const ref = cluster.spec.backup?.destination.credentialsSecret;
    if (!ref) return undefined;
    const namespace = cluster.metadata.namespace;
    const secret = await this.readSecret(namespace, ref.name);
    if (!secret) throw new Error(`backup credentials Secret ${namespace}/${ref.name} not found`);
    const accessKeyId = secretText(secret, ref.accessKeyIdKey);
    const secretAccessKey = secretText(secret, ref.secretAccessKeyKey);
    if (!accessKeyId || !secretAccessKey) {
      throw new Error(
        `Secret ${namespace}/${ref.name} lacks ${!accessKeyId ? ref.accessKeyIdKey : ref.secretAccessKeyKey}`,
      );
    }
    return { accessKeyId, secretAccessKey };
  }

  /** Makes the TLS Secrets current (kubernetes-tls.ts), one CA rotation step first when given. */
  private async ensureTls(
    cluster: ConfluxCluster,
    log: Logger,
    rotationStep?: 'start' | 'promote' | 'finish',
  ): Promise<void> {
    await ensureTlsSecrets(this.core, cluster, {
      now: this.now(),
      log,
      fieldManager: FIELD_MANAGER,
      ...(this.o.clusterDomain ? { clusterDomain: this.o.clusterDomain } : {}),
      ...(rotationStep ? { rotationStep } : {}),
    });
  }

  private async readStatefulSet(cluster: ConfluxCluster): Promise<V1StatefulSet | null> {
    try {
      return await this.apps.readNamespacedStatefulSet({
        name: resourceNames(cluster).statefulSet,
        namespace: cluster.metadata.namespace,
      });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  private async readSecret(namespace: string, name: string): Promise<V1Secret | null> {
    try {
      return await this.core.readNamespacedSecret({ name, namespace });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }
}

/** Request options that make a typed `patch*` call a server-side apply. */
const APPLY = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404;
}

/** A Secret value as text (Secrets carry base64 in `data`). */
export function secretText(secret: V1Secret, key: string): string | undefined {
  const raw = secret.data?.[key];
  if (raw !== undefined) return Buffer.from(raw, 'base64').toString('utf8');
  return secret.stringData?.[key];
}

/** The ordinals of the names that are `data-<name>-<ordinal>`, sorted. */
export function volumeOrdinals(cluster: ConfluxCluster, pvcNames: string[]): number[] {
  const prefix = `${DATA_VOLUME}-${cluster.metadata.name}-`;
  return pvcNames
    .filter((n) => n.startsWith(prefix) && /^(0|[1-9]\d*)$/.test(n.slice(prefix.length)))
    .map((n) => Number(n.slice(prefix.length)))
    .sort((a, b) => a - b);
}

/**
 * The member slots of a cluster from its pods: every ordinal below the set size (a pod that does
 * not exist yet is a slot that is not running), and any pod left beyond it (still terminating).
 */
export function memberPods(
  cluster: ConfluxCluster,
  setSize: number,
  pods: V1Pod[],
  memberHost?: (cluster: ConfluxCluster, pod: V1Pod | undefined, podName: string) => string,
  revisions?: { desired: string; set: V1StatefulSet | null },
): MemberPod[] {
  const prefix = `${cluster.metadata.name}-`;
  const byOrdinal = new Map<number, V1Pod>();
  for (const pod of pods) {
    const name = pod.metadata?.name ?? '';
    const rest = name.startsWith(prefix) ? name.slice(prefix.length) : '';
    if (!/^(0|[1-9]\d*)$/.test(rest)) continue;
    const owner = pod.metadata?.ownerReferences?.find((r) => r.controller);
    if (owner && (owner.kind !== 'StatefulSet' || owner.name !== resourceNames(cluster).statefulSet))
      continue;
    byOrdinal.set(Number(rest), pod);
  }
  const ordinals = new Set([...Array.from({ length: setSize }, (_, i) => i), ...byOrdinal.keys()]);
  return [...ordinals]
    .sort((a, b) => a - b)
    .map((ordinal) => {
      const pod = byOrdinal.get(ordinal);
      const name = podName(cluster, ordinal);
      const host = memberHost ? memberHost(cluster, pod, name) : podHost(cluster, name);
      const running = pod?.status?.phase === 'Running' && !pod.metadata?.deletionTimestamp;
      // A terminating pod may still report Ready; it is on its way out, so it counts as neither.
      const ready =
        running && (pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
      const revision = pod?.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION];
      return {
        ordinal,
        name,
        running,
        ready,
        ...(revision === undefined ? {} : { revision }),
        ...(revisions && pod ? { outdated: isOutdated(pod, revisions.desired, revisions.set) } : {}),
        addresses: {
          api: `${host}:${PORTS.api}`,
          raft: `${host}:${PORTS.raft}`,
          admin: `${host}:${PORTS.admin}`,
        },
      };
    });
}

const REVISION_LABEL = 'controller-revision-hash';

/**
 * A pod runs an older template than the spec asks for: its template digest differs, or (once the
 * StatefulSet controller has seen the set's current generation) its controller-revision-hash is
 * not the set's updateRevision.
 */
export function isOutdated(pod: V1Pod, desired: string, set: V1StatefulSet | null): boolean {
  if (pod.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION] !== desired) return true;
  const status = set?.status;
  const label = pod.metadata?.labels?.[REVISION_LABEL];
  const seen =
    status?.observedGeneration !== undefined && status.observedGeneration === set?.metadata?.generation;
  return seen && !!status?.updateRevision && label !== undefined && label !== status.updateRevision;
}
