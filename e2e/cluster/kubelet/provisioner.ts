// A dynamic provisioner for the default StorageClass `conflux-local` (provisioner
// `conflux.io/local-dir`), in the style of local-path-provisioner: it works with the PV controller
// of kube-controller-manager exactly as an external provisioner does.
//
// - The PV controller marks a claim of our class with volume.kubernetes.io/storage-provisioner
//   (with WaitForFirstConsumer, only after the scheduler picked a node and wrote
//   volume.kubernetes.io/selected-node). We then create a PV `pvc-<claim uid>` backed by the
//   directory <stateDir>/volumes/<pv name>, with a claimRef to the claim, and (node-local
//   volumes) node affinity to that node. The PV controller binds the two.
// - When a claim is deleted, the PV controller marks its PV Released; with reclaimPolicy Delete we
//   remove the directory and the PV.

import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  CoreV1Api,
  type KubeConfig,
  ListWatch,
  StorageV1Api,
  type V1PersistentVolume,
  type V1PersistentVolumeClaim,
  Watch,
} from '@kubernetes/client-node';
import { errText, isConflict, isNotFound } from './kube.js';

export interface StorageOptions {
  /** StorageClass name (default conflux-local), made the cluster's default class. */
  storageClass?: string;
  /** Default WaitForFirstConsumer: the volume is made on the node the pod was scheduled to. */
  bindingMode?: 'WaitForFirstConsumer' | 'Immediate';
  /**
   * Default true: a PV is a `local` volume with node affinity to the node it was made for, so its
   * pod is always scheduled there (like local disks); false: a hostPath PV any node may mount
   * (like network storage).
   */
  nodeLocal?: boolean;
}

export const PROVISIONER = 'conflux.io/local-dir';
const ANN_PROVISIONER = 'volume.kubernetes.io/storage-provisioner';
const ANN_PROVISIONER_BETA = 'volume.beta.kubernetes.io/storage-provisioner';
const ANN_SELECTED_NODE = 'volume.kubernetes.io/selected-node';
const ANN_PROVISIONED_BY = 'pv.kubernetes.io/provisioned-by';

export interface Provisioner {
  storageClass: string;
  /** The directory that backs a PV. */
  volumeDir(pvName: string): string;
  stop(): Promise<void>;
}

