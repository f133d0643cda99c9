// The Kubernetes platform: a cluster's members are the pods of its StatefulSet. ensureMembers
// server-side-applies the objects kubernetes-objects.ts builds (after making sure the TLS Secrets
// exist and are current); the rest reads pods, Secrets and the StatefulSet, and deletes PVCs.
// With a KubeCache (kube-cache.ts) every read of an owned object comes from the informers' cache
// (the API server sees one LIST+WATCH per kind, not requests per pass), and every write is
// tracked so the next read sees it; Secrets the operator does not manage are read directly.
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
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1PodDisruptionBudget,
  type V1Secret,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { AdminClientOptions } from '../../node/api/admin-client.js';
import type { ConfluxCluster } from '../api/cluster.js';
import type { CertView, OwnedView } from '../reconcile/types.js';
import { type CachedKind, type KubeCache, trackWrites } from './kube-cache.js';
import { type BoundedClientOptions, boundedApiClient } from './kube-client.js';
import {
  clientCertificateViews,
  followCaRotation,
  syncClientCertificates,
} from './kubernetes-client-certs.js';
import { memberPods, volumeOrdinals } from './kubernetes-members.js';
import {
  buildClusterObjects,
  buildPodTemplate,
  type ClusterObjects,
  isDevInsecure,
  keepImmutableFields,
  labelSelector,
  POD_TEMPLATE_HASH_ANNOTATION,
  podName,
  pvcName,
  requiredSecretNames,
  resourceNames,
  selectorLabels,
} from './kubernetes-objects.js';
import { budgetDrift, budgetMinAvailable, serviceDrift, tlsView } from './kubernetes-owned.js';
import { ensureTlsSecrets } from './kubernetes-tls.js';
import { buildNetworkPolicy, type OperatorIdentity, toClientModel } from './network-policy.js';
import type { MemberPod, Platform } from './platform.js';

