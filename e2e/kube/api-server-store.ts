// The object store of the API stand-in: every object keyed by storage (group/resource),
// namespace and name; one global resourceVersion counter (each write takes the next value); a
// bounded history of watch events per storage (a watch from a version older than what the
// history still holds is answered 410 Expired, as by the real watch cache); listeners that the
// watch handlers and the controllers subscribe to. Reads hand out deep copies.

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: ManagedFieldsEntry[];
  [key: string]: unknown;
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Record<string, unknown>;
  subresource?: string;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: EventType;
  rv: number;
  storage: string;
  object: KubeObject;
  /** The object before this change (MODIFIED and DELETED). */
  old?: KubeObject;
}

export const clone = <T>(v: T): T => structuredClone(v);
const keyOf = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;

export class ObjectStore {
  private rvCounter = 0;
  private readonly data = new Map<string, Map<string, KubeObject>>();
  private readonly uids = new Map<string, { storage: string; key: string }>();
  private readonly history = new Map<string, { events: StoreEvent[]; compactedRv: number }>();
  private readonly listeners = new Set<(e: StoreEvent) => void>();

  constructor(private readonly historyLimit = 1_000) {}

  /** The latest resourceVersion handed out. */
  get resourceVersion(): number {
    return this.rvCounter;
  }

  get(storage: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.data.get(storage)?.get(keyOf(namespace, name));
    return o && clone(o);
  }

  /** Objects of a storage (one namespace, or all), in key order like etcd's. */
  list(storage: string, namespace?: string): KubeObject[] {
    const m = this.data.get(storage);
    if (!m) return [];
    const keys = [...m.keys()].filter((k) => namespace === undefined || k.startsWith(`${namespace}/`)).sort();
    return keys.map((k) => clone(m.get(k)!));
  }

  byUid(uid: string): { storage: string; object: KubeObject } | undefined {
    const at = this.uids.get(uid);
    const o = at && this.data.get(at.storage)?.get(at.key);
    return at && o ? { storage: at.storage, object: clone(o) } : undefined;
  }

  /** Every stored object, with its storage (for the garbage collector). */
  *entries(): Generator<{ storage: string; object: KubeObject }> {
    for (const [storage, m] of this.data) for (const o of m.values()) yield { storage, object: o };
  }

  /**
   * Writes one change with the next resourceVersion and records it for watches. The object given
   * for DELETED is the last state (it is reported with the resourceVersion of the deletion).
   */
  commit(type: EventType, storage: string, object: KubeObject): KubeObject {
    const stored = clone(object);
    const { namespace, name, uid } = stored.metadata;
    const key = keyOf(namespace, name!);
    let m = this.data.get(storage);
    if (!m) {
      m = new Map();
      this.data.set(storage, m);
    }
    const old = m.get(key);
    this.rvCounter += 1;
    stored.metadata.resourceVersion = String(this.rvCounter);
    if (type === 'DELETED') {
      m.delete(key);
      if (uid) this.uids.delete(uid);
    } else {
      m.set(key, stored);
      if (uid) this.uids.set(uid, { storage, key });
    }
    const event: StoreEvent = { type, rv: this.rvCounter, storage, object: stored, ...(old ? { old } : {}) };
    let h = this.history.get(storage);
    if (!h) {
      h = { events: [], compactedRv: 0 };
      this.history.set(storage, h);
    }
    h.events.push(event);
    while (h.events.length > this.historyLimit) h.compactedRv = h.events.shift()!.rv;
    for (const listener of [...this.listeners]) listener(event);
    return clone(stored);
  }

  /**
   * The events of a storage after `rv`, or `expired` (with the oldest version still served) when
   * the history no longer reaches back that far.
   */
  eventsSince(storage: string, rv: number): StoreEvent[] | { expired: number } {
    const h = this.history.get(storage);
    if (!h) return [];
    if (rv < h.compactedRv) return { expired: h.compactedRv };
    return h.events.filter((e) => e.rv > rv);
  }

  /** Forgets the history of a storage, as a compaction would (for tests of 410 Gone). */
  compact(storage?: string): void {
    for (const [s, h] of this.history) {
      if (storage !== undefined && s !== storage) continue;
      h.compactedRv = this.rvCounter;
      h.events = [];
    }
  }

  subscribe(listener: (e: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Drops a storage entirely, without events (a removed CRD's objects were deleted before). */
  drop(storage: string): void {
    this.data.delete(storage);
    this.history.delete(storage);
  }
}