export async function startProvisioner(o: {
  kubeConfig: KubeConfig;
  stateDir: string;
  storage?: StorageOptions;
  log: (line: string) => void;
}): Promise<Provisioner> {
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  const storage = o.kubeConfig.makeApiClient(StorageV1Api);
  const className = o.storage?.storageClass ?? 'conflux-local';
  const bindingMode = o.storage?.bindingMode ?? 'WaitForFirstConsumer';
  const nodeLocal = o.storage?.nodeLocal ?? true;
  const root = join(o.stateDir, 'volumes');
  mkdirSync(root, { recursive: true, mode: 0o755 });
  const volumeDir = (pv: string) => join(root, pv);

  try {
    await storage.createStorageClass({
      body: {
        apiVersion: 'storage.k8s.io/v1',
        kind: 'StorageClass',
        metadata: { name: className, annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
        provisioner: PROVISIONER,
        reclaimPolicy: 'Delete',
        volumeBindingMode: bindingMode,
        allowVolumeExpansion: true,
      },
    });
  } catch (err) {
    if (!isConflict(err)) throw new Error(`creating StorageClass ${className}: ${errText(err)}`);
  }

  const busy = new Set<string>();
  const provision = async (claim: V1PersistentVolumeClaim): Promise<void> => {
    const md = claim.metadata ?? {};
    const ann = md.annotations ?? {};
    if (claim.spec?.storageClassName !== className || claim.spec?.volumeName) return;
    if (claim.status?.phase !== 'Pending' || md.deletionTimestamp) return;
    if ((ann[ANN_PROVISIONER] ?? ann[ANN_PROVISIONER_BETA]) !== PROVISIONER) return;
    const node = ann[ANN_SELECTED_NODE];
    if (bindingMode === 'WaitForFirstConsumer' && !node) return;
    const name = `pvc-${md.uid}`;
    if (busy.has(name)) return;
    busy.add(name);
    try {
      const dir = volumeDir(name);
      mkdirSync(dir, { recursive: true });
      chmodSync(dir, 0o777);
      const pv: V1PersistentVolume = {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name, annotations: { [ANN_PROVISIONED_BY]: PROVISIONER } },
        spec: {
          capacity: { storage: claim.spec?.resources?.requests?.storage ?? '1Gi' },
          accessModes: claim.spec?.accessModes ?? ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Delete',
          storageClassName: className,
          volumeMode: claim.spec?.volumeMode ?? 'Filesystem',
          claimRef: {
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            namespace: md.namespace,
            name: md.name,
            uid: md.uid,
          },
          ...(nodeLocal && node
            ? {
                local: { path: dir },
                nodeAffinity: {
                  required: {
                    nodeSelectorTerms: [
                      {
                        matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node] }],
                      },
                    ],
                  },
                },
              }
            : { hostPath: { path: dir, type: 'DirectoryOrCreate' } }),
        },
      };
      await core.createPersistentVolume({ body: pv });
      o.log(`provisioner: ${name} for ${md.namespace}/${md.name}${node ? ` on ${node}` : ''}`);
    } catch (err) {
      if (!isConflict(err)) o.log(`provisioner: provisioning ${md.namespace}/${md.name}: ${errText(err)}`);
    } finally {
      busy.delete(name);
    }
  };

  const reclaim = async (pv: V1PersistentVolume): Promise<void> => {
    const name = pv.metadata?.name ?? '';
    if (pv.metadata?.annotations?.[ANN_PROVISIONED_BY] !== PROVISIONER) return;
    if (pv.spec?.persistentVolumeReclaimPolicy !== 'Delete') return;
    if (pv.status?.phase !== 'Released' && pv.status?.phase !== 'Failed') return;
    if (pv.metadata?.deletionTimestamp || busy.has(name)) return;
    busy.add(name);
    try {
      const dir = pv.spec?.local?.path ?? pv.spec?.hostPath?.path;
      if (dir?.startsWith(`${root}/`)) rmSync(dir, { recursive: true, force: true });
      await core.deletePersistentVolume({ name });
      o.log(`provisioner: deleted ${name} and its directory`);
    } catch (err) {
      if (!isNotFound(err)) o.log(`provisioner: deleting ${name}: ${errText(err)}`);
    } finally {
      busy.delete(name);
    }
  };

  const watch = new Watch(o.kubeConfig);
  const claims = new ListWatch<V1PersistentVolumeClaim>(
    '/api/v1/persistentvolumeclaims',
    watch,
    () => core.listPersistentVolumeClaimForAllNamespaces(),
    false,
  );
  const volumes = new ListWatch<V1PersistentVolume>(
    '/api/v1/persistentvolumes',
    watch,
    () => core.listPersistentVolume(),
    false,
  );
  let stopped = false;
  const restartOnError = (informer: { start(): Promise<void>; on(verb: 'error', cb: () => void): void }) =>
    informer.on('error', () => {
      if (!stopped) setTimeout(() => !stopped && void informer.start().catch(() => {}), 1000).unref();
    });
  claims.on('add', (c) => void provision(c));
  claims.on('update', (c) => void provision(c));
  volumes.on('add', (v) => void reclaim(v));
  volumes.on('update', (v) => void reclaim(v));
  restartOnError(claims);
  restartOnError(volumes);
  await Promise.all([claims.start(), volumes.start()]);
  // Level-triggered safety net: a failed create or delete is retried from the caches.
  const timer = setInterval(() => {
    for (const c of claims.list()) void provision(c);
    for (const v of volumes.list()) void reclaim(v);
  }, 5000);
  timer.unref();

  return {
    storageClass: className,
    volumeDir,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([claims.stop(), volumes.stop()]);
    },
  };
}
