// The operator's watch-backed cache of what its clusters own (docs/ARCHITECTURE.md §8): one
// informer (LIST, then WATCH) per kind, limited by label to the objects the operator manages, so
// a settled pass reads nothing from the API server, and a change to an owned object (a deleted
// Service, a pod that became ready) enqueues its cluster's reconcile at once instead of at the
// next resync.
//
// Invariants:
// - Not ready, no answer: a read before every informer finished its first LIST waits for it (up
//   to a bound, then fails naming the kinds), so plan() never sees an empty cache as "nothing
//   exists".
// - Read your own writes: a write the operator makes (through `trackWrites`) records the
//   resourceVersion the API server answered; until the watch delivers that very version (or the
//   object's deletion), reads of that object, and lists of its kind in its namespace, go to the
//   API server. A version the watch delivered before the write's answer arrived counts at once.
//   An expectation the watch never meets (a relist skipped it) lapses after EXPECTATION_TTL_MS.
// - A failed watch restarts with back-off (client-node's informer itself relists after 410 Gone
//   and reconnects after a closed connection, but stops on other errors).

import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  makeInformer,
  NetworkingV1Api,
  PolicyV1Api,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { type BoundedClientOptions, boundedApiClient } from './kube-client.js';
import { DeliveredVersions } from './resource-cache.js';

/** The label every object the operator creates carries (kubernetes-objects.ts commonLabels). */
export const MANAGED_SELECTOR = 'app.kubernetes.io/managed-by=conflux-operator';
const INSTANCE_LABEL = 'app.kubernetes.io/instance';
/** An expectation the watch has not met after this long is dropped (the cache is trusted again). */
export const EXPECTATION_TTL_MS = 30_000;
const MAX_RESTART_DELAY_MS = 30_000;
/** A deletion the watch delivered this recently counts for a delete whose answer comes after it. */
const DELETE_RACE_MS = 5_000;

/** The kinds the cache holds, by the name client-node's typed methods use (`readNamespacedX`). */
export const CACHED_KINDS = [
  'StatefulSet',
  'Service',
  'PodDisruptionBudget',
  'Secret',
  'Pod',
  'PersistentVolumeClaim',
  'NetworkPolicy',
] as const;
export type CachedKind = (typeof CACHED_KINDS)[number];

export interface KubeCacheOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Watch only this namespace (default: all namespaces). */
  namespace?: string;
  /** Kinds not to watch (NetworkPolicy when the operator makes none). */
  without?: CachedKind[];
  /** The LISTs are bounded requests (kube-client.ts); `onRequest` counts them. */
  api?: BoundedClientOptions;
  /** How long a read waits for the first LISTs (default 30 s). */
  readyTimeoutMs?: number;
  /** First delay before a failed watch restarts; it doubles up to 30 s (default 1 s). */
  watchRestartDelayMs?: number;
  now?: () => number;
}

type ClusterKey = { namespace: string; name: string };
type Lister = (
  ns: string | undefined,
  labelSelector: string,
) => Promise<KubernetesListObject<KubernetesObject>>;

/** The collection path and the LIST of each kind. */
function kindsOf(kc: KubeConfig, api: BoundedClientOptions | undefined) {
  const core = boundedApiClient(kc, CoreV1Api, api);
  const apps = boundedApiClient(kc, AppsV1Api, api);
  const policy = boundedApiClient(kc, PolicyV1Api, api);
  const net = boundedApiClient(kc, NetworkingV1Api, api);
  const lists: Record<CachedKind, { group: string; plural: string; list: Lister }> = {
    StatefulSet: {
      group: '/apis/apps/v1',
      plural: 'statefulsets',
      list: (namespace, labelSelector) =>
        namespace
          ? apps.listNamespacedStatefulSet({ namespace, labelSelector })
          : apps.listStatefulSetForAllNamespaces({ labelSelector }),
    },
    Service: {
      group: '/api/v1',
      plural: 'services',
      list: (namespace, labelSelector) =>
        namespace
          ? core.listNamespacedService({ namespace, labelSelector })
          : core.listServiceForAllNamespaces({ labelSelector }),
    },
    PodDisruptionBudget: {
      group: '/apis/policy/v1',
      plural: 'poddisruptionbudgets',
      list: (namespace, labelSelector) =>
        namespace
          ? policy.listNamespacedPodDisruptionBudget({ namespace, labelSelector })
          : policy.listPodDisruptionBudgetForAllNamespaces({ labelSelector }),
    },
    Secret: {
      group: '/api/v1',
      plural: 'secrets',
      list: (namespace, labelSelector) =>
        namespace
          ? core.listNamespacedSecret({ namespace, labelSelector })
          : core.listSecretForAllNamespaces({ labelSelector }),
    },
    Pod: {
      group: '/api/v1',
      plural: 'pods',
      list: (namespace, labelSelector) =>
        namespace
          ? core.listNamespacedPod({ namespace, labelSelector })
          : core.listPodForAllNamespaces({ labelSelector }),
    },
    PersistentVolumeClaim: {
      group: '/api/v1',
      plural: 'persistentvolumeclaims',
      list: (namespace, labelSelector) =>
        namespace
          ? core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector })
          : core.listPersistentVolumeClaimForAllNamespaces({ labelSelector }),
    },
    NetworkPolicy: {
      group: '/apis/networking.k8s.io/v1',
      plural: 'networkpolicies',
      list: (namespace, labelSelector) =>
        namespace
          ? net.listNamespacedNetworkPolicy({ namespace, labelSelector })
          : net.listNetworkPolicyForAllNamespaces({ labelSelector }),
    },
  };
  return lists;
}

