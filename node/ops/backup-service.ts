// POST /_cluster/backup (docs/ARCHITECTURE.md §7): a point-in-time snapshot of the key-value
// store streamed to a backup destination with its metadata, skipped when nothing changed since the
// newest backup of this cluster there, then retention (keep-last and max-age) over this cluster's
// backups.
//
// Guarantees:
// - The backup holds every write acknowledged before the request: `ensureLinearizable` (a ReadIndex
//   barrier; only the leader passes it, others get NOT_LEADER with the leader's id) resolves once
//   this node applied everything committed before the call, and the snapshot is taken after it.
// - A failed upload leaves nothing that looks like a backup: the backup module discards the data
//   object and writes the manifest only once the data is complete (node/backup/manifest.ts).
// - One backup at a time per node; a second concurrent call gets OPERATION_IN_PROGRESS.
// - Retention only ever deletes backups carrying THIS cluster's id, never the newest of them, and
//   a retention failure does not fail a backup that was taken (it is logged).

import type { z } from 'zod';
import type { backupResponseSchema } from '../api/admin-contract.js';
import {
  type BackupDestination,
  type BackupEntry,
  BackupError,
  type BackupOptions,
  type BackupProblem,
  formatUri,
  listBackups,
  openStore,
  parseDestination,
  type RetentionPolicy,
  selectExpired,
  uploadBackup,
} from '../backup/index.js';
import { manifestNameFor } from '../backup/manifest.js';
import { ConfluxError, type ConfluxErrorCode } from '../errors.js';
import { SnapshotFormatError } from '../kv/errors.js';
import { SNAPSHOT_FORMAT_VERSION } from '../kv/snapshot-format.js';
import type { SnapshotStream } from '../kv/store.js';
import type { NodeMetrics } from '../metrics.js';
import { RaftError } from '../raft/errors.js';
import type { NodeId, RaftMetrics } from '../raft/types.js';

/** The answer of POST /_cluster/backup (`backupResponseSchema`). */
export type BackupResponse = z.infer<typeof backupResponseSchema>;

/** Structured logger (the pino subset the ops services use). */
export interface OpsLogger {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
}

/** What a backup needs from the Raft node (a `RaftNode` fits). */
export interface BackupRaft {
  metrics(): RaftMetrics;
  ensureLinearizable(): Promise<number>;
}

/** What a backup needs from the key-value store (a `KvStore` fits). */
export interface BackupKv {
  readonly revision: number;
  snapshotStream(): SnapshotStream;
}

export interface BackupServiceDeps {
  raft: BackupRaft;
  kv: BackupKv;
  nodeId: NodeId;
  metrics?: NodeMetrics;
  logger: OpsLogger;
  /** Upload options, including the S3 connection used for s3:// destinations. */
  backupOptions: BackupOptions;
  /** `--backup-destination`: used when a request names none. */
  defaultDestination?: string;
  /** `--backup-keep-last` / `--backup-max-age-days`; no retention when absent or empty. */
  retention?: RetentionPolicy;
  /** Clock (tests). */
  now?: () => Date;
}

export interface BackupRequest {
  /** `s3://bucket/prefix` or `file:///dir`; default: `defaultDestination`. */
  destination?: string;
  /** Back up even when nothing changed since the newest backup. */
  force?: boolean;
}

const PROBLEM_CODES: Record<BackupProblem, ConfluxErrorCode> = {
  'invalid-uri': 'INVALID_REQUEST',
  'invalid-metadata': 'INVALID_REQUEST',
  'not-found': 'BACKUP_NOT_FOUND',
  corrupt: 'BACKUP_CORRUPT',
  io: 'BACKUP_DESTINATION_ERROR',
};

