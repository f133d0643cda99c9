// A container's environment as the kubelet computes it (pure: the Secrets, ConfigMaps and
// Services come in through `EnvSources`): Service link variables first, then `envFrom`, then `env`
// in order, each `$(VAR)` expanded against what was defined before it.

import type { V1ConfigMap, V1Container, V1EnvVar, V1Pod, V1Secret, V1Service } from '@kubernetes/client-node';

/** Why a container cannot be created yet, as the kubelet reports it in `state.waiting.reason`. */
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
 * Kubernetes' expansion: `$(NAME)` becomes NAME's value when `lookup` knows it and stays as
 * written otherwise; `$$` is an escaped `$`; any other `$` is literal.
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

export interface PodAddresses {
  podIP: string;
  hostIP: string;
}

/** A downward-API field (`fieldRef.fieldPath`) of this pod. */
export function fieldValue(pod: V1Pod, fieldPath: string, addr: PodAddresses): string {
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
    case 'metadata.labels':
      return formatMap(md.labels);
    case 'metadata.annotations':
      return formatMap(md.annotations);
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? 'default';
    case 'status.podIP':
    case 'status.podIPs':
      return addr.podIP;
    case 'status.hostIP':
    case 'status.hostIPs':
      return addr.hostIP;
    default:
      throw new ContainerConfigError(`unsupported fieldPath ${fieldPath}`);
  }
}

/** The downward API's `key="value"` lines, sorted by key. */
export function formatMap(map: Record<string, string> | undefined): string {
  return Object.keys(map ?? {})
    .sort()
    .map((k) => `${k}=${JSON.stringify(map![k])}`)
    .join('\n');
}

const BINARY_SI: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50 };
const DECIMAL_SI: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
};

/** A resource quantity ("100m", "128Mi", "2") as a number of base units. */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|Pi|n|u|m|k|M|G|T|[eE][0-9]+)?$/.exec(q.trim());
  if (!m) throw new ContainerConfigError(`bad quantity ${q}`);
  const n = Number(m[1]);
  const suffix = m[2] ?? '';
  if (suffix in BINARY_SI) return n * BINARY_SI[suffix]!;
  if (/^[eE]/.test(suffix)) return n * 10 ** Number(suffix.slice(1));
  return n * DECIMAL_SI[suffix]!;
}

/** `resourceFieldRef`: the limit (or request), else the node's allocatable, over the divisor. */
export function resourceValue(
  container: V1Container,
  resource: string,
  divisor: string | number | undefined,
  allocatable: Record<string, string>,
): string {
  const [kind, name] = resource.split('.') as [string, string];
  const own = (kind === 'limits' ? container.resources?.limits : container.resources?.requests)?.[name];
  const raw = own ?? (kind === 'limits' ? allocatable[name] : undefined);
  if (raw === undefined) return '0';
  const value = parseQuantity(raw) / parseQuantity(divisor ?? 1);
  return String(Math.ceil(value));
}

export interface EnvSources {
  secret(namespace: string, name: string): Promise<V1Secret | null>;
  configMap(namespace: string, name: string): Promise<V1ConfigMap | null>;
  /** Services of the pod's namespace, and `default/kubernetes` (for Service link variables). */
  services(namespace: string): Promise<V1Service[]>;
}

export function secretValue(secret: V1Secret, key: string): string | undefined {
  const raw = secret.data?.[key];
  if (raw !== undefined) return Buffer.from(raw, 'base64').toString('utf8');
  return secret.stringData?.[key];
}

/**
 * Docker-link style variables for each Service with a cluster IP, as the kubelet sets them:
 * every Service of the namespace when `enableServiceLinks` (default true), and always the master
 * Service `kubernetes` of `default` (what in-cluster clients read: KUBERNETES_SERVICE_HOST/PORT).
 */