/** What a write left the object at: its resourceVersion, or gone; and until when to wait for it. */
type Expectation = { rv: string | null; untilMs: number };

const idOf = (ns: string, name: string) => `${ns}/${name}`;

/** The resourceVersion an informer listed or watched up to ('' before its first LIST succeeded). */
function listedVersion(informer: object): string {
  // makeInformer returns a ListWatch, whose latestResourceVersion its declared type omits.
  return (informer as { latestResourceVersion?: () => string }).latestResourceVersion?.() ?? '';
}

class KindCache {
  readonly informer;
  synced = false;
  readonly expectations = new Map<string, Expectation>();
  readonly delivered = new DeliveredVersions();
  /** When the watch last delivered each object's deletion (a delete's answer may come after it). */
  readonly deletedAtMs = new Map<string, number>();

  constructor(
    readonly kind: CachedKind,
    path: string,
    list: () => Promise<KubernetesListObject<KubernetesObject>>,
    kc: KubeConfig,
  ) {
    this.informer = makeInformer<KubernetesObject>(kc, path, list, MANAGED_SELECTOR);
  }

  /** Meets the expectation of `obj` when the watch delivered the version a write left it at. */
  seen(obj: KubernetesObject, deleted: boolean): void {
    const id = idOf(obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
    this.delivered.add(id, obj.metadata?.resourceVersion);
    if (deleted) {
      this.deletedAtMs.set(id, Date.now());
      if (this.deletedAtMs.size > 10_000) this.deletedAtMs.delete(this.deletedAtMs.keys().next().value ?? '');
    }
    const e = this.expectations.get(id);
    if (e && (deleted || e.rv === obj.metadata?.resourceVersion)) this.expectations.delete(id);
  }

  /** The cache holds the object as the operator's last write left it (or nothing was written). */
  current(ns: string, name: string, nowMs: number): boolean {
    const e = this.expectations.get(idOf(ns, name));
    if (!e) return true;
    if (e.untilMs <= nowMs) {
      this.expectations.delete(idOf(ns, name));
      return true;
    }
    const held = this.informer.get(name, ns);
    if (e.rv === null ? held === undefined : held?.metadata?.resourceVersion === e.rv) {
      this.expectations.delete(idOf(ns, name));
      return true;
    }
    return false;
  }
}

export class KubeCache {
  private readonly kinds = new Map<CachedKind, KindCache>();
  private readonly listeners = new Set<(key: ClusterKey) => void>();
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly stops: (() => void)[] = [];
  private started = false;

  constructor(private readonly o: KubeCacheOptions) {
    this.log = o.logger.child({ component: 'kube-cache' });
    this.now = o.now ?? Date.now;
    const lists = kindsOf(o.kubeConfig, o.api);
    const ns = o.namespace;
    for (const kind of CACHED_KINDS) {
      if (o.without?.includes(kind)) continue;
      const { group, plural, list } = lists[kind];
      const path = `${group}${ns ? `/namespaces/${ns}` : ''}/${plural}`;
      this.kinds.set(kind, new KindCache(kind, path, () => list(ns, MANAGED_SELECTOR), o.kubeConfig));
    }
  }

  /** Starts every informer (their first LISTs run concurrently). Idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const k of this.kinds.values()) this.stops.push(this.run(k));
  }

  stop(): void {
    for (const stop of this.stops.splice(0)) stop();
    this.started = false;
  }

  /** Whether every informer finished its first LIST. */
  get ready(): boolean {
    return [...this.kinds.values()].every((k) => k.synced);
  }

