// ConfluxCluster and ConfluxBackup resources on the API server, through client-node: reads and
// status writes with CustomObjectsApi, Events with events.k8s.io/v1, and a watch with client-node
// informers. Every object is parsed once, here, with the zod schemas of operator/api; an object
// that does not parse is logged and skipped (one bad resource must not stop the others).
//
// Invariants:
// - Status writes carry the resourceVersion that was read; a 409 becomes ConflictError, so the
//   reconciler re-reads instead of overwriting a newer object.
// - The watch restarts after every failure, with backoff (client-node's informer itself relists
//   after 410 Gone and reconnects after a closed or idle connection, but stops on other errors).
// - A change is signalled only when it can matter to the reconciler (generation, spec, labels,
//   annotations, deletion); the status writes the reconciler itself makes are not echoed back.
// - While it watches, reads come from the informers' cache once their first LIST is in (no request
//   per pass), except for an object whose own status write the watch has not delivered yet, or
//   that met a conflict: that one is read from the API server (kube-cache.ts does the same for the
//   objects a cluster owns). With a KubeCache, a change to an owned object signals its cluster.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  ApiException,
  CustomObjectsApi,
  EventsV1Api,
  type EventsV1Event,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  makeInformer,
  V1MicroTime,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { z } from 'zod';
import {
  API_VERSION,
  type ClusterStatus,
  type ConfluxBackup,
  type ConfluxCluster,
  clusterStatusSchema,
  confluxBackupSchema,
  confluxClusterSchema,
  GROUP,
  VERSION,
} from '../api/cluster.js';
import { EXPECTATION_TTL_MS, type KubeCache } from './kube-cache.js';
import { type BoundedClientOptions, boundedApiClient } from './kube-client.js';
import { ConflictError, type InvalidCluster, type ResourceStore } from './platform.js';
import { type Cached, cachedInformer, fresh, seen } from './resource-cache.js';

export const CLUSTER_PLURAL = 'confluxclusters';
export const BACKUP_PLURAL = 'confluxbackups';
export const REPORTING_CONTROLLER = 'conflux.io/operator';
const MAX_WATCH_RESTART_DELAY_MS = 30_000;
const MAX_REMEMBERED_EVENTS = 1_000;
/** How long a list waits for the watch's first LIST before it asks the API server itself. */
const SYNC_WAIT_MS = 10_000;

type Plural = typeof CLUSTER_PLURAL | typeof BACKUP_PLURAL;
const KIND: Record<Plural, 'ConfluxCluster' | 'ConfluxBackup'> = {
  confluxclusters: 'ConfluxCluster',
  confluxbackups: 'ConfluxBackup',
};

export interface KubernetesStoreOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** List and watch only this namespace (default: all namespaces). */
  namespace?: string;
  /** Who reports Events (default: $POD_NAME, else the host name). */
  reportingInstance?: string;
  now?: () => Date;
  /** First delay before a failed watch restarts; it doubles up to 30 s (default 1 s). */
  watchRestartDelayMs?: number;
  /** A repeat of the same Event within this window counts on the first one (default 10 min). */
  eventDedupWindowMs?: number;
  /** Every request bounded by a timeout (kube-client.ts); `onRequest` counts them. */
  api?: BoundedClientOptions;
  /** The cache of owned objects: its changes signal their cluster through `watch`. */
  cache?: KubeCache;
}

/** Parses a custom resource; logs and returns null when it does not match its schema. */
export function parseResource<S extends typeof confluxClusterSchema | typeof confluxBackupSchema>(
  schema: S,
  kind: 'ConfluxCluster' | 'ConfluxBackup',
  raw: unknown,
  log: Logger,
): z.output<S> | null {
  // List items of custom resources carry apiVersion and kind; fill them in for the odd server that
  // leaves them out.
  const obj = typeof raw === 'object' && raw !== null ? { apiVersion: API_VERSION, kind, ...raw } : raw;
  const parsed = schema.safeParse(obj);
  if (parsed.success) return parsed.data as z.output<S>;
  const meta = (raw as { metadata?: { namespace?: string; name?: string } } | null)?.metadata;
  log.warn(
    {
      kind,
      namespace: meta?.namespace,
      name: meta?.name,
      issues: parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    },
    'skipping a resource that does not match its schema',
  );
  return null;
}

/** What about an object can matter to the reconciler (status and resourceVersion cannot). */
export function changeFingerprint(raw: unknown): string {
  const o = (raw ?? {}) as {
    metadata?: {
      generation?: number;
      labels?: unknown;
      annotations?: unknown;
      deletionTimestamp?: unknown;
    };
    spec?: unknown;
  };
  const m = o.metadata ?? {};
  return JSON.stringify([m.generation, o.spec, m.labels, m.annotations, m.deletionTimestamp]);
}