/**
 * The one mapping of backup and restore failures to the error catalogue: BackupError problems to
 * their codes (the `problem` stays in the details), a snapshot that does not decode to
 * BACKUP_CORRUPT, a raw I/O error of the destination (an `errno`-style `code`, e.g. ENOSPC or
 * ECONNRESET, which the file store and S3 streams can throw unwrapped) to BACKUP_DESTINATION_ERROR.
 * ConfluxErrors and RaftErrors pass through; anything else is returned unchanged (the API answers
 * it as INTERNAL).
 */
export function toOpsError(err: unknown): unknown {
  if (err instanceof BackupError) {
    const code = PROBLEM_CODES[err.problem];
    if (code === err.code) return err;
    const mapped = new ConfluxError(code, err.message, { problem: err.problem });
    mapped.cause = err;
    return mapped;
  }
  if (err instanceof ConfluxError || err instanceof RaftError) return err;
  if (err instanceof SnapshotFormatError) {
    const mapped = new ConfluxError('BACKUP_CORRUPT', err.message, { problem: err.problem });
    mapped.cause = err;
    return mapped;
  }
  if (
    err instanceof Error &&
    'code' in err &&
    typeof err.code === 'string' &&
    /^E[A-Z0-9_]+$/.test(err.code)
  ) {
    const mapped = new ConfluxError('BACKUP_DESTINATION_ERROR', `backup destination failed: ${err.message}`, {
      problem: 'io',
    });
    mapped.cause = err;
    return mapped;
  }
  return err;
}

/** A failure of the snapshot source (not of the destination): kept apart so it is not blamed on it. */
class SourceError extends Error {
  constructor(readonly original: unknown) {
    super(original instanceof Error ? original.message : String(original));
  }
}

function sourceFailure(err: unknown): SourceError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof SourceError) return e;
  }
  return undefined;
}

async function* tagSourceErrors(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* source;
  } catch (err) {
    throw new SourceError(err);
  }
}

export class BackupService {
  private running = false;
  private readonly now: () => Date;

