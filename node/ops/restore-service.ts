// POST /_cluster/restore (docs/ARCHITECTURE.md §7, the seed's enhancement 2): turn an empty,
// never-initialized node into the single voter of a NEW cluster whose state is a backup. Nodes are
// then added with the add flow.
//
// Order of a restore, and why:
// 1. Refuse unless this node is pristine (raft term 0, empty log, no snapshot, no membership, empty
//    key-value store): a node that holds data or was ever part of a cluster never restores over
//    itself (NOT_EMPTY), whatever the request says. The exception is idempotency: a node restored
//    from the same backup answers the same document again, so a retried request succeeds.
// 2. Download the manifest; check `expected_cluster_id` (CLUSTER_MISMATCH) and the snapshot format
//    version (BACKUP_CORRUPT) before reading any data.
// 3. Read the whole data object into memory through the stream that verifies size and sha256, then
//    decode it completely (CRC, format, and the position it claims equals the manifest's) — all
//    before anything is installed.
// 4. `bootstrapFromSnapshot`: the storage installs the snapshot atomically and durably, and the
//    node elects itself leader of a cluster with a fresh id that records where its data came from.
//
// Crash safety: nothing is written to the data directory before the atomic install of step 4, so a
// restore interrupted earlier (the process killed mid-download, a corrupt backup, a refused
// request) leaves the node exactly as pristine as it was, and the request can simply be retried.
// After step 4 the node is restored for good and a retry with the same URI is answered by (1).

import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { restoreResponseSchema } from '../api/admin-contract.js';
import {
  BackupError,
  type BackupManifest,
  type BackupOptions,
  downloadBackup,
  formatUri,
  manifestSchema,
  openStore,
  parseObjectUri,
  readBackupData,
} from '../backup/index.js';
import { DATA_SUFFIX, MANIFEST_SUFFIX, manifestNameFor } from '../backup/manifest.js';
import { ConfluxError } from '../errors.js';
import { SnapshotDecoder } from '../kv/snapshot-decoder.js';
import { SNAPSHOT_FORMAT_VERSION } from '../kv/snapshot-format.js';
import type { NodeMetrics } from '../metrics.js';
import { RaftError } from '../raft/errors.js';
import { initialMembership, isInitialized } from '../raft/membership.js';
import type { NodeId, NodeInfo, RaftMetrics, SnapshotMeta } from '../raft/types.js';
import { type OpsLogger, toOpsError } from './backup-service.js';
import { waitForLeadership } from './leadership.js';

/** The answer of POST /_cluster/restore (`restoreResponseSchema`). */
export type RestoreResponse = z.infer<typeof restoreResponseSchema>;

export interface RestoreRequest {
  /** URI of the backup's data object (`….snap`) or of its manifest (`….snap.manifest.json`). */
  snapshot_uri: string;
  /** Refuse unless the backup was taken from this cluster. */
  expected_cluster_id?: string;
}

/** What a restore needs from the Raft node (a `RaftNode` fits). */
export interface RestoreRaft {
  metrics(): RaftMetrics;
  bootstrapFromSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void>;
}

/** What a restore needs from the key-value store (a `KvStore` fits). */
export interface RestoreKv {
  readonly applied: number;
  readonly revision: number;
  readonly size: number;
}

export interface RestoreServiceDeps {
  raft: RestoreRaft;
  kv: RestoreKv;
  nodeId: NodeId;
  /** This node's advertised addresses, recorded in the new cluster's membership. */
  selfInfo: NodeInfo;
  metrics?: NodeMetrics;
  logger: OpsLogger;
  /** Download options, including the S3 connection used for s3:// URIs. */
  backupOptions: BackupOptions;
  /** Id of the new cluster (default `crypto.randomUUID()`). */
  mintClusterId?: () => string;
  /** How long to wait for this node to lead after the install (default 10 s). */
  leaderTimeoutMs?: number;
}

/** Snapshot format versions this build can restore. */
export const SUPPORTED_FORMAT_VERSIONS: readonly number[] = [SNAPSHOT_FORMAT_VERSION];