  /** Resolves once every informer finished its first LIST; fails after readyTimeoutMs naming the others. */
  async whenReady(): Promise<void> {
    if (this.ready) return;
    if (!this.started) throw new Error('the Kubernetes object cache was never started');
    const deadline = this.now() + (this.o.readyTimeoutMs ?? 30_000);
    while (!this.ready) {
      if (this.now() >= deadline) {
        const waiting = [...this.kinds.values()].filter((k) => !k.synced).map((k) => k.kind);
        throw new Error(`the Kubernetes object cache has not listed ${waiting.join(', ')} yet`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Calls `onChange` with the owning cluster of every owned object that is added, changed or deleted. */
  onChange(onChange: (key: ClusterKey) => void): () => void {
    this.listeners.add(onChange);
    return () => this.listeners.delete(onChange);
  }

  /** Whether `kind` is watched at all. */
  holds(kind: CachedKind): boolean {
    return this.kinds.has(kind);
  }

  /**
   * The cached object, null when the cache knows it does not exist, or undefined when the cache
   * cannot answer (the kind is not watched, or a write of the operator is not in the cache yet).
   */
  async get<T>(kind: CachedKind, namespace: string, name: string): Promise<T | null | undefined> {
    const k = this.kinds.get(kind);
    if (!k) return undefined;
    await this.whenReady();
    if (!k.current(namespace, name, this.now())) return undefined;
    return (k.informer.get(name, namespace) as T | undefined) ?? null;
  }

  /**
   * The cached objects of `kind` in `namespace` whose labels include `labels`, or undefined when
   * the cache cannot answer (not watched, or a write to one of them is not in the cache yet).
   */
  async list<T>(
    kind: CachedKind,
    namespace: string,
    labels: Record<string, string>,
  ): Promise<T[] | undefined> {
    const k = this.kinds.get(kind);
    if (!k) return undefined;
    await this.whenReady();
    const nowMs = this.now();
    for (const id of [...k.expectations.keys()]) {
      const [ns = '', name = ''] = id.split('/');
      if (ns === namespace && !k.current(ns, name, nowMs)) return undefined;
    }
    const match = (o: KubernetesObject) =>
      Object.entries(labels).every(([key, v]) => o.metadata?.labels?.[key] === v);
    return k.informer.list(namespace).filter(match) as T[];
  }

  /**
   * Records what a write of the operator left an object at: `rv` its new resourceVersion, or null
   * when it is gone. Reads of it go to the API server until the watch delivers that.
   */
  expect(kind: CachedKind, namespace: string, name: string, rv: string | null): void {
    const k = this.kinds.get(kind);
    if (!k) return;
    const id = idOf(namespace, name);
    // The watch may have delivered it already (and a newer version after it).
    if (rv !== null ? k.delivered.has(id, rv) : Date.now() - (k.deletedAtMs.get(id) ?? 0) < DELETE_RACE_MS) {
      k.deletedAtMs.delete(id);
      return;
    }
    k.expectations.set(id, { rv, untilMs: this.now() + EXPECTATION_TTL_MS });
  }

  /** Runs one informer until stopped: its events feed the listeners; a failed watch restarts. */
  private run(k: KindCache): () => void {
    const log = this.log.child({ kind: k.kind });
    const base = this.o.watchRestartDelayMs ?? 1_000;
    let delayMs = base;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const signal = (obj: KubernetesObject) => {
      const name = obj.metadata?.labels?.[INSTANCE_LABEL];
      const namespace = obj.metadata?.namespace;
      if (!name || !namespace) return;
      for (const l of this.listeners) l({ namespace, name });
    };
    const changed = (deleted: boolean) => (obj: KubernetesObject) => {
      k.seen(obj, deleted);
      signal(obj);
    };
    k.informer.on('add', changed(false));
    k.informer.on('update', changed(false));
    k.informer.on('delete', changed(true));
    const start = () => {
      k.informer.start().then(
        () => {
          // start() resolves once the LIST was taken in and the WATCH opened (or the LIST failed).
          if (listedVersion(k.informer) !== '' && !stopped) {
            k.synced = true;
            delayMs = base;
          }
        },
        (err: unknown) => restart(err),
      );
    };
    const restart = (err: unknown) => {
      if (stopped || timer) return;
      log.warn({ err: (err as Error | undefined)?.message, retryInMs: delayMs }, 'watch failed; restarting');
      timer = setTimeout(() => {
        timer = undefined;
        if (!stopped) start();
      }, delayMs);
      delayMs = Math.min(delayMs * 2, MAX_RESTART_DELAY_MS);
    };
    k.informer.on('error', restart);
    start();
    return () => {
      stopped = true;
      clearTimeout(timer);
      void k.informer.stop();
    };
  }
}

const WRITE = /^(create|patch|replace|delete)Namespaced([A-Za-z]+)$/;

/**
 * `api` (a typed client-node API) with every write of a cached kind recorded in `cache` (see
 * KubeCache.expect), so the operator reads its own writes. Other calls pass through unchanged.
 */
export function trackWrites<T extends object>(api: T, cache: KubeCache | undefined): T {
  if (!cache) return api;
  return new Proxy(api, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      const m = typeof prop === 'string' && typeof value === 'function' ? WRITE.exec(prop) : null;
      const kind = m?.[2] as CachedKind | undefined;
      if (!m || !kind || !cache.holds(kind)) return value;
      return async (
        param: { namespace: string; name?: string; body?: KubernetesObject },
        ...rest: unknown[]
      ) => {
        const result = (await (value as (...a: unknown[]) => Promise<unknown>).apply(target, [
          param,
          ...rest,
        ])) as KubernetesObject | undefined;
        const name = result?.metadata?.name ?? param.name ?? param.body?.metadata?.name;
        // A delete answers with the object (still terminating) or with a Status (gone).
        const rv = result?.kind === 'Status' ? null : (result?.metadata?.resourceVersion ?? null);
        if (name && (rv !== null || m[1] === 'delete')) cache.expect(kind, param.namespace, name, rv);
        return result;
      };
    },
  });
}