  constructor(private readonly deps: BackupServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** True while a backup runs on this node. */
  get busy(): boolean {
    return this.running;
  }

  async run(req: BackupRequest = {}): Promise<BackupResponse> {
    const { metrics, logger } = this.deps;
    const endTimer = metrics?.backupSeconds.startTimer();
    if (this.running) {
      metrics?.backups.inc({ outcome: 'failed' });
      throw new ConfluxError('OPERATION_IN_PROGRESS', 'a backup is already running on this node');
    }
    this.running = true;
    try {
      const res = await this.backup(req);
      metrics?.backups.inc({ outcome: res.skipped ? 'skipped' : 'succeeded' });
      if (!res.skipped) {
        metrics?.backupBytes.inc(res.bytes);
        metrics?.lastBackupTimestamp.set(Date.parse(res.created_at) / 1000);
      }
      logger.info(
        {
          uri: res.uri,
          skipped: res.skipped,
          revision: res.revision,
          bytes: res.bytes,
          deleted: res.deleted,
        },
        res.skipped ? 'backup skipped: nothing changed since the newest backup' : 'backup taken',
      );
      return res;
    } catch (err) {
      metrics?.backups.inc({ outcome: 'failed' });
      // The snapshot source failing is this node's fault, never the destination's.
      const source = sourceFailure(err);
      const mapped = source ? source.original : toOpsError(err);
      logger.warn({ err: mapped }, 'backup failed');
      throw mapped;
    } finally {
      this.running = false;
      endTimer?.();
    }
  }

  private async backup(req: BackupRequest): Promise<BackupResponse> {
    const { raft, kv, nodeId, backupOptions } = this.deps;
    const clusterId = raft.metrics().membership.cluster?.id;
    if (!clusterId) {
      throw new RaftError('NOT_INITIALIZED', `node ${nodeId} belongs to no cluster yet: nothing to back up`);
    }
    const destination = req.destination ?? this.deps.defaultDestination;
    if (!destination) {
      throw new ConfluxError(
        'INVALID_REQUEST',
        'no backup destination: give "destination" in the request or start the node with --backup-destination',
      );
    }
    const dest = parseDestination(destination, backupOptions.connection);

    // Every write acknowledged before this request is applied here once this resolves.
    await raft.ensureLinearizable();

    const ours = (await listBackups(dest, backupOptions)).filter((e) => e.manifest.clusterId === clusterId);
    const newest = ours[0];
    if (newest && !req.force && newest.manifest.revision === kv.revision) {
      const deleted = await this.retain(dest, clusterId, ours);
      return describe(newest, true, deleted);
    }

    const stream = kv.snapshotStream();
    const res = await uploadBackup(
      dest,
      {
        stream: tagSourceErrors(stream),
        metadata: {
          clusterId,
          nodeId,
          createdAt: this.now().toISOString(),
          lastIndex: stream.applied,
          lastTerm: lastTermOf(stream.applied, raft.metrics()),
          revision: stream.revision,
          keyCount: stream.keyCount,
          formatVersion: SNAPSHOT_FORMAT_VERSION,
        },
      },
      backupOptions,
    ).finally(() => stream.close?.()); // a destination failing before the first read leaves it open
    const entry: BackupEntry = { uri: res.uri, manifestUri: res.manifestUri, manifest: res.manifest };
    // Retention over a fresh listing, so it sees the new backup (which, being the newest, stays).
    return describe(entry, false, await this.retain(dest, clusterId));
  }

  /**
   * Delete the backups of cluster `clusterId` the policy expires (`listed`: this cluster's
   * backups, newest first, if already at hand); returns the URIs of the deleted data objects.
   * Only this cluster's backups are considered: `applyRetention` of node/backup looks at every
   * backup in the destination, so a cluster restored from a backup and writing to the same
   * destination would expire the source cluster's backups. The same order as there: manifest
   * first, so an interruption leaves an unlisted data object, never a manifest without data.
   * Failures are logged, not thrown: the backup itself is complete.
   */
  private async retain(
    dest: BackupDestination,
    clusterId: string,
    listed?: BackupEntry[],
  ): Promise<string[]> {
    const { retention: policy, backupOptions, logger } = this.deps;
    if (!policy || (policy.keepLast === undefined && policy.maxAgeDays === undefined)) return [];
    const deleted: string[] = [];
    try {
      const entries =
        listed ?? (await listBackups(dest, backupOptions)).filter((e) => e.manifest.clusterId === clusterId);
      const expired = selectExpired(entries, policy, this.now());
      const store = openStore(dest, backupOptions);
      for (const e of expired) {
        await store.delete(manifestNameFor(e.manifest.dataName));
        await store.delete(e.manifest.dataName);
        deleted.push(e.uri);
      }
    } catch (err) {
      logger.warn(
        { err: toOpsError(err), destination: formatUri(dest), deleted },
        'backup retention failed; the backup itself is complete',
      );
    }
    return deleted;
  }
}

/**
 * The term of the last applied entry (the engine does not expose the term of an arbitrary index).
 * A local snapshot exactly at `applied` gives it. Otherwise the current term, which is exact when
 * the node still leads in the term in which it passed the ReadIndex barrier (the read index is an
 * entry of the leader's own term, `applied` is at or past it, and terms never decrease along the
 * log) and an upper bound if leadership changed meanwhile. It is informational: a restore starts a
 * new cluster at term 1 whatever the backup's term was.
 */
function lastTermOf(applied: number, m: RaftMetrics): number {
  if (m.snapshot && m.snapshot.index === applied) return m.snapshot.term;
  return m.currentTerm;
}

function describe(e: BackupEntry, skipped: boolean, deleted: string[]): BackupResponse {
  return {
    skipped,
    uri: e.uri,
    manifest_uri: e.manifestUri,
    cluster_id: e.manifest.clusterId,
    last_index: e.manifest.lastIndex,
    revision: e.manifest.revision,
    bytes: e.manifest.bytes,
    sha256: e.manifest.sha256,
    created_at: e.manifest.createdAt,
    deleted,
  };
}
