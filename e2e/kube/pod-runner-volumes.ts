// Volumes of the pod runner's kubelet (pod-runner-kubelet.ts): how a pod's volume mounts map onto
// host directories (PVCs, secrets, configMaps, emptyDirs, hostPaths), and reading the API objects
// they refer to.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApiException,
  type CoreV1Api,
  type V1ConfigMap,
  type V1Container,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { ContainerConfigError, type HostMount } from './pod-runner-env.js';

export const isNotFound = (err: unknown) => err instanceof ApiException && err.code === 404;
export const isConflict = (err: unknown) => err instanceof ApiException && err.code === 409;
export const errText = (err: unknown) =>
  err instanceof ApiException ? `HTTP ${err.code}: ${String(err.body).slice(0, 300)}` : String(err);

export function pvcDir(root: string, namespace: string, claim: string): string {
  return join(root, 'pvc', namespace, claim);
}

/** The object `get` reads, or null when it does not exist. */
export async function readIfExists<T>(get: () => Promise<T>): Promise<T | null> {
  try {
    return await get();
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** What mounting a pod's volumes needs from its worker. */
export interface VolumeTarget {
  core: CoreV1Api;
  root: string;
  namespace: string;
  name: string;
  pod: V1Pod;
  claims: {
    claimBeingWiped(namespace: string, claim: string): boolean;
    claimSeen(namespace: string, claim: string, uid: string): void;
  };
  /** PVC directories the pod has mounted (added to). */
  mountedClaims: Set<string>;
}

export async function mountVolumes(t: VolumeTarget, container: V1Container): Promise<HostMount[]> {
  const root = t.root;
  const mounts: HostMount[] = [];
  const volumes = new Map((t.pod.spec?.volumes ?? []).map((v) => [v.name, v]));
  for (const m of container.volumeMounts ?? []) {
    const volume = volumes.get(m.name);
    if (!volume) throw new ContainerConfigError(`volume mount ${m.name} names no volume of the pod`);
    let dir: string;
    if (volume.persistentVolumeClaim) {
      const claim = volume.persistentVolumeClaim.claimName;
      const pvc = await readIfExists(() =>
        t.core.readNamespacedPersistentVolumeClaim({ name: claim, namespace: t.namespace }),
      );
      if (!pvc || pvc.metadata?.deletionTimestamp) {
        throw new ContainerConfigError(`persistentvolumeclaim "${claim}" not found`, 'ContainerCreating');
      }
      if (t.claims.claimBeingWiped(t.namespace, claim)) {
        throw new ContainerConfigError(
          `the volume of an earlier "${claim}" is being removed`,
          'ContainerCreating',
        );
      }
      t.claims.claimSeen(t.namespace, claim, pvc.metadata?.uid ?? '');
      dir = pvcDir(root, t.namespace, claim);
      t.mountedClaims.add(dir);
      mkdirSync(dir, { recursive: true });
    } else if (volume.secret) {
      const secretName = volume.secret.secretName ?? '';
      const secret = await readIfExists(() =>
        t.core.readNamespacedSecret({ name: secretName, namespace: t.namespace }),
      );
      if (!secret && !volume.secret.optional) {
        throw new ContainerConfigError(`secret "${secretName}" not found`, 'ContainerCreating');
      }
      dir = join(root, 'secrets', t.namespace, t.name, volume.name);
      writeFiles(dir, secretFiles(secret), volume.secret.items, volume.secret.defaultMode ?? 0o644);
    } else if (volume.configMap) {
      const cmName = volume.configMap.name ?? '';
      const cm = await readIfExists(() =>
        t.core.readNamespacedConfigMap({ name: cmName, namespace: t.namespace }),
      );
      if (!cm && !volume.configMap.optional) {
        throw new ContainerConfigError(`configmap "${cmName}" not found`, 'ContainerCreating');
      }
      dir = join(root, 'configmaps', t.namespace, t.name, volume.name);
      writeFiles(dir, configMapFiles(cm), volume.configMap.items, volume.configMap.defaultMode ?? 0o644);
    } else if (volume.emptyDir) {
      dir = join(root, 'emptydir', t.namespace, t.name, volume.name);
      mkdirSync(dir, { recursive: true });
    } else if (volume.hostPath) {
      dir = volume.hostPath.path;
    } else {
      throw new ContainerConfigError(
        `volume ${volume.name}: this volume type is not supported by the pod runner`,
      );
    }
    const hostPath = m.subPath ? join(dir, m.subPath) : dir;
    if (m.subPath) mkdirSync(hostPath, { recursive: true });
    mounts.push({ mountPath: m.mountPath, hostPath });
  }
  return mounts;
}

function secretFiles(secret: V1Secret | null): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(secret?.data ?? {})) files.set(k, Buffer.from(v, 'base64'));
  for (const [k, v] of Object.entries(secret?.stringData ?? {})) files.set(k, Buffer.from(v, 'utf8'));
  return files;
}

function configMapFiles(cm: V1ConfigMap | null): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(cm?.data ?? {})) files.set(k, Buffer.from(v, 'utf8'));
  for (const [k, v] of Object.entries(cm?.binaryData ?? {})) files.set(k, Buffer.from(v, 'base64'));
  return files;
}

/** The volume's files, written afresh (all keys, or only `items` at their paths). */
function writeFiles(
  dir: string,
  files: Map<string, Buffer>,
  items: { key: string; path: string; mode?: number }[] | undefined,
  defaultMode: number,
): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const entries = items
    ? items.flatMap((i) => {
        const data = files.get(i.key);
        if (!data)
          throw new ContainerConfigError(`key ${i.key} not found for volume ${dir}`, 'ContainerCreating');
        return [{ path: i.path, data, mode: i.mode ?? defaultMode }];
      })
    : [...files].map(([path, data]) => ({ path, data, mode: defaultMode }));
  for (const e of entries) {
    const file = join(dir, e.path);
    mkdirSync(join(file, '..'), { recursive: true });
    // The owner (this user) must be able to read it; the group/other bits are kept.
    writeFileSync(file, e.data, { mode: e.mode | 0o400 });
  }
}
