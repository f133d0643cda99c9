// The StatefulSet-controller half of the pod runner (level-triggered: every pass gets the full
// lists of StatefulSets, pods and PVCs and makes one round of changes towards the spec).
//
// - Pods `<sts>-<ordinal>` for ordinals 0..replicas-1, carrying the template's labels and
//   annotations plus `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and
//   `controller-revision-hash`, a controller ownerReference to the set, `spec.hostname` (the pod
//   name), `spec.subdomain` (serviceName), `spec.nodeName` (the runner's node), and one
//   persistentVolumeClaim volume per claim template. podManagementPolicy Parallel creates and
//   deletes all at once; OrderedReady one at a time, waiting for Running and Ready.
// - PVCs `<claim>-<sts>-<ordinal>` from the volumeClaimTemplates when absent, with the template's
//   labels and the selector's. persistentVolumeClaimRetentionPolicy: whenScaled Delete deletes the
//   PVCs of an ordinal that scale-down removed once its pod is gone; whenDeleted Delete deletes a
//   deleted set's PVCs. Retain (the default) keeps them.
// - RollingUpdate: when every pod exists and is Ready, the highest ordinal (>= partition) whose
//   revision is not the template's current one is deleted (and so re-created from the template).
//   OnDelete: a changed template replaces no pod; a pod deleted by someone else (the Conflux
//   operator rolls this way) is re-created from the current template, labelled with its revision.
// - Garbage collection: pods whose controlling StatefulSet is gone are deleted (the API stand-in
//   has its own garbage collector; doing it here too is harmless and covers servers without one).
// - Status: replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas,
//   currentRevision, updateRevision, observedGeneration.

import { createHash } from 'node:crypto';
import type {
  AppsV1Api,
  CoreV1Api,
  V1PersistentVolumeClaim,
  V1Pod,
  V1StatefulSet,
  V1StatefulSetStatus,
  V1Volume,
} from '@kubernetes/client-node';
import { ApiException } from '@kubernetes/client-node';
import { isNotFound } from './pod-runner-kubelet.js';

export interface StatefulSetControllerOptions {
  core: CoreV1Api;
  apps: AppsV1Api;
  nodeName: string;
  log: (message: string) => void;
}

const REVISION_LABEL = 'controller-revision-hash';
const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';
const POD_INDEX_LABEL = 'apps.kubernetes.io/pod-index';

const errText = (err: unknown) =>
  err instanceof ApiException ? `HTTP ${err.code}: ${String(err.body).slice(0, 300)}` : String(err);

interface KnownSet {
  namespace: string;
  name: string;
  claims: string[];
  whenDeleted: string;
}

export class StatefulSetController {
  /** Sets seen (by uid), to apply whenDeleted when one disappears. */
  private readonly known = new Map<string, KnownSet>();
  /** `<ns>/<sts>/<ordinal>` removed by scale-down under whenScaled Delete: PVCs to delete once the pod is gone. */
  private readonly condemned = new Map<
    string,
    { namespace: string; name: string; ordinal: number; claims: string[] }
  >();

  constructor(private readonly o: StatefulSetControllerOptions) {}

  async sync(sets: V1StatefulSet[], pods: V1Pod[], claims: V1PersistentVolumeClaim[]): Promise<void> {
    // `<ns>/<name>` -> whether it is being deleted.
    const claimNames = new Map(
      claims.map((c) => [`${c.metadata?.namespace}/${c.metadata?.name}`, !!c.metadata?.deletionTimestamp]),
    );
    const uids = new Set<string>();
    for (const sts of sets) {
      const uid = sts.metadata?.uid ?? `${sts.metadata?.namespace}/${sts.metadata?.name}`;
      uids.add(uid);
      this.known.set(uid, {
        namespace: sts.metadata?.namespace ?? 'default',
        name: sts.metadata?.name ?? '',
        claims: (sts.spec?.volumeClaimTemplates ?? []).map((t) => t.metadata?.name ?? ''),
        whenDeleted: sts.spec?.persistentVolumeClaimRetentionPolicy?.whenDeleted ?? 'Retain',
      });
      try {
        await this.syncSet(sts, pods, claimNames);
      } catch (err) {
        this.o.log(`StatefulSet ${sts.metadata?.namespace}/${sts.metadata?.name}: ${errText(err)}`);
      }
    }
    await this.collectGarbage(sets, pods, uids);
  }

