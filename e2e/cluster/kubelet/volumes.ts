// A pod's volumes on this machine, laid out as the kubelet lays them out:
//   <stateDir>/pods/<uid>/volumes/kubernetes.io~<plugin>/<volume>
// Secret, ConfigMap, downwardAPI and projected volumes are written with the AtomicWriter and
// rewritten in place by resync() (a renewed certificate reaches a running process, as in a real
// cluster; subPath mounts of them keep the old file, also as in a real cluster). emptyDir lives
// as long as the pod; a PVC mounts its bound PV's directory; hostPath is the path itself.

import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import type {
  V1ConfigMap,
  V1Container,
  V1DownwardAPIVolumeFile,
  V1KeyToPath,
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Secret,
  V1Volume,
} from '@kubernetes/client-node';
import { type Payload, writeAtomically } from './atomic-writer.js';
import type { Mount } from './container.js';
import { fieldValue, type PodAddresses, resourceValue } from './env.js';
import { type TokenApi, TokenCache } from './tokens.js';

/** A volume that cannot be set up yet: the pod waits in ContainerCreating (FailedMount). */
export class VolumeNotReady extends Error {
  override readonly name = 'VolumeNotReady';
}

export interface VolumeApi extends TokenApi {
  secret(namespace: string, name: string): Promise<V1Secret | null>;
  configMap(namespace: string, name: string): Promise<V1ConfigMap | null>;
  claim(namespace: string, name: string): Promise<V1PersistentVolumeClaim | null>;
  volume(name: string): Promise<V1PersistentVolume | null>;
}

const DEFAULT_MODE = 0o644;

function keyItems(
  keys: string[],
  items: V1KeyToPath[] | undefined,
  defaultMode: number,
  what: string,
  optional: boolean,
): { key: string; path: string; mode: number }[] {
  if (!items?.length) return keys.sort().map((key) => ({ key, path: key, mode: defaultMode }));
  return items.flatMap((i) => {
    if (!keys.includes(i.key)) {
      if (optional) return [];
      throw new VolumeNotReady(`configuration for ${what} has no key ${i.key}`);
    }
    return [{ key: i.key, path: i.path, mode: i.mode ?? defaultMode }];
  });
}

/** The files of a Secret volume (or projection). */
export function secretPayload(
  secret: V1Secret | null,
  src: { items?: V1KeyToPath[]; optional?: boolean; name?: string; secretName?: string },
  defaultMode: number,
): Payload {
  const out: Payload = new Map();
  const name = src.secretName ?? src.name ?? '';
  if (!secret) {
    if (src.optional) return out;
    throw new VolumeNotReady(`secret "${name}" not found`);
  }
  const data = secret.data ?? {};
  for (const i of keyItems(Object.keys(data), src.items, defaultMode, `secret ${name}`, !!src.optional)) {
    out.set(i.path, { data: Buffer.from(data[i.key]!, 'base64'), mode: i.mode });
  }
  return out;
}

/** The files of a ConfigMap volume (or projection): `data` and `binaryData`. */
export function configMapPayload(
  cm: V1ConfigMap | null,
  src: { items?: V1KeyToPath[]; optional?: boolean; name?: string },
  defaultMode: number,
): Payload {
  const out: Payload = new Map();
  if (!cm) {
    if (src.optional) return out;
    throw new VolumeNotReady(`configmap "${src.name}" not found`);
  }
  const all = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(cm.data ?? {})) all.set(k, Buffer.from(v));
  for (const [k, v] of Object.entries(cm.binaryData ?? {})) all.set(k, Buffer.from(v, 'base64'));
  for (const i of keyItems(
    [...all.keys()],
    src.items,
    defaultMode,
    `configmap ${src.name}`,
    !!src.optional,
  )) {
    out.set(i.path, { data: all.get(i.key)!, mode: i.mode });
  }
  return out;
}

/** The files of a downwardAPI volume (or projection). */
export function downwardPayload(
  pod: V1Pod,
  items: V1DownwardAPIVolumeFile[],
  defaultMode: number,
  addresses: PodAddresses,
  allocatable: Record<string, string>,
): Payload {
  const out: Payload = new Map();
  for (const i of items) {
    let value = '';
    if (i.fieldRef) value = fieldValue(pod, i.fieldRef.fieldPath, addresses);
    else if (i.resourceFieldRef) {
      const r = i.resourceFieldRef;
      const c =
        pod.spec?.containers?.find((x) => x.name === r.containerName) ?? pod.spec?.containers?.[0] ?? {};
      value = resourceValue(c as V1Container, r.resource, r.divisor as string | undefined, allocatable);
    }
    out.set(i.path, { data: value, mode: i.mode ?? defaultMode });
  }
  return out;
}

