// The pod runner's mapping of a container's environment onto this machine (pure functions, no
// API calls of their own): the kubelet's `$(VAR)` expansion and `fieldRef`/`secretKeyRef`/
// `configMapKeyRef` resolution, then the rewrites that make a pod spec written for Kubernetes run
// as a plain process on loopback:
//
// - mount paths: a value that is a volume mount path or lies under one (`/data`, `/tls/tls.crt`,
//   also `file:///data/...`) is rewritten to the host directory that stands in for the volume;
// - listen addresses: `0.0.0.0:<port>` (and `[::]:<port>`) become `<pod IP>:<port>`;
// - pod DNS names: `<pod>.<service>.<namespace>.svc[.cluster.local]` (which do not resolve on this
//   machine) become that pod's loopback IP, wherever they appear in a value;
// - Conflux's own listen and advertise variables (CONFLUX_{RAFT,API,ADMIN}_ADDR and the
//   CONFLUX_ADVERTISE_* ones) are forced to `<pod IP>:<port>`, keeping the port they name (or the
//   container port of that name when they are absent), so each pod's node listens on its own IP.

import type { V1ConfigMap, V1Container, V1ContainerPort, V1Pod, V1Secret } from '@kubernetes/client-node';

/** A reason the container cannot be started yet, as the kubelet reports it (waiting.reason). */
export class ContainerConfigError extends Error {
  override readonly name = 'ContainerConfigError';
  constructor(
    message: string,
    readonly reason = 'CreateContainerConfigError',
  ) {
    super(message);
  }
}

/**
 * Kubernetes' variable expansion: `$(NAME)` is replaced by the value of NAME when `lookup` knows
 * it and kept as written otherwise; `$$` is an escaped `$`; any other `$` is literal.
 */
export function expandVars(input: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    if (c === '$' && i + 1 < input.length) {
      const next = input[i + 1];
      if (next === '$') {
        out += '$';
        i++;
        continue;
      }
      if (next === '(') {
        const close = input.indexOf(')', i + 2);
        if (close > 0) {
          const name = input.slice(i + 2, close);
          out += lookup(name) ?? `$(${name})`;
          i = close;
          continue;
        }
      }
    }
    out += c;
  }
  return out;
}

/** The value of a downward-API field (`valueFrom.fieldRef.fieldPath`) for this pod. */
export function fieldValue(pod: V1Pod, fieldPath: string, podIP: string, hostIP = '127.0.0.1'): string {
  const md = pod.metadata ?? {};
  const keyed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (keyed) {
    const map = keyed[1] === 'labels' ? md.labels : md.annotations;
    return map?.[keyed[2]!] ?? '';
  }
  switch (fieldPath) {
    case 'metadata.name':
      return md.name ?? '';
    case 'metadata.namespace':
      return md.namespace ?? 'default';
    case 'metadata.uid':
      return md.uid ?? '';
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? 'default';
    case 'status.podIP':
    case 'status.podIPs':
      return podIP;
    case 'status.hostIP':
    case 'status.hostIPs':
      return hostIP;
    default:
      throw new ContainerConfigError(`fieldRef ${fieldPath} is not supported by the pod runner`);
  }
}

/** Where the kubelet reads Secrets and ConfigMaps (the API, in the runner). */
export interface EnvSources {
  secret(namespace: string, name: string): Promise<V1Secret | null>;
  configMap(namespace: string, name: string): Promise<V1ConfigMap | null>;
}

function secretValue(secret: V1Secret, key: string): string | undefined {
  const raw = secret.data?.[key];
  if (raw !== undefined) return Buffer.from(raw, 'base64').toString('utf8');
  return secret.stringData?.[key];
}

/**
 * The container's environment as the kubelet computes it: `envFrom` first, then `env` in order,
 * each value expanded against the variables defined before it. A missing Secret/ConfigMap (or
 * key) that is not `optional` throws ContainerConfigError, as it keeps a real container waiting.
 */