  private async syncSet(
    sts: V1StatefulSet,
    allPods: V1Pod[],
    claimNames: Map<string, boolean>,
  ): Promise<void> {
    const namespace = sts.metadata?.namespace ?? 'default';
    const name = sts.metadata?.name ?? '';
    if (sts.metadata?.deletionTimestamp) return;
    const spec = sts.spec;
    if (!spec) return;
    const replicas = spec.replicas ?? 1;
    const parallel = spec.podManagementPolicy === 'Parallel';
    const revision = `${name}-${templateHash(sts)}`;
    const claimTemplates = spec.volumeClaimTemplates ?? [];
    const whenScaled = spec.persistentVolumeClaimRetentionPolicy?.whenScaled ?? 'Retain';

    const byOrdinal = new Map<number, V1Pod>();
    for (const pod of allPods) {
      if (pod.metadata?.namespace !== namespace) continue;
      const ordinal = ordinalOf(name, pod.metadata?.name);
      if (ordinal === undefined || !ownedBy(pod, sts)) continue;
      byOrdinal.set(ordinal, pod);
    }
    const terminating = [...byOrdinal.values()].some((p) => p.metadata?.deletionTimestamp);
    const isReady = (p: V1Pod | undefined) =>
      !!p &&
      !p.metadata?.deletionTimestamp &&
      p.status?.phase === 'Running' &&
      (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

    // Scale-down first, highest ordinal first.
    const condemnedPods = [...byOrdinal.entries()].filter(([o]) => o >= replicas).sort(([a], [b]) => b - a);
    for (const [ordinal, pod] of condemnedPods) {
      if (whenScaled === 'Delete') {
        this.condemned.set(`${namespace}/${name}/${ordinal}`, {
          namespace,
          name,
          ordinal,
          claims: claimTemplates.map((t) => t.metadata?.name ?? ''),
        });
      }
      if (pod.metadata?.deletionTimestamp) continue;
      if (!parallel && terminating) break;
      this.o.log(`StatefulSet ${namespace}/${name}: scale-down deletes pod ${pod.metadata?.name}`);
      await this.deletePod(namespace, pod.metadata?.name ?? '');
      if (!parallel) break;
    }
    // The PVCs of condemned ordinals whose pods are gone (whenScaled: Delete).
    for (const [key, c] of this.condemned) {
      if (c.namespace !== namespace || c.name !== name) continue;
      if (c.ordinal < replicas) {
        this.condemned.delete(key); // scaled up again before the pod went away: keep the volume
        continue;
      }
      if (byOrdinal.has(c.ordinal)) continue;
      for (const claim of c.claims) {
        const pvc = `${claim}-${name}-${c.ordinal}`;
        if (claimNames.get(`${namespace}/${pvc}`) !== false) continue; // absent, or being deleted
        this.o.log(`StatefulSet ${namespace}/${name}: whenScaled Delete deletes PVC ${pvc}`);
        await this.deleteClaim(namespace, pvc);
      }
      this.condemned.delete(key);
    }

    const ensureClaims = async (ordinal: number) => {
      for (const t of claimTemplates) {
        const pvc = `${t.metadata?.name}-${name}-${ordinal}`;
        if (claimNames.has(`${namespace}/${pvc}`)) continue; // a claim being deleted is re-made once gone
        await this.createClaim(sts, t, pvc);
        claimNames.set(`${namespace}/${pvc}`, false);
      }
    };
    // Creation: Parallel all at once; OrderedReady only when every lower ordinal is Ready.
    for (let ordinal = 0; ordinal < replicas; ordinal++) {
      const existing = byOrdinal.get(ordinal);
      if (existing) {
        // A pod waiting for its volume (say, a claim deleted under it) gets a new claim.
        const phase = existing.status?.phase;
        if (!existing.metadata?.deletionTimestamp && (!phase || phase === 'Pending'))
          await ensureClaims(ordinal);
        if (!parallel && !isReady(existing)) break;
        continue;
      }
      if (!parallel && terminating) break;
      await ensureClaims(ordinal);
      await this.createPod(sts, ordinal, revision);
      if (!parallel) break;
    }

    // Rolling update: one pod at a time, highest ordinal first, only when all are Ready.
    const strategy = spec.updateStrategy?.type ?? 'RollingUpdate';
    if (strategy === 'RollingUpdate' && !terminating) {
      const partition = spec.updateStrategy?.rollingUpdate?.partition ?? 0;
      const inRange = [...Array(replicas).keys()].map((o) => byOrdinal.get(o));
      if (inRange.every(isReady)) {
        for (let ordinal = replicas - 1; ordinal >= partition; ordinal--) {
          const pod = byOrdinal.get(ordinal);
          if (pod && pod.metadata?.labels?.[REVISION_LABEL] !== revision) {
            this.o.log(`StatefulSet ${namespace}/${name}: rolling update deletes pod ${pod.metadata?.name}`);
            await this.deletePod(namespace, pod.metadata?.name ?? '');
            break;
          }
        }
      }
    }

    await this.writeStatus(sts, byOrdinal, revision, isReady);
  }

  private async writeStatus(
    sts: V1StatefulSet,
    byOrdinal: Map<number, V1Pod>,
    revision: string,
    isReady: (p: V1Pod | undefined) => boolean,
  ): Promise<void> {
    const pods = [...byOrdinal.values()].filter((p) => !p.metadata?.deletionTimestamp);
    const updated = pods.filter((p) => p.metadata?.labels?.[REVISION_LABEL] === revision).length;
    const replicas = sts.spec?.replicas ?? 1;
    const previous = sts.status;
    const currentRevision =
      updated === pods.length && pods.length === replicas
        ? revision
        : (previous?.currentRevision ?? revision);
    const ready = pods.filter(isReady).length;
    const status: V1StatefulSetStatus = {
      ...(sts.metadata?.generation !== undefined ? { observedGeneration: sts.metadata.generation } : {}),
      replicas: pods.length,
      readyReplicas: ready,
      availableReplicas: ready,
      currentReplicas: pods.filter((p) => p.metadata?.labels?.[REVISION_LABEL] === currentRevision).length,
      updatedReplicas: updated,
      currentRevision,
      updateRevision: revision,
      collisionCount: previous?.collisionCount ?? 0,
    };
    const same = (Object.keys(status) as (keyof V1StatefulSetStatus)[]).every(
      (k) => previous?.[k] === status[k],
    );
    if (same) return;
    try {
      await this.o.apps.replaceNamespacedStatefulSetStatus({
        name: sts.metadata?.name ?? '',
        namespace: sts.metadata?.namespace ?? 'default',
        body: { ...sts, status: { ...previous, ...status } },
      });
    } catch (err) {
      // A conflict means a newer object: the next pass writes against it.
      if (!(err instanceof ApiException && (err.code === 409 || err.code === 404))) throw err;
    }
  }

  private async createClaim(
    sts: V1StatefulSet,
    template: V1PersistentVolumeClaim,
    pvc: string,
  ): Promise<void> {
    const namespace = sts.metadata?.namespace ?? 'default';
    const whenDeleted = sts.spec?.persistentVolumeClaimRetentionPolicy?.whenDeleted ?? 'Retain';
    this.o.log(`StatefulSet ${namespace}/${sts.metadata?.name}: creating PVC ${pvc}`);
    try {
      const created = await this.o.core.createNamespacedPersistentVolumeClaim({
        namespace,
        body: {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: {
            name: pvc,
            namespace,
            labels: { ...template.metadata?.labels, ...sts.spec?.selector?.matchLabels },
            ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
            ...(whenDeleted === 'Delete' && sts.metadata?.uid
              ? {
                  ownerReferences: [
                    {
                      apiVersion: 'apps/v1',
                      kind: 'StatefulSet',
                      name: sts.metadata.name ?? '',
                      uid: sts.metadata.uid,
                      blockOwnerDeletion: true,
                    },
                  ],
                }
              : {}),
          },
          spec: template.spec ?? {},
        },
      });
      // Bound at once (a hostPath-like provisioner); best effort, the stand-in may not serve it.
      await this.o.core
        .replaceNamespacedPersistentVolumeClaimStatus({
          name: pvc,
          namespace,
          body: {
            ...created,
            status: {
              phase: 'Bound',
              accessModes: template.spec?.accessModes ?? ['ReadWriteOnce'],
              capacity: template.spec?.resources?.requests ?? {},
            },
          },
        })
        .catch(() => undefined);
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 409)) throw err;
    }
  }

  private async createPod(sts: V1StatefulSet, ordinal: number, revision: string): Promise<void> {
    const namespace = sts.metadata?.namespace ?? 'default';
    const setName = sts.metadata?.name ?? '';
    const name = `${setName}-${ordinal}`;
    const template = sts.spec?.template;
    const claims = (sts.spec?.volumeClaimTemplates ?? []).map((t) => t.metadata?.name ?? '');
    const volumes: V1Volume[] = [
      ...(template?.spec?.volumes ?? []).filter((v) => !claims.includes(v.name)),
      ...claims.map((claim) => ({
        name: claim,
        persistentVolumeClaim: { claimName: `${claim}-${setName}-${ordinal}` },
      })),
    ];
    this.o.log(`StatefulSet ${namespace}/${setName}: creating pod ${name}`);
    try {
      await this.o.core.createNamespacedPod({
        namespace,
        body: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name,
            namespace,
            labels: {
              ...template?.metadata?.labels,
              [REVISION_LABEL]: revision,
              [POD_NAME_LABEL]: name,
              [POD_INDEX_LABEL]: String(ordinal),
            },
            ...(template?.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
            ownerReferences: [
              {
                apiVersion: 'apps/v1',
                kind: 'StatefulSet',
                name: setName,
                uid: sts.metadata?.uid ?? '',
                controller: true,
                blockOwnerDeletion: true,
              },
            ],
          },
          spec: {
            ...structuredClone(template?.spec ?? { containers: [] }),
            volumes,
            hostname: name,
            ...(sts.spec?.serviceName ? { subdomain: sts.spec.serviceName } : {}),
            nodeName: this.o.nodeName,
          },
        },
      });
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 409)) throw err;
    }
  }

  /** Pods whose controlling StatefulSet is gone, and the PVCs of deleted sets with whenDeleted Delete. */
  private async collectGarbage(sets: V1StatefulSet[], pods: V1Pod[], uids: Set<string>): Promise<void> {
    const deleting = new Set(sets.filter((s) => s.metadata?.deletionTimestamp).map((s) => s.metadata?.uid));
    for (const pod of pods) {
      const owner = pod.metadata?.ownerReferences?.find((r) => r.controller && r.kind === 'StatefulSet');
      if (!owner || pod.metadata?.deletionTimestamp) continue;
      const alive = sets.some(
        (s) =>
          s.metadata?.namespace === pod.metadata?.namespace &&
          s.metadata?.name === owner.name &&
          (!owner.uid || !s.metadata?.uid || s.metadata.uid === owner.uid),
      );
      if (alive && !deleting.has(owner.uid)) continue;
      this.o.log(
        `StatefulSet ${pod.metadata?.namespace}/${owner.name} is gone: deleting pod ${pod.metadata?.name}`,
      );
      await this.deletePod(pod.metadata?.namespace ?? 'default', pod.metadata?.name ?? '');
    }
    for (const [uid, set] of this.known) {
      if (uids.has(uid)) continue;
      this.known.delete(uid);
      for (const key of [...this.condemned.keys()]) {
        if (key.startsWith(`${set.namespace}/${set.name}/`)) this.condemned.delete(key);
      }
      if (set.whenDeleted !== 'Delete') continue;
      const list = await this.o.core.listNamespacedPersistentVolumeClaim({ namespace: set.namespace });
      for (const pvc of list.items) {
        const pvcName = pvc.metadata?.name ?? '';
        if (set.claims.some((c) => ordinalOf(`${c}-${set.name}`, pvcName) !== undefined)) {
          this.o.log(
            `StatefulSet ${set.namespace}/${set.name} is gone (whenDeleted Delete): deleting PVC ${pvcName}`,
          );
          await this.deleteClaim(set.namespace, pvcName);
        }
      }
    }
  }

  private async deletePod(namespace: string, name: string): Promise<void> {
    try {
      await this.o.core.deleteNamespacedPod({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private async deleteClaim(namespace: string, name: string): Promise<void> {
    try {
      await this.o.core.deleteNamespacedPersistentVolumeClaim({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

/** `<prefix>-<ordinal>` -> ordinal. */
export function ordinalOf(prefix: string, name: string | undefined): number | undefined {
  if (!name?.startsWith(`${prefix}-`)) return undefined;
  const rest = name.slice(prefix.length + 1);
  return /^(0|[1-9]\d*)$/.test(rest) ? Number(rest) : undefined;
}

function ownedBy(pod: V1Pod, sts: V1StatefulSet): boolean {
  const owner = pod.metadata?.ownerReferences?.find((r) => r.controller);
  if (!owner) return false;
  return (
    owner.kind === 'StatefulSet' &&
    owner.name === sts.metadata?.name &&
    (!owner.uid || !sts.metadata?.uid || owner.uid === sts.metadata.uid)
  );
}

/** A short digest of the pod template (the set's revision). */
function templateHash(sts: V1StatefulSet): string {
  return createHash('sha256')
    .update(JSON.stringify(sts.spec?.template ?? {}))
    .digest('hex')
    .slice(0, 10);
}