/** Why a node is not pristine, or null when it is. */
export function notPristine(m: RaftMetrics, kv: RestoreKv): string | null {
  if (m.currentTerm > 0) return `raft term is ${m.currentTerm}`;
  if (m.lastLogIndex > 0) return `the raft log reaches index ${m.lastLogIndex}`;
  if (m.snapshot) return `it holds a snapshot at index ${m.snapshot.index}`;
  if (isInitialized(m.membership) || m.membership.cluster) return 'it is a member of a cluster';
  if (kv.applied > 0 || kv.size > 0)
    return `its key-value store holds data (applied ${kv.applied}, ${kv.size} keys)`;
  return null;
}

/** The URI of the data object a backup URI designates (the data or the manifest URI), normalized. */
function backupObject(uri: string, options: BackupOptions): string {
  const { dest, name } = parseObjectUri(uri, options.connection);
  let dataName: string;
  if (name.endsWith(DATA_SUFFIX + MANIFEST_SUFFIX)) dataName = name.slice(0, -MANIFEST_SUFFIX.length);
  else if (name.endsWith(DATA_SUFFIX)) dataName = name;
  else {
    throw new BackupError(
      'invalid-uri',
      `invalid backup URI "${uri}": expected a backup object ending in ${DATA_SUFFIX} or ${DATA_SUFFIX + MANIFEST_SUFFIX}`,
    );
  }
  return formatUri(dest, dataName);
}

export class RestoreService {
  private running = false;
  /** Answers of restores done by this process, by data URI (a retry gets the very same document). */
  private readonly answers = new Map<string, RestoreResponse>();
  private readonly mintClusterId: () => string;

  constructor(private readonly deps: RestoreServiceDeps) {
    this.mintClusterId = deps.mintClusterId ?? (() => randomUUID());
  }

  /** True while a restore runs on this node. */
  get busy(): boolean {
    return this.running;
  }

  async run(req: RestoreRequest): Promise<RestoreResponse> {
    const { metrics, logger } = this.deps;
    if (this.running) {
      metrics?.restores.inc({ outcome: 'refused' });
      throw new ConfluxError('OPERATION_IN_PROGRESS', 'a restore is already running on this node');
    }
    this.running = true;
    const endTimer = metrics?.restoreSeconds.startTimer();
    let installed = false;
    try {
      const res = await this.restore(req, () => {
        installed = true;
      });
      metrics?.restores.inc({ outcome: 'succeeded' });
      return res;
    } catch (err) {
      const mapped = toOpsError(err);
      const refused =
        !installed &&
        mapped instanceof ConfluxError &&
        ['NOT_EMPTY', 'CLUSTER_MISMATCH', 'INVALID_REQUEST'].includes(mapped.code);
      metrics?.restores.inc({ outcome: refused ? 'refused' : 'failed' });
      logger.warn(
        { err: mapped, uri: req?.snapshot_uri, installed },
        refused ? 'restore refused' : 'restore failed',
      );
      throw mapped;
    } finally {
      this.running = false;
      endTimer?.();
    }
  }

