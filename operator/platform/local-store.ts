// LocalStore: the ResourceStore of the Local platform. ConfluxCluster and ConfluxBackup objects
// live in memory and in JSON files under `<root>/resources/` (one file per object, written
// atomically), so a restarted operator finds them again. It keeps the API server's semantics the
// reconciler relies on: a uid minted on create, `generation` bumped only by spec changes,
// `resourceVersion` bumped by every write that changes something (no-op writes change nothing and
// wake no watcher), optimistic concurrency on status writes, and status writes that never touch
// spec or generation.

import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import type { z } from 'zod';
import {
  backupStatusSchema,
  type ClusterStatus,
  type ConfluxBackup,
  type ConfluxCluster,
  clusterStatusSchema,
  confluxBackupSchema,
  confluxClusterSchema,
} from '../api/cluster.js';
import { ConflictError, type ResourceStore } from './platform.js';

export type ResourceKind = 'ConfluxCluster' | 'ConfluxBackup';
type Resource = ConfluxCluster | ConfluxBackup;

/** A resource that does not validate (bad spec, or a change a rule forbids). Like HTTP 422. */
export class InvalidResourceError extends Error {
  override readonly name = 'InvalidResourceError';
}

/** The object does not exist (HTTP 404). */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

/** One recorded event, shaped like a Kubernetes Event (deduplicated: `count`). */
export interface StoredEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  involvedObject: { kind: ResourceKind; namespace: string; name: string; uid?: string };
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
}

export interface LocalStoreOptions {
  /** State directory (for example `.conflux`); objects go to `<root>/resources/`. */
  root: string;
  logger?: Logger;
  /** Events kept in memory, newest last. Default 1000. */
  maxEvents?: number;
  now?: () => Date;
}