export { isOutdated, memberPods, volumeOrdinals } from './kubernetes-members.js';

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
  /** Owned objects read from this watch-backed cache (started by the caller), writes tracked in it. */
  cache?: KubeCache;
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
    this.core = trackWrites(boundedApiClient(o.kubeConfig, CoreV1Api, o.api), o.cache);
    this.apps = trackWrites(boundedApiClient(o.kubeConfig, AppsV1Api, o.api), o.cache);
    this.policy = trackWrites(boundedApiClient(o.kubeConfig, PolicyV1Api, o.api), o.cache);
    this.networking = trackWrites(boundedApiClient(o.kubeConfig, NetworkingV1Api, o.api), o.cache);
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
    const managed = cluster.spec.tls.operatorManaged;
    const secret = (name: string | undefined) =>
      name ? this.readSecret(namespace, name, managed) : Promise.resolve(null);
    const [headless, client, pdb, ca, node, admin] = await Promise.all([
      this.read('Service', namespace, names.headlessService, () =>
        this.core.readNamespacedService({ name: names.headlessService, namespace }),
      ),
      this.read('Service', namespace, names.clientService, () =>
        this.core.readNamespacedService({ name: names.clientService, namespace }),
      ),
      this.read<V1PodDisruptionBudget>('PodDisruptionBudget', namespace, names.podDisruptionBudget, () =>
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

  async observeClientCertificates(cluster: ConfluxCluster): Promise<Record<string, CertView>> {
    const namespace = cluster.metadata.namespace;
    const caName = resourceNames(cluster).caSecret;
    const [secrets, ca] = await Promise.all([
      this.list<V1Secret>('Secret', cluster, async () => {
        const selector = labelSelector(cluster);
        return (await this.core.listNamespacedSecret({ namespace, labelSelector: selector })).items;
      }),
      caName ? this.readSecret(namespace, caName, true) : null,
    ]);
    return clientCertificateViews(cluster, secrets, ca, this.now());
  }

  async syncClientCertificates(cluster: ConfluxCluster, issue: string[], remove: string[]): Promise<void> {
    const o = { now: this.now(), fieldManager: FIELD_MANAGER };
    await syncClientCertificates(this.core, cluster, issue, remove, o);
  }

  async rotateCa(cluster: ConfluxCluster, step: 'start' | 'promote' | 'finish'): Promise<void> {
    const log = this.log.child({ cluster: cluster.metadata.name, namespace: cluster.metadata.namespace });
    await this.ensureTls(cluster, log, step);
    await followCaRotation(this.core, cluster, { now: this.now(), fieldManager: FIELD_MANAGER });
  }

  async setSize(cluster: ConfluxCluster): Promise<number> {
    const sts = await this.readStatefulSet(cluster);
    // The API server defaults replicas to 1, so it is absent only from hand-made objects.
    return sts ? (sts.spec?.replicas ?? 1) : 0;
  }

  async pods(cluster: ConfluxCluster): Promise<MemberPod[]> {
    const [sts, items] = await Promise.all([
      this.readStatefulSet(cluster),
      this.list<V1Pod>(
        'Pod',
        cluster,
        async () =>
          (
            await this.core.listNamespacedPod({
              namespace: cluster.metadata.namespace,
              labelSelector: labelSelector(cluster),
            })
          ).items,
      ),
    ]);
    const size = sts ? (sts.spec?.replicas ?? 1) : 0;
    const revisions = { desired: this.revisionFor(cluster), set: sts };
    return memberPods(cluster, size, items, this.o.memberHost, revisions);
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
    const items = await this.list<V1PersistentVolumeClaim>(
      'PersistentVolumeClaim',
      cluster,
      async () =>
        (
          await this.core.listNamespacedPersistentVolumeClaim({
            namespace: cluster.metadata.namespace,
            labelSelector: labelSelector(cluster),
          })
        ).items,
    );
    return volumeOrdinals(
      cluster,
      items.filter((pvc) => !pvc.metadata?.deletionTimestamp).map((pvc) => pvc.metadata?.name ?? ''),
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
    const managed = cluster.spec.tls.operatorManaged;
    let admin = await this.readSecret(namespace, names.admin, managed);
    if (!admin && issue && managed) {
      await this.ensureTls(cluster, this.log.child({ cluster: cluster.metadata.name, namespace }));
      admin = await this.readSecret(namespace, names.admin, managed);
    }
    if (!admin) throw new Error(`admin client Secret ${namespace}/${names.admin} not found`);
    const cert = secretText(admin, 'tls.crt');
    const key = secretText(admin, 'tls.key');
    if (!cert || !key) throw new Error(`Secret ${namespace}/${names.admin} lacks tls.crt or tls.key`);
    let ca = secretText(admin, 'ca.crt');
    if (!ca) {
      const node = await this.readSecret(namespace, names.node, managed);
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
    const secret = await this.readSecret(namespace, ref.name, false);
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
      readSecret: (ns, name) => this.readSecret(ns, name, cluster.spec.tls.operatorManaged),
      ...(this.o.clusterDomain ? { clusterDomain: this.o.clusterDomain } : {}),
      ...(rotationStep ? { rotationStep } : {}),
    });
  }

  private readStatefulSet(cluster: ConfluxCluster): Promise<V1StatefulSet | null> {
    const name = resourceNames(cluster).statefulSet;
    const namespace = cluster.metadata.namespace;
    return this.read('StatefulSet', namespace, name, () =>
      this.apps.readNamespacedStatefulSet({ name, namespace }),
    );
  }

  /** A Secret; one the operator manages (and so labels) from the cache, any other from the API server. */
  private readSecret(namespace: string, name: string, managed: boolean): Promise<V1Secret | null> {
    const direct = () => this.core.readNamespacedSecret({ name, namespace });
    return managed ? this.read('Secret', namespace, name, direct) : orNull(direct);
  }

  /** An owned object from the cache when it can answer, else from the API server (null: not found). */
  private async read<T>(kind: CachedKind, namespace: string, name: string, direct: () => Promise<T>) {
    const cached = await this.o.cache?.get<T>(kind, namespace, name);
    return cached !== undefined ? cached : orNull(direct);
  }

  /** The cluster's objects of `kind` from the cache when it can answer, else from the API server. */
  private async list<T>(kind: CachedKind, cluster: ConfluxCluster, direct: () => Promise<T[]>) {
    const cached = await this.o.cache?.list<T>(kind, cluster.metadata.namespace, selectorLabels(cluster));
    return cached ?? direct();
  }
}

/** Request options that make a typed `patch*` call a server-side apply. */
const APPLY = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

/** The object `read` returns, or null when the API server answers 404. */
async function orNull<T>(read: () => Promise<T>): Promise<T | null> {
  try {
    return await read();
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404;
}

/** A Secret value as text (Secrets carry base64 in `data`). */
export function secretText(secret: V1Secret, key: string): string | undefined {
  const raw = secret.data?.[key];
  if (raw !== undefined) return Buffer.from(raw, 'base64').toString('utf8');
  return secret.stringData?.[key];
}
