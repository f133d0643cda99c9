// The ConfluxCluster and ConfluxBackup informers of kubernetes-store.ts as a read cache: it
// answers once the first LIST is in, and not for an object whose status write (or conflict) the
// watch has not delivered yet (docs/ARCHITECTURE.md §8).

import type { KubernetesObject } from '@kubernetes/client-node';

const VERSIONS_KEPT = 8;
const OBJECTS_KEPT = 20_000;

/**
 * The last resourceVersions the watch delivered for each object. A write's answer can reach the
 * operator after the watch already delivered that version (and a newer one, a controller's status
 * update): a write is in the cache when its version is among these. Versions are only compared
 * for equality (the API treats them as opaque).
 */
export class DeliveredVersions {
  private readonly byKey = new Map<string, string[]>();

  add(key: string, rv: string | undefined): void {
    if (!rv) return;
    const kept = this.byKey.get(key) ?? [];
    this.byKey.delete(key); // re-inserted last: the map's order is the eviction order
    this.byKey.set(key, [...kept.slice(1 - VERSIONS_KEPT), rv]);
    if (this.byKey.size > OBJECTS_KEPT) this.byKey.delete(this.byKey.keys().next().value ?? '');
  }

  has(key: string, rv: string): boolean {
    return this.byKey.get(key)?.includes(rv) ?? false;
  }
}

/** An informer's objects, once its first LIST is in, and the writes it has not delivered yet. */
export interface Cached {
  get(name: string, namespace: string): KubernetesObject | undefined;
  list(namespace?: string): readonly KubernetesObject[];
  synced: Promise<void>;
  isSynced: boolean;
  /** key -> the resourceVersion a status write left (null: a conflict, any newer event will do). */
  pending: Map<string, { rv: string | null; untilMs: number }>;
  delivered: DeliveredVersions;
}

/** An informer as a Cached; `markSynced` once its first LIST is in. */
export function cachedInformer(informer: Pick<Cached, 'get' | 'list'>): Cached & { markSynced(): void } {
  let resolve = () => {};
  const cache: Cached & { markSynced(): void } = {
    get: (name, namespace) => informer.get(name, namespace),
    list: (namespace) => informer.list(namespace),
    synced: new Promise<void>((r) => {
      resolve = r;
    }),
    isSynced: false,
    pending: new Map(),
    delivered: new DeliveredVersions(),
    markSynced: () => {
      cache.isSynced = true;
      resolve();
    },
  };
  return cache;
}

/** The watch delivered `obj`: a status write waiting for this version (or a conflict) is settled. */
export function seen(cache: Cached, obj: KubernetesObject): void {
  const key = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
  cache.delivered.add(key, obj.metadata?.resourceVersion);
  const p = cache.pending.get(key);
  if (p && (p.rv === null || p.rv === obj.metadata?.resourceVersion)) cache.pending.delete(key);
}

/** The cache may answer for `key`: no write of ours is still on its way to it (or it lapsed). */
export function fresh(cache: Cached, key: string, nowMs: number): boolean {
  const p = cache.pending.get(key);
  if (!p) return true;
  const [namespace = '', name = ''] = key.split('/');
  const held = cache.get(name, namespace)?.metadata?.resourceVersion;
  if (p.untilMs <= nowMs || (p.rv !== null && held === p.rv)) {
    cache.pending.delete(key);
    return true;
  }
  return false;
}