  private async restore(req: RestoreRequest, onInstalled: () => void): Promise<RestoreResponse> {
    const { raft, kv, nodeId, backupOptions, logger, metrics } = this.deps;
    if (typeof req?.snapshot_uri !== 'string' || req.snapshot_uri === '') {
      throw new ConfluxError('INVALID_REQUEST', 'snapshot_uri is required');
    }
    const before = raft.metrics();
    const why = notPristine(before, kv);
    if (why !== null) {
      const replay = await this.replay(before, req);
      if (replay) return replay;
      throw new ConfluxError(
        'NOT_EMPTY',
        `node ${nodeId} cannot be restored: ${why}. Only an empty node that was never initialized accepts a restore`,
      );
    }

    // Nothing below writes to the data directory until bootstrapFromSnapshot (see the header).
    const { uri, manifest, data } = await downloadVerified(req, backupOptions, metrics);

    // The download took time: make sure nothing initialized the node meanwhile.
    const still = notPristine(raft.metrics(), kv);
    if (still !== null)
      throw new ConfluxError('NOT_EMPTY', `node ${nodeId} changed during the restore: ${still}`);

    const clusterId = this.mintClusterId();
    const restoredFrom = { clusterId: manifest.clusterId, uri, index: manifest.lastIndex };
    const meta: SnapshotMeta = {
      index: manifest.lastIndex,
      term: 1,
      membership: initialMembership([nodeId], {
        nodes: { [nodeId]: this.deps.selfInfo },
        cluster: { id: clusterId, restoredFrom },
      }),
      sizeBytes: data.byteLength,
      id: `restore-${clusterId}`,
    };
    try {
      await raft.bootstrapFromSnapshot(meta, data);
    } catch (err) {
      if (err instanceof RaftError && err.code === 'ALREADY_INITIALIZED') {
        throw new ConfluxError('NOT_EMPTY', `node ${nodeId} cannot be restored: ${err.message}`);
      }
      throw err;
    }
    onInstalled();
    const answer: RestoreResponse = {
      cluster_id: clusterId,
      restored_from: { cluster_id: restoredFrom.clusterId, uri: restoredFrom.uri, index: restoredFrom.index },
      node_id: nodeId,
      keys: manifest.keyCount,
      revision: manifest.revision,
    };
    this.answers.set(uri, answer);
    logger.info(
      { clusterId, restoredFrom, keys: answer.keys, revision: answer.revision, bytes: data.byteLength },
      'restored a backup: this node starts a new cluster',
    );
    await waitForLeadership(this.deps.raft, {
      nodeId: this.deps.nodeId,
      done: 'the backup is installed',
      timeoutMs: this.deps.leaderTimeoutMs,
    });
    return answer;
  }

  /**
   * The answer to a retried restore: this node's cluster was restored from `dataUri` (and the
   * request's expected cluster, if any, is the source's). Undefined for any other request.
   */
  private async replay(m: RaftMetrics, req: RestoreRequest): Promise<RestoreResponse | undefined> {
    const cluster = m.membership.cluster;
    const from = cluster?.restoredFrom;
    if (!cluster || !from) return undefined;
    let dataUri: string;
    try {
      dataUri = backupObject(req.snapshot_uri, this.deps.backupOptions);
    } catch {
      return undefined; // not a backup URI: certainly not the one restored
    }
    if (from.uri !== dataUri) return undefined;
    if (req.expected_cluster_id !== undefined && req.expected_cluster_id !== from.clusterId) return undefined;
    const cached = this.answers.get(dataUri);
    if (cached && cached.cluster_id === cluster.id) return cached;
    // Restored by an earlier run of the process: the counts come from the backup's manifest (they
    // are the snapshot's, checked at the restore); the node's own if it cannot be read any more.
    let counts = { keys: this.deps.kv.size, revision: this.deps.kv.revision };
    try {
      const manifest = await readManifest(dataUri, this.deps.backupOptions);
      if (manifest) counts = { keys: manifest.keyCount, revision: manifest.revision };
    } catch (err) {
      this.deps.logger.warn(
        { err: toOpsError(err), uri: dataUri },
        'cannot re-read the manifest of a restore',
      );
    }
    const answer: RestoreResponse = {
      cluster_id: cluster.id,
      restored_from: { cluster_id: from.clusterId, uri: from.uri, index: from.index },
      node_id: this.deps.nodeId,
      ...counts,
    };
    this.answers.set(dataUri, answer);
    return answer;
  }
}

/**
 * Downloads the backup `req` names and checks it before anything is installed: the manifest (its
 * cluster and format), then the data against the manifest's size and SHA-256 (the verifying stream
 * throws on a mismatch, at the latest on its final next()) and the snapshot's own checksums.
 */