export function serviceEnv(pod: V1Pod, services: V1Service[]): Map<string, string> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const links = pod.spec?.enableServiceLinks ?? true;
  const env = new Map<string, string>();
  const chosen = new Map<string, V1Service>();
  for (const s of services) {
    const ns = s.metadata?.namespace ?? 'default';
    const name = s.metadata?.name ?? '';
    const ip = s.spec?.clusterIP;
    if (!ip || ip === 'None') continue;
    const master = ns === 'default' && name === 'kubernetes';
    // The pod's own namespace wins over `default` for the same name.
    if ((links && ns === namespace) || (master && !chosen.has(name))) chosen.set(name, s);
  }
  for (const [name, s] of [...chosen].sort(([a], [b]) => a.localeCompare(b))) {
    const prefix = name.toUpperCase().replace(/-/g, '_');
    const ip = s.spec!.clusterIP!;
    const ports = s.spec?.ports ?? [];
    if (ports.length === 0) continue;
    const first = ports[0]!;
    env.set(`${prefix}_SERVICE_HOST`, ip);
    env.set(`${prefix}_SERVICE_PORT`, String(first.port));
    for (const p of ports) {
      if (p.name)
        env.set(`${prefix}_SERVICE_PORT_${p.name.toUpperCase().replace(/-/g, '_')}`, String(p.port));
    }
    const proto = (first.protocol ?? 'TCP').toLowerCase();
    env.set(`${prefix}_PORT`, `${proto}://${ip}:${first.port}`);
    for (const p of ports) {
      const pr = (p.protocol ?? 'TCP').toUpperCase();
      const base = `${prefix}_PORT_${p.port}_${pr}`;
      env.set(base, `${pr.toLowerCase()}://${ip}:${p.port}`);
      env.set(`${base}_PROTO`, pr.toLowerCase());
      env.set(`${base}_PORT`, String(p.port));
      env.set(`${base}_ADDR`, ip);
    }
  }
  return env;
}

export interface EnvContext {
  pod: V1Pod;
  container: V1Container;
  addresses: PodAddresses;
  sources: EnvSources;
  /** The node's allocatable resources, for resourceFieldRef without a limit. */
  allocatable: Record<string, string>;
}

/**
 * The container's environment. A missing Secret or ConfigMap (or key) that is not `optional`
 * throws ContainerConfigError: the container waits with CreateContainerConfigError.
 */
export async function containerEnv(ctx: EnvContext): Promise<Map<string, string>> {
  const { pod, container, sources } = ctx;
  const namespace = pod.metadata?.namespace ?? 'default';
  const env = serviceEnv(pod, await sources.services(namespace));
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    if (from.secretRef) {
      const secret = await sources.secret(namespace, from.secretRef.name ?? '');
      if (!secret) {
        if (from.secretRef.optional) continue;
        throw new ContainerConfigError(`secret "${from.secretRef.name}" not found`);
      }
      for (const key of Object.keys(secret.data ?? {})) env.set(prefix + key, secretValue(secret, key) ?? '');
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
    const value = await envValue(ctx, namespace, v, env);
    if (value !== undefined) env.set(v.name, value);
  }
  return env;
}

async function envValue(
  ctx: EnvContext,
  namespace: string,
  v: V1EnvVar,
  env: Map<string, string>,
): Promise<string | undefined> {
  const source = v.valueFrom;
  if (!source) return expandVars(v.value ?? '', (name) => env.get(name));
  if (source.fieldRef) return fieldValue(ctx.pod, source.fieldRef.fieldPath, ctx.addresses);
  if (source.resourceFieldRef) {
    const r = source.resourceFieldRef;
    const target = r.containerName
      ? (ctx.pod.spec?.containers?.find((c) => c.name === r.containerName) ?? ctx.container)
      : ctx.container;
    return resourceValue(target, r.resource, r.divisor as string | undefined, ctx.allocatable);
  }
  if (source.secretKeyRef) {
    const ref = source.secretKeyRef;
    const secret = await ctx.sources.secret(namespace, ref.name ?? '');
    const value = secret ? secretValue(secret, ref.key) : undefined;
    if (value === undefined && !ref.optional) {
      throw new ContainerConfigError(
        secret
          ? `couldn't find key ${ref.key} in Secret ${namespace}/${ref.name}`
          : `secret "${ref.name}" not found`,
      );
    }
    return value;
  }
  if (source.configMapKeyRef) {
    const ref = source.configMapKeyRef;
    const cm = await ctx.sources.configMap(namespace, ref.name ?? '');
    const value = cm?.data?.[ref.key];
    if (value === undefined && !ref.optional) {
      throw new ContainerConfigError(
        cm
          ? `couldn't find key ${ref.key} in ConfigMap ${namespace}/${ref.name}`
          : `configmap "${ref.name}" not found`,
      );
    }
    return value;
  }
  throw new ContainerConfigError(`env ${v.name}: unsupported valueFrom`);
}