/** A 409 from the API server as ConflictError; anything else unchanged. */
export function toStoreError(err: unknown, what: string): unknown {
  if (err instanceof ApiException && err.code === 409) {
    return new ConflictError(`${what} changed since it was read (HTTP 409)`);
  }
  return err;
}

export class KubernetesStore implements ResourceStore {
  private readonly custom: CustomObjectsApi;
  private readonly events: EventsV1Api;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly reportingInstance: string;
  private readonly recentEvents = new Map<string, { name: string; firstMs: number; count: number }>();
  private readonly cached = new Map<Plural, Cached>();

  constructor(private readonly o: KubernetesStoreOptions) {
    this.custom = boundedApiClient(o.kubeConfig, CustomObjectsApi, o.api);
    this.events = boundedApiClient(o.kubeConfig, EventsV1Api, o.api);
    this.log = o.logger.child({ component: 'kubernetes-store' });
    this.now = o.now ?? (() => new Date());
    this.reportingInstance = (o.reportingInstance ?? process.env.POD_NAME ?? hostname()).slice(0, 128);
  }

  async listClusters(): Promise<ConfluxCluster[]> {
    const items = await this.list(CLUSTER_PLURAL, this.o.namespace, true);
    return items
      .map((raw) => parseResource(confluxClusterSchema, 'ConfluxCluster', raw, this.log))
      .filter((c): c is ConfluxCluster => c !== null);
  }

  async getCluster(namespace: string, name: string): Promise<ConfluxCluster | null> {
    const raw = await this.getRawCluster(namespace, name);
    return raw === null ? null : parseResource(confluxClusterSchema, 'ConfluxCluster', raw, this.log);
  }