export async function containerEnv(
  pod: V1Pod,
  container: V1Container,
  podIP: string,
  sources: EnvSources,
): Promise<Map<string, string>> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const env = new Map<string, string>();
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    if (from.secretRef) {
      const secret = await sources.secret(namespace, from.secretRef.name ?? '');
      if (!secret) {
        if (from.secretRef.optional) continue;
        throw new ContainerConfigError(`secret "${from.secretRef.name}" not found`);
      }
      for (const key of new Set([
        ...Object.keys(secret.data ?? {}),
        ...Object.keys(secret.stringData ?? {}),
      ])) {
        env.set(prefix + key, secretValue(secret, key) ?? '');
      }
    } else if (from.configMapRef) {
      const cm = await sources.configMap(namespace, from.configMapRef.name ?? '');
      if (!cm) {
        if (from.configMapRef.optional) continue;
        throw new ContainerConfigError(`configmap "${from.configMapRef.name}" not found`);
      }
      for (const [k, v] of Object.entries(cm.data ?? {})) env.set(prefix + k, v);
    }
  }
  for (const v of container.env ?? []) {
    const source = v.valueFrom;
    if (!source) {
      env.set(
        v.name,
        expandVars(v.value ?? '', (name) => env.get(name)),
      );
    } else if (source.fieldRef) {
      env.set(v.name, fieldValue(pod, source.fieldRef.fieldPath, podIP));
    } else if (source.secretKeyRef) {
      const ref = source.secretKeyRef;
      const secret = await sources.secret(namespace, ref.name ?? '');
      const value = secret ? secretValue(secret, ref.key) : undefined;
      if (value === undefined) {
        if (ref.optional) continue;
        throw new ContainerConfigError(
          secret
            ? `couldn't find key ${ref.key} in Secret ${namespace}/${ref.name}`
            : `secret "${ref.name}" not found`,
        );
      }
      env.set(v.name, value);
    } else if (source.configMapKeyRef) {
      const ref = source.configMapKeyRef;
      const cm = await sources.configMap(namespace, ref.name ?? '');
      const value = cm?.data?.[ref.key];
      if (value === undefined) {
        if (ref.optional) continue;
        throw new ContainerConfigError(
          cm
            ? `couldn't find key ${ref.key} in ConfigMap ${namespace}/${ref.name}`
            : `configmap "${ref.name}" not found`,
        );
      }
      env.set(v.name, value);
    } else if (source.resourceFieldRef) {
      const { resource } = source.resourceFieldRef;
      const [kind, name] = resource.split('.') as [string, string];
      const quantity = (kind === 'limits' ? container.resources?.limits : container.resources?.requests)?.[
        name
      ];
      // Without a limit the kubelet reports the node's capacity; the runner has none to report.
      if (quantity !== undefined) env.set(v.name, String(quantity));
    } else {
      throw new ContainerConfigError(`env ${v.name}: this valueFrom is not supported by the pod runner`);
    }
  }
  return env;
}

/** A volume mount as the runner maps it: the path inside the container and the host directory. */
export interface HostMount {
  mountPath: string;
  hostPath: string;
}

/** `value` with a leading container path (or `file://` + path) replaced by its host directory. */
export function mapMountPath(value: string, mounts: readonly HostMount[]): string {
  // Longest mount path first: /data/wal beats /data.
  const sorted = [...mounts].sort((a, b) => b.mountPath.length - a.mountPath.length);
  for (const scheme of ['', 'file://']) {
    if (scheme && !value.startsWith(scheme)) continue;
    const path = value.slice(scheme.length);
    for (const m of sorted) {
      const base = m.mountPath.replace(/\/+$/, '') || '/';
      if (path === base || path.startsWith(base === '/' ? '/' : `${base}/`)) {
        return scheme + m.hostPath + path.slice(base === '/' ? 0 : base.length);
      }
    }
  }
  return value;
}

const POD_DNS =
  /(?<![\w.-])([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.svc(?:\.cluster\.local)?(?![\w-])/g;

/** Every `<pod>.<service>.<namespace>.svc[.cluster.local]` in `value` replaced by the pod's IP. */
export function mapPodDnsNames(value: string, hostOf: (namespace: string, pod: string) => string): string {
  return value.replace(POD_DNS, (_m, pod: string, _svc: string, ns: string) => hostOf(ns, pod));
}

/** The listen and advertise variables of conflux-node, with the name of their container port. */
export const CONFLUX_ADDRESS_VARS = {
  CONFLUX_RAFT_ADDR: 'raft',
  CONFLUX_API_ADDR: 'api',
  CONFLUX_ADMIN_ADDR: 'admin',
  CONFLUX_ADVERTISE_RAFT_ADDR: 'raft',
  CONFLUX_ADVERTISE_API_ADDR: 'api',
  CONFLUX_ADVERTISE_ADMIN_ADDR: 'admin',
} as const;

export interface HostEnvOptions {
  /** The pod's loopback IP. */
  ip: string;
  mounts: readonly HostMount[];
  ports: readonly V1ContainerPort[];
  /** A pod's IP from its namespace and name (for pod DNS names). */
  hostOf: (namespace: string, pod: string) => string;
}

/** The container environment rewritten for a process on this machine (see the file comment). */
export function hostEnv(env: ReadonlyMap<string, string>, o: HostEnvOptions): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, raw] of env) {
    let value = mapMountPath(raw, o.mounts);
    const listen = /^(?:0\.0\.0\.0|\[::\]|::|)(:\d{1,5})$/.exec(value);
    if (listen) value = `${o.ip}${listen[1]}`;
    out[name] = mapPodDnsNames(value, o.hostOf);
  }
  for (const [name, portName] of Object.entries(CONFLUX_ADDRESS_VARS)) {
    const given = out[name];
    const port =
      (given && /:(\d{1,5})$/.exec(given)?.[1]) ??
      o.ports.find((p) => p.name === portName)?.containerPort?.toString();
    // Absent advertise variables default to the listen address in the node, so leave them out.
    if (given !== undefined || (!name.includes('ADVERTISE') && port)) {
      if (port) out[name] = `${o.ip}:${port}`;
    }
  }
  return out;
}