const SCHEMAS = { ConfluxCluster: confluxClusterSchema, ConfluxBackup: confluxBackupSchema } as const;
const FILE_PREFIX = { ConfluxCluster: 'confluxcluster', ConfluxBackup: 'confluxbackup' } as const;
const NAMESPACE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export class LocalStore implements ResourceStore {
  readonly dir: string;
  private readonly objects = new Map<string, Resource>();
  private readonly listeners = new Set<(key: { namespace: string; name: string }) => void>();
  private readonly recorded: StoredEvent[] = [];
  private readonly lastEventOf = new Map<string, StoredEvent>();
  private readonly log: Logger;
  private readonly maxEvents: number;
  private readonly now: () => Date;
  private revision = 0;

  constructor(opts: LocalStoreOptions) {
    this.dir = join(opts.root, 'resources');
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'local-store' });
    this.maxEvents = opts.maxEvents ?? 1000;
    this.now = opts.now ?? (() => new Date());
    mkdirSync(this.dir, { recursive: true });
    this.load();
  }

  // --- what `kubectl apply / delete / scale` would do ------------------------------------------

  /** Create, or update spec/labels/annotations (status is ignored, as on the API server). */
  async applyCluster(obj: unknown): Promise<ConfluxCluster> {
    return this.apply('ConfluxCluster', obj) as ConfluxCluster;
  }

  async applyBackup(obj: unknown): Promise<ConfluxBackup> {
    return this.apply('ConfluxBackup', obj) as ConfluxBackup;
  }

  /** The scale subresource: set `spec.replicas` (validated like any spec change). */
  async scaleCluster(namespace: string, name: string, replicas: number): Promise<ConfluxCluster> {
    const current = this.objects.get(keyOf('ConfluxCluster', namespace, name)) as ConfluxCluster | undefined;
    if (!current) throw new NotFoundError(`ConfluxCluster ${namespace}/${name} not found`);
    const { status: _status, ...rest } = current;
    const { resourceVersion: _rv, ...metadata } = current.metadata;
    return this.applyCluster({ ...rest, metadata, spec: { ...current.spec, replicas } });
  }

  async deleteCluster(namespace: string, name: string): Promise<boolean> {
    return this.remove('ConfluxCluster', namespace, name);
  }

  async deleteBackup(namespace: string, name: string): Promise<boolean> {
    return this.remove('ConfluxBackup', namespace, name);
  }

  // --- ResourceStore -----------------------------------------------------------------------------

  async listClusters(): Promise<ConfluxCluster[]> {
    return this.list('ConfluxCluster') as ConfluxCluster[];
  }

  async getCluster(namespace: string, name: string): Promise<ConfluxCluster | null> {
    const obj = this.objects.get(keyOf('ConfluxCluster', namespace, name));
    return obj ? (structuredClone(obj) as ConfluxCluster) : null;
  }

  async getBackup(namespace: string, name: string): Promise<ConfluxBackup | null> {
    const obj = this.objects.get(keyOf('ConfluxBackup', namespace, name));
    return obj ? (structuredClone(obj) as ConfluxBackup) : null;
  }

  async writeClusterStatus(cluster: ConfluxCluster, status: ClusterStatus): Promise<ConfluxCluster> {
    return this.writeStatus('ConfluxCluster', cluster, status, clusterStatusSchema) as ConfluxCluster;
  }

  async listBackups(namespace: string): Promise<ConfluxBackup[]> {
    return (this.list('ConfluxBackup') as ConfluxBackup[]).filter((b) => b.metadata.namespace === namespace);
  }

  async writeBackupStatus(
    backup: ConfluxBackup,
    status: NonNullable<ConfluxBackup['status']>,
  ): Promise<ConfluxBackup> {
    return this.writeStatus('ConfluxBackup', backup, status, backupStatusSchema) as ConfluxBackup;
  }

  async event(object: Resource, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const { namespace, name, uid } = object.metadata;
    const objectKey = keyOf(object.kind, namespace, name);
    const at = this.now().toISOString();
    const last = this.lastEventOf.get(objectKey);
    if (last && last.type === type && last.reason === reason && last.message === message) {
      last.count++;
      last.lastTimestamp = at;
      this.log.debug({ kind: object.kind, namespace, name, reason, count: last.count }, message);
      return;
    }
    const event: StoredEvent = {
      type,
      reason,
      message,
      involvedObject: { kind: object.kind, namespace, name, ...(uid ? { uid } : {}) },
      count: 1,
      firstTimestamp: at,
      lastTimestamp: at,
    };
    this.recorded.push(event);
    if (this.recorded.length > this.maxEvents) this.recorded.splice(0, this.recorded.length - this.maxEvents);
    this.lastEventOf.set(objectKey, event);
    const fields = { kind: object.kind, namespace, name, reason };
    if (type === 'Warning') this.log.warn(fields, message);
    else this.log.info(fields, message);
  }

  /** Recorded events, oldest first; optionally only those about one object. */
  events(filter?: { kind?: ResourceKind; namespace?: string; name?: string }): StoredEvent[] {
    return this.recorded
      .filter(
        (e) =>
          (!filter?.kind || e.involvedObject.kind === filter.kind) &&
          (!filter?.namespace || e.involvedObject.namespace === filter.namespace) &&
          (!filter?.name || e.involvedObject.name === filter.name),
      )
      .map((e) => structuredClone(e));
  }

  watch(onChange: (key: { namespace: string; name: string }) => void): () => void {
    this.listeners.add(onChange);
    return () => {
      this.listeners.delete(onChange);
    };
  }

  // --- internals ---------------------------------------------------------------------------------

  private apply(kind: ResourceKind, obj: unknown): Resource {
    const parsed = SCHEMAS[kind].safeParse(obj);
    if (!parsed.success)
      throw new InvalidResourceError(`${kind} ${describe(obj)} is invalid: ${issues(parsed.error)}`);
    const input = parsed.data as Resource;
    const { namespace, name } = input.metadata;
    if (!NAMESPACE.test(namespace)) {
      throw new InvalidResourceError(
        `${kind} ${namespace}/${name} is invalid: metadata.namespace: not a DNS label`,
      );
    }
    const key = keyOf(kind, namespace, name);
    const existing = this.objects.get(key);
    const labels = input.metadata.labels;
    const annotations = input.metadata.annotations;

    if (!existing) {
      const created = {
        apiVersion: input.apiVersion,
        kind,
        metadata: {
          name,
          namespace,
          uid: randomUUID(),
          generation: 1,
          resourceVersion: this.nextRevision(),
          creationTimestamp: this.now().toISOString(),
          ...(labels ? { labels } : {}),
          ...(annotations ? { annotations } : {}),
        },
        spec: input.spec,
      } as Resource;
      this.store(key, created, 'created');
      return structuredClone(created);
    }

    const rv = input.metadata.resourceVersion;
    if (rv !== undefined && rv !== existing.metadata.resourceVersion) {
      throw new ConflictError(
        `${kind} ${namespace}/${name} was modified (resourceVersion ${existing.metadata.resourceVersion}, not ${rv})`,
      );
    }
    if (kind === 'ConfluxCluster') {
      const before = (existing as ConfluxCluster).spec.restore;
      const after = (input as ConfluxCluster).spec.restore;
      if (canonical(before) !== canonical(after)) {
        throw new InvalidResourceError(
          `ConfluxCluster ${namespace}/${name} is invalid: spec.restore is immutable after creation`,
        );
      }
    }
    const specChanged = canonical(existing.spec) !== canonical(input.spec);
    const metaChanged =
      canonical(existing.metadata.labels) !== canonical(labels) ||
      canonical(existing.metadata.annotations) !== canonical(annotations);
    if (!specChanged && !metaChanged) return structuredClone(existing);

    const { labels: _l, annotations: _a, ...keptMeta } = existing.metadata;
    const updated = {
      ...existing,
      metadata: {
        ...keptMeta,
        generation: (existing.metadata.generation ?? 1) + (specChanged ? 1 : 0),
        resourceVersion: this.nextRevision(),
        ...(labels ? { labels } : {}),
        ...(annotations ? { annotations } : {}),
      },
      spec: input.spec,
    } as Resource;
    this.store(key, updated, specChanged ? 'spec updated' : 'metadata updated');
    return structuredClone(updated);
  }

  private writeStatus(kind: ResourceKind, obj: Resource, status: unknown, schema: z.ZodType): Resource {
    const { namespace, name, resourceVersion } = obj.metadata;
    const key = keyOf(kind, namespace, name);
    const stored = this.objects.get(key);
    if (!stored) throw new NotFoundError(`${kind} ${namespace}/${name} not found`);
    if (resourceVersion === undefined) {
      throw new InvalidResourceError(
        `${kind} ${namespace}/${name}: metadata.resourceVersion must be specified`,
      );
    }
    if (resourceVersion !== stored.metadata.resourceVersion) {
      throw new ConflictError(
        `${kind} ${namespace}/${name} was modified (resourceVersion ${stored.metadata.resourceVersion}, not ${resourceVersion})`,
      );
    }
    const parsed = schema.safeParse(status);
    if (!parsed.success) {
      throw new InvalidResourceError(
        `${kind} ${namespace}/${name}: status is invalid: ${issues(parsed.error)}`,
      );
    }
    // As stored by the API server: JSON (undefined members disappear).
    const next = JSON.parse(JSON.stringify(parsed.data)) as Resource['status'];
    if (canonical(stored.status) === canonical(next)) return structuredClone(stored);
    const updated = {
      ...stored,
      metadata: { ...stored.metadata, resourceVersion: this.nextRevision() },
      status: next,
    } as Resource;
    this.store(key, updated, null);
    return structuredClone(updated);
  }

  private remove(kind: ResourceKind, namespace: string, name: string): boolean {
    const key = keyOf(kind, namespace, name);
    if (!this.objects.delete(key)) return false;
    rmSync(this.fileOf(kind, namespace, name), { force: true });
    this.log.info({ kind, namespace, name }, 'deleted');
    this.notify(namespace, name);
    return true;
  }

  private list(kind: ResourceKind): Resource[] {
    return [...this.objects.values()]
      .filter((o) => o.kind === kind)
      .sort((a, b) =>
        keyOf(kind, a.metadata.namespace, a.metadata.name).localeCompare(
          keyOf(kind, b.metadata.namespace, b.metadata.name),
        ),
      )
      .map((o) => structuredClone(o));
  }

  private store(key: string, obj: Resource, what: string | null): void {
    const { namespace, name } = obj.metadata;
    const file = this.fileOf(obj.kind, namespace, name);
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(obj, null, 2)}\n`);
    renameSync(tmp, file);
    this.objects.set(key, obj);
    if (what) this.log.info({ kind: obj.kind, namespace, name, generation: obj.metadata.generation }, what);
    this.notify(namespace, name);
  }

  private notify(namespace: string, name: string): void {
    for (const listener of this.listeners) {
      queueMicrotask(() => {
        try {
          listener({ namespace, name });
        } catch (err) {
          this.log.error({ err }, 'watch listener failed');
        }
      });
    }
  }

  private nextRevision(): string {
    this.revision++;
    return String(this.revision);
  }

  private fileOf(kind: ResourceKind, namespace: string, name: string): string {
    return join(this.dir, `${FILE_PREFIX[kind]}.${namespace}.${name}.json`);
  }

  /** Read every stored object; a file that does not parse is reported and left alone. */
  private load(): void {
    for (const file of readdirSync(this.dir)) {
      if (!file.endsWith('.json')) continue;
      const kind = (Object.keys(FILE_PREFIX) as ResourceKind[]).find((k) =>
        file.startsWith(`${FILE_PREFIX[k]}.`),
      );
      if (!kind) continue;
      const path = join(this.dir, file);
      let obj: Resource;
      try {
        const parsed = SCHEMAS[kind].safeParse(JSON.parse(readFileSync(path, 'utf8')));
        if (!parsed.success) throw new Error(issues(parsed.error));
        obj = parsed.data as Resource;
      } catch (err) {
        this.log.error(
          { file: path, err: (err as Error).message },
          'ignoring a stored resource that does not parse',
        );
        continue;
      }
      const rv = Number(obj.metadata.resourceVersion);
      if (Number.isSafeInteger(rv)) this.revision = Math.max(this.revision, rv);
      this.objects.set(keyOf(kind, obj.metadata.namespace, obj.metadata.name), obj);
    }
  }
}

function keyOf(kind: ResourceKind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

function describe(obj: unknown): string {
  const meta = (obj as { metadata?: { namespace?: unknown; name?: unknown } } | null)?.metadata;
  const name = typeof meta?.name === 'string' ? meta.name : '(unnamed)';
  return typeof meta?.namespace === 'string' ? `${meta.namespace}/${name}` : name;
}

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** JSON with sorted keys and undefined members dropped: equality as the API server sees it. */
function canonical(value: unknown): string {
  return (
    JSON.stringify(value, (_key, v: unknown) =>
      v && typeof v === 'object' && !Array.isArray(v)
        ? Object.fromEntries(
            Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
          )
        : v,
    ) ?? 'undefined'
  );
}