  async invalidCluster(namespace: string, name: string): Promise<InvalidCluster | null> {
    const raw = (await this.getRawCluster(namespace, name)) as {
      metadata?: InvalidCluster['metadata'];
      status?: unknown;
    } | null;
    if (raw === null) return null;
    const parsed = confluxClusterSchema.safeParse({
      apiVersion: API_VERSION,
      kind: 'ConfluxCluster',
      ...raw,
    });
    if (parsed.success) return null;
    const m = raw.metadata ?? { name, namespace };
    const status = clusterStatusSchema.safeParse(raw.status ?? {});
    return {
      metadata: {
        name: m.name,
        namespace: m.namespace,
        ...(m.uid ? { uid: m.uid } : {}),
        ...(m.generation !== undefined ? { generation: m.generation } : {}),
        ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}),
      },
      status: status.success ? status.data : {},
      problems: parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    };
  }

  async writeInvalidClusterStatus(cluster: InvalidCluster, status: ClusterStatus): Promise<void> {
    const shell = { apiVersion: API_VERSION, kind: 'ConfluxCluster', metadata: cluster.metadata };
    await this.replaceStatus(CLUSTER_PLURAL, shell as ConfluxCluster, status);
  }

  private async getRawCluster(namespace: string, name: string): Promise<unknown | null> {
    const cache = this.cached.get(CLUSTER_PLURAL);
    if (cache?.isSynced && fresh(cache, `${namespace}/${name}`, this.now().getTime())) {
      return cache.get(name, namespace) ?? null;
    }
    try {
      return await this.custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: CLUSTER_PLURAL,
        name,
      });
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return null;
      throw err;
    }
  }

  async writeClusterStatus(cluster: ConfluxCluster, status: ClusterStatus): Promise<ConfluxCluster> {
    const raw = await this.replaceStatus(CLUSTER_PLURAL, cluster, status);
    this.wrote(CLUSTER_PLURAL, cluster, raw);
    const parsed = parseResource(confluxClusterSchema, 'ConfluxCluster', raw, this.log);
    if (!parsed)
      throw new Error(`the API server answered the status write of ${keyOf(cluster)} with an invalid object`);
    return parsed;
  }

  async listBackups(namespace: string): Promise<ConfluxBackup[]> {
    const items = await this.list(BACKUP_PLURAL, namespace, true);
    return items
      .map((raw) => parseResource(confluxBackupSchema, 'ConfluxBackup', raw, this.log))
      .filter((b): b is ConfluxBackup => b !== null);
  }

  async writeBackupStatus(
    backup: ConfluxBackup,
    status: NonNullable<ConfluxBackup['status']>,
  ): Promise<ConfluxBackup> {
    const raw = await this.replaceStatus(BACKUP_PLURAL, backup, status);
    this.wrote(BACKUP_PLURAL, backup, raw);
    const parsed = parseResource(confluxBackupSchema, 'ConfluxBackup', raw, this.log);
    if (!parsed)
      throw new Error(`the API server answered the status write of ${keyOf(backup)} with an invalid object`);
    return parsed;
  }

  /**
   * An events.k8s.io/v1 Event. A repeat (same object, type, reason and message) within the
   * dedup window increments the first Event's series instead of creating another. Failures are
   * logged, never thrown: an Event is a report, and must not fail the step it reports on.
   */
  async event(
    object: ConfluxCluster | ConfluxBackup,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const namespace = object.metadata.namespace;
    const now = this.now();
    const key = [
      namespace,
      object.kind,
      object.metadata.name,
      object.metadata.uid,
      type,
      reason,
      message,
    ].join('\u0000');
    const windowMs = this.o.eventDedupWindowMs ?? 10 * 60_000;
    const seen = this.recentEvents.get(key);
    try {
      if (seen && now.getTime() - seen.firstMs < windowMs) {
        seen.count += 1;
        try {
          await this.events.patchNamespacedEvent({
            name: seen.name,
            namespace,
            body: [
              {
                op: 'add',
                path: '/series',
                value: { count: seen.count, lastObservedTime: new V1MicroTime(now) },
              },
            ],
          });
          return;
        } catch (err) {
          if (!(err instanceof ApiException && err.code === 404)) throw err;
          // The first Event expired on the server: record a new one.
        }
      }
      const name = `${object.metadata.name}.${randomBytes(8).toString('hex')}`;
      const body: EventsV1Event = {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name, namespace },
        eventTime: new V1MicroTime(now),
        reportingController: REPORTING_CONTROLLER,
        reportingInstance: this.reportingInstance,
        action: 'Reconcile',
        reason: reason.slice(0, 128),
        note: message.slice(0, 1024),
        type,
        regarding: {
          apiVersion: object.apiVersion,
          kind: object.kind,
          name: object.metadata.name,
          namespace,
          ...(object.metadata.uid ? { uid: object.metadata.uid } : {}),
          ...(object.metadata.resourceVersion ? { resourceVersion: object.metadata.resourceVersion } : {}),
        },
      };
      await this.events.createNamespacedEvent({ namespace, body });
      this.remember(key, { name, firstMs: now.getTime(), count: 1 }, windowMs);
    } catch (err) {
      this.log.warn(
        { err: (err as Error).message, reason, object: keyOf(object) },
        'could not record an Event',
      );
    }
  }

  watch(onChange: (key: { namespace: string; name: string }) => void): () => void {
    const stops = [
      // Every cluster, parseable or not: a pass reports one the operator cannot run (InvalidSpec).
      this.watchPlural(CLUSTER_PLURAL, (raw) => {
        const { namespace, name } = raw.metadata ?? {};
        const cluster = raw.kind === undefined || raw.kind === 'ConfluxCluster';
        return cluster && namespace && name ? { namespace, name } : null;
      }),
      // A backup concerns the cluster it names: signal that cluster.
      this.watchPlural(BACKUP_PLURAL, (raw) => {
        const b = parseResource(confluxBackupSchema, 'ConfluxBackup', raw, this.log);
        return b && { namespace: b.metadata.namespace, name: b.spec.clusterName };
      }),
    ].map((start) => start(onChange));
    if (this.o.cache) stops.push(this.o.cache.onChange(onChange));
    return () => {
      for (const stop of stops) stop();
    };
  }

  private watchPlural(
    plural: Plural,
    keyFor: (raw: KubernetesObject) => { namespace: string; name: string } | null,
  ): (onChange: (key: { namespace: string; name: string }) => void) => () => void {
    return (onChange) => {
      const ns = this.o.namespace;
      const path = `/apis/${GROUP}/${VERSION}${ns ? `/namespaces/${ns}` : ''}/${plural}`;
      const informer = makeInformer<KubernetesObject>(this.o.kubeConfig, path, async () => ({
        apiVersion: API_VERSION,
        kind: `${KIND[plural]}List`,
        ...((await this.listRaw(plural, ns)) as KubernetesListObject<KubernetesObject>),
      }));
      const log = this.log.child({ watch: plural });
      const cache = cachedInformer(informer);
      this.cached.set(plural, cache);
      const fingerprints = new Map<string, string>();
      const baseDelayMs = this.o.watchRestartDelayMs ?? 1_000;
      let delayMs = baseDelayMs;
      let stopped = false;
      let failed = false;
      let timer: NodeJS.Timeout | undefined;

      const idOf = (obj: KubernetesObject) => `${obj.metadata?.namespace}/${obj.metadata?.name}`;
      const signal = (obj: KubernetesObject) => {
        const key = keyFor(obj);
        if (key) onChange(key);
      };
      const changed = (obj: KubernetesObject) => {
        seen(cache, obj);
        const fp = changeFingerprint(obj);
        if (fingerprints.get(idOf(obj)) === fp) return;
        fingerprints.set(idOf(obj), fp);
        signal(obj);
      };
      informer.on('add', changed);
      informer.on('update', changed);
      informer.on('delete', (obj) => {
        cache.pending.delete(idOf(obj));
        fingerprints.delete(idOf(obj));
        signal(obj);
      });
      const start = () => {
        failed = false;
        informer.start().then(
          () => {
            if (failed) return;
            delayMs = baseDelayMs;
            cache.markSynced();
          },
          (err: unknown) => restart(err),
        );
      };
      const restart = (err: unknown) => {
        failed = true;
        if (stopped || timer) return;
        log.warn(
          { err: (err as Error | undefined)?.message, retryInMs: delayMs },
          'watch failed; restarting',
        );
        timer = setTimeout(() => {
          timer = undefined;
          if (!stopped) start();
        }, delayMs);
        delayMs = Math.min(delayMs * 2, MAX_WATCH_RESTART_DELAY_MS);
      };
      informer.on('error', restart);
      start();
      return () => {
        stopped = true;
        clearTimeout(timer);
        this.cached.delete(plural);
        void informer.stop();
      };
    };
  }

  /** After a status write: reads of that object go to the API server until the watch delivers it. */
  private wrote(plural: Plural, object: ConfluxCluster | ConfluxBackup, raw: unknown): void {
    const rv = (raw as KubernetesObject | null)?.metadata?.resourceVersion;
    const cache = this.cached.get(plural);
    if (!cache || (rv && cache.delivered.has(keyOf(object), rv))) return; // already delivered
    const untilMs = this.now().getTime() + EXPECTATION_TTL_MS;
    cache.pending.set(keyOf(object), { rv: rv ?? null, untilMs });
  }

  /** Every item of `plural`; from the watch's cache when it runs and `cachedOk` (once it has listed). */
  private async list(plural: Plural, namespace: string | undefined, cachedOk = false): Promise<unknown[]> {
    const cache = this.cached.get(plural);
    if (cachedOk && cache) {
      // The first LIST of the watch is the list; if it takes too long, ask the API server (whose
      // refusal then reaches the caller).
      await Promise.race([cache.synced, new Promise((r) => setTimeout(r, SYNC_WAIT_MS).unref())]);
    }
    if (cachedOk && cache?.isSynced) {
      const nowMs = this.now().getTime();
      const stale = [...cache.pending.keys()].some(
        (k) => (!namespace || k.startsWith(`${namespace}/`)) && !fresh(cache, k, nowMs),
      );
      if (!stale) return [...cache.list(namespace)];
    }
    const list = (await this.listRaw(plural, namespace)) as { items?: unknown[] };
    return Array.isArray(list.items) ? list.items : [];
  }

  private listRaw(plural: Plural, namespace: string | undefined): Promise<unknown> {
    return namespace
      ? this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural })
      : this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural });
  }

  private async replaceStatus(
    plural: Plural,
    object: ConfluxCluster | ConfluxBackup,
    status: unknown,
  ): Promise<unknown> {
    try {
      return await this.custom.replaceNamespacedCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        namespace: object.metadata.namespace,
        plural,
        name: object.metadata.name,
        // The status subresource takes only .status from this; metadata.resourceVersion makes the
        // write conditional on the object being unchanged since it was read.
        body: { ...object, status },
      });
    } catch (err) {
      const stored = toStoreError(err, `${object.kind} ${keyOf(object)}`);
      // The cache held an older object: read it from the API server until the watch moves on.
      if (stored instanceof ConflictError) {
        const untilMs = this.now().getTime() + EXPECTATION_TTL_MS;
        this.cached.get(plural)?.pending.set(keyOf(object), { rv: null, untilMs });
      }
      throw stored;
    }
  }

  private remember(key: string, entry: { name: string; firstMs: number; count: number }, windowMs: number) {
    this.recentEvents.set(key, entry);
    if (this.recentEvents.size <= MAX_REMEMBERED_EVENTS) return;
    for (const [k, e] of this.recentEvents) {
      if (entry.firstMs - e.firstMs >= windowMs || this.recentEvents.size > MAX_REMEMBERED_EVENTS) {
        this.recentEvents.delete(k);
      }
    }
  }
}

function keyOf(object: { metadata: { namespace: string; name: string } }): string {
  return `${object.metadata.namespace}/${object.metadata.name}`;
}