/** The plugin directory name the kubelet uses for a volume source. */
export function pluginOf(v: V1Volume): string {
  if (v.secret) return 'secret';
  if (v.configMap) return 'configmap';
  if (v.downwardAPI) return 'downward-api';
  if (v.projected) return 'projected';
  if (v.emptyDir) return 'empty-dir';
  if (v.persistentVolumeClaim) return 'pvc';
  if (v.hostPath) return 'host-path';
  return 'unsupported';
}

/** The single uid every container runs as, if they agree (the token file is then theirs, 0600). */
function commonRunAsUser(pod: V1Pod): number | undefined {
  const uids = new Set(
    [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map(
      (c) => c.securityContext?.runAsUser ?? pod.spec?.securityContext?.runAsUser,
    ),
  );
  const [only] = uids;
  return uids.size === 1 && only !== undefined && only !== null ? only : undefined;
}

/**
 * The kubelet's SetVolumeOwnership with fsGroupChangePolicy OnRootMismatch (Always when asked):
 * group fsGroup, group rw, setgid directories. Skipped when the root already matches.
 */
export function applyFsGroup(dir: string, fsGroup: number, policy = 'OnRootMismatch'): void {
  const st = statSync(dir);
  if (policy === 'OnRootMismatch' && st.gid === fsGroup && (st.mode & 0o2000) !== 0) return;
  const walk = (path: string): void => {
    const s = lstatSync(path);
    if (s.isSymbolicLink()) return;
    chownSync(path, -1, fsGroup);
    if (s.isDirectory()) {
      chmodSync(path, (s.mode & 0o7777) | 0o2070);
      for (const name of readdirSync(path)) walk(join(path, name));
    } else chmodSync(path, (s.mode & 0o7777) | 0o060);
  };
  walk(dir);
}

export interface PodVolumesOptions {
  stateDir: string;
  api: VolumeApi;
  allocatable: Record<string, string>;
}

export class PodVolumes {
  readonly dir: string;
  private readonly paths = new Map<string, string>();
  private readonly tokens: TokenCache;
  private pod: V1Pod;

  constructor(
    private readonly o: PodVolumesOptions,
    pod: V1Pod,
    private addresses: PodAddresses,
  ) {
    this.pod = pod;
    this.dir = join(o.stateDir, 'pods', pod.metadata?.uid ?? 'unknown', 'volumes');
    this.tokens = new TokenCache(o.api);
  }

  update(pod: V1Pod, addresses?: PodAddresses): void {
    this.pod = pod;
    if (addresses) this.addresses = addresses;
  }

  private get namespace(): string {
    return this.pod.metadata?.namespace ?? 'default';
  }

  private get fsGroup(): number | undefined {
    return this.pod.spec?.securityContext?.fsGroup ?? undefined;
  }

  /** Sets up every volume; throws VolumeNotReady while one cannot be. */
  async setup(): Promise<void> {
    for (const v of this.pod.spec?.volumes ?? []) {
      if (this.paths.has(v.name)) continue;
      this.paths.set(v.name, await this.setupOne(v));
    }
  }

  /** Rewrites the API-backed volumes that changed; a failure keeps the files they had. */
  async resync(): Promise<string[]> {
    const errors: string[] = [];
    for (const v of this.pod.spec?.volumes ?? []) {
      if (!this.paths.has(v.name) || !(v.secret || v.configMap || v.downwardAPI || v.projected)) continue;
      try {
        await this.setupOne(v);
      } catch (err) {
        errors.push(`${v.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return errors;
  }

  /** Host-side mounts for a container's volumeMounts (subPath resolved). */
  mountsFor(container: V1Container): Mount[] {
    return (container.volumeMounts ?? []).map((m) => {
      const base = this.paths.get(m.name);
      if (!base) throw new VolumeNotReady(`volume ${m.name} is not set up`);
      let hostPath = base;
      const sub = m.subPath ?? '';
      if (sub) {
        if (sub.startsWith('/') || sub.split('/').includes('..')) throw new Error(`bad subPath ${sub}`);
        hostPath = join(base, sub);
        if (!existsSync(hostPath)) mkdirSync(hostPath, { recursive: true, mode: 0o777 });
      }
      return { hostPath, mountPath: m.mountPath, readOnly: !!m.readOnly };
    });
  }

  /** Removes the pod's own volume directories (never a PV's or a hostPath). */
  cleanup(): void {
    rmSync(join(this.dir, '..'), { recursive: true, force: true });
    this.paths.clear();
  }

  private volumeDir(v: V1Volume): string {
    return join(this.dir, `kubernetes.io~${pluginOf(v)}`, v.name);
  }

  private async setupOne(v: V1Volume): Promise<string> {
    const own = { ...(this.fsGroup !== undefined ? { fsGroup: this.fsGroup } : {}), readOnly: true };
    const ns = this.namespace;
    if (v.secret) {
      const s = v.secret;
      const secret = await this.o.api.secret(ns, s.secretName ?? '');
      const dir = this.volumeDir(v);
      writeAtomically(dir, secretPayload(secret, s, s.defaultMode ?? DEFAULT_MODE), own);
      return dir;
    }
    if (v.configMap) {
      const c = v.configMap;
      const cm = await this.o.api.configMap(ns, c.name ?? '');
      const dir = this.volumeDir(v);
      writeAtomically(dir, configMapPayload(cm, c, c.defaultMode ?? DEFAULT_MODE), own);
      return dir;
    }
    if (v.downwardAPI) {
      const d = v.downwardAPI;
      const payload = downwardPayload(
        this.pod,
        d.items ?? [],
        d.defaultMode ?? DEFAULT_MODE,
        this.addresses,
        this.o.allocatable,
      );
      const dir = this.volumeDir(v);
      writeAtomically(dir, payload, own);
      return dir;
    }
    if (v.projected) {
      const dir = this.volumeDir(v);
      writeAtomically(dir, await this.projected(v), own);
      return dir;
    }
    if (v.emptyDir) {
      const dir = this.volumeDir(v);
      if (!existsSync(dir)) {
        mkdirSync(dir, { recursive: true });
        chmodSync(dir, 0o777);
        if (this.fsGroup !== undefined) applyFsGroup(dir, this.fsGroup, 'Always');
      }
      return dir;
    }
    if (v.persistentVolumeClaim) return this.claimPath(v.persistentVolumeClaim.claimName);
    if (v.hostPath) {
      const { path, type } = v.hostPath;
      if (type === 'DirectoryOrCreate' && !existsSync(path))
        mkdirSync(path, { recursive: true, mode: 0o755 });
      if (type === 'FileOrCreate' && !existsSync(path)) closeSync(openSync(path, 'a', 0o644));
      if ((type === 'Directory' || type === 'File') && !existsSync(path)) {
        throw new VolumeNotReady(`hostPath type check failed: ${path} does not exist`);
      }
      return path;
    }
    throw new VolumeNotReady(`volume ${v.name}: this volume type is not supported here`);
  }

  private async projected(v: V1Volume): Promise<Payload> {
    const p = v.projected!;
    const mode = p.defaultMode ?? DEFAULT_MODE;
    const ns = this.namespace;
    const out: Payload = new Map();
    const add = (payload: Payload) => {
      for (const [k, f] of payload) out.set(k, f);
    };
    for (const s of p.sources ?? []) {
      if (s.secret) add(secretPayload(await this.o.api.secret(ns, s.secret.name ?? ''), s.secret, mode));
      else if (s.configMap) {
        add(configMapPayload(await this.o.api.configMap(ns, s.configMap.name ?? ''), s.configMap, mode));
      } else if (s.downwardAPI) {
        add(downwardPayload(this.pod, s.downwardAPI.items ?? [], mode, this.addresses, this.o.allocatable));
      } else if (s.serviceAccountToken) {
        const t = s.serviceAccountToken;
        const token = await this.tokens.get({
          namespace: ns,
          serviceAccount: this.pod.spec?.serviceAccountName ?? 'default',
          ...(t.audience ? { audience: t.audience } : {}),
          expirationSeconds: t.expirationSeconds ?? 3600,
          pod: { name: this.pod.metadata?.name ?? '', uid: this.pod.metadata?.uid ?? '' },
        });
        const uid = this.fsGroup === undefined ? commonRunAsUser(this.pod) : undefined;
        out.set(t.path, {
          data: token,
          mode: uid !== undefined ? 0o600 : mode,
          ...(uid !== undefined ? { uid } : {}),
        });
      }
    }
    return out;
  }

  private async claimPath(claimName: string): Promise<string> {
    const ns = this.namespace;
    const claim = await this.o.api.claim(ns, claimName);
    if (!claim) throw new VolumeNotReady(`persistentvolumeclaim "${claimName}" not found`);
    if (claim.metadata?.deletionTimestamp) {
      throw new VolumeNotReady(`persistentvolumeclaim "${claimName}" is being deleted`);
    }
    const pvName = claim.spec?.volumeName;
    if (claim.status?.phase !== 'Bound' || !pvName) {
      throw new VolumeNotReady(`persistentvolumeclaim "${claimName}" is not bound`);
    }
    const pv = await this.o.api.volume(pvName);
    const path = pv?.spec?.local?.path ?? pv?.spec?.hostPath?.path;
    if (!path) throw new VolumeNotReady(`persistentvolume "${pvName}" has no local or hostPath source`);
    if (!existsSync(path)) mkdirSync(path, { recursive: true, mode: 0o777 });
    if (this.fsGroup !== undefined) {
      applyFsGroup(path, this.fsGroup, this.pod.spec?.securityContext?.fsGroupChangePolicy ?? 'Always');
    }
    return path;
  }
}