async function downloadVerified(
  req: RestoreRequest,
  backupOptions: RestoreServiceDeps['backupOptions'],
  metrics: NodeMetrics | undefined,
): Promise<{ uri: string; manifest: BackupManifest; data: Buffer }> {
  const dl = await downloadBackup(req.snapshot_uri, backupOptions);
  try {
    checkManifest(dl.manifest, dl.uri, req.expected_cluster_id);
  } catch (err) {
    await discard(dl.stream);
    throw err;
  }
  // Every record is checked as its chunk arrives rather than in one piece at the end (1M keys:
  // a long stall, docs/ARCHITECTURE.md §5); not kept: the node decodes it again when it installs it.
  const decoder = new SnapshotDecoder({ verifyOnly: true });
  let bytes = 0;
  let data: Buffer;
  try {
    data = await readBackupData(dl, (chunk) => {
      bytes += chunk.byteLength;
      decoder.push(chunk);
    });
  } finally {
    metrics?.restoreBytes.inc(bytes);
  }
  checkSnapshot(decoder, dl.manifest, dl.uri);
  return { uri: dl.uri, manifest: dl.manifest, data };
}

/** Refuse, before any data is read, a backup of another cluster or of an unknown format. */
function checkManifest(manifest: BackupManifest, uri: string, expectedClusterId: string | undefined): void {
  if (expectedClusterId !== undefined && expectedClusterId !== manifest.clusterId) {
    throw new ConfluxError(
      'CLUSTER_MISMATCH',
      `backup ${uri} was taken from cluster ${manifest.clusterId}, expected ${expectedClusterId}`,
      { expected: expectedClusterId, actual: manifest.clusterId },
    );
  }
  if (!SUPPORTED_FORMAT_VERSIONS.includes(manifest.formatVersion)) {
    throw new ConfluxError(
      'BACKUP_CORRUPT',
      `backup ${uri} has snapshot format version ${manifest.formatVersion}; this node reads ${SUPPORTED_FORMAT_VERSIONS.join(', ')}`,
      { problem: 'version' },
    );
  }
  if (manifest.lastIndex < 1) {
    throw new ConfluxError('BACKUP_CORRUPT', `backup ${uri} claims log index 0: no cluster took it`, {
      problem: 'corrupt',
    });
  }
}

/**
 * Release the data stream of a refused download (its open file or HTTP response). The download
 * API has no close: start the iteration and end it at once, which closes the source behind it
 * (at most one chunk is read, and nothing is kept).
 */
async function discard(stream: AsyncIterable<Uint8Array>): Promise<void> {
  const it = stream[Symbol.asyncIterator]();
  try {
    await it.next();
    await it.return?.();
  } catch {
    // A source that fails while being closed is closed all the same.
  }
}

/**
 * Finish decoding the snapshot `decoder` was fed in full (magic, version, every record, CRC) and
 * check it is the one the manifest describes. Throws BACKUP_CORRUPT; installs nothing.
 */
function checkSnapshot(decoder: SnapshotDecoder, manifest: BackupManifest, uri: string): void {
  const { header } = decoder.finish(); // SnapshotFormatError -> BACKUP_CORRUPT (toOpsError)
  const mismatch = (['applied', 'revision', 'keyCount'] as const).find(
    (f) => header[f] !== (f === 'applied' ? manifest.lastIndex : manifest[f]),
  );
  if (mismatch) {
    throw new ConfluxError(
      'BACKUP_CORRUPT',
      `backup ${uri}: the snapshot holds applied ${header.applied}, revision ${header.revision}, ${header.keyCount} keys; the manifest says ${manifest.lastIndex}, ${manifest.revision}, ${manifest.keyCount}`,
      { problem: 'index-mismatch' },
    );
  }
}

/** The manifest of the backup whose data object is `dataUri`, without opening the data. */
async function readManifest(dataUri: string, options: BackupOptions): Promise<BackupManifest | undefined> {
  const { dest, name } = parseObjectUri(dataUri, options.connection);
  const bytes = await openStore(dest, options).getBytes(manifestNameFor(name));
  if (!bytes) return undefined;
  const r = manifestSchema.safeParse(JSON.parse(Buffer.from(bytes).toString('utf8')));
  return r.success ? r.data : undefined;
}
