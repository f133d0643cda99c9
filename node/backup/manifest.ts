// Backup metadata and the manifest that marks a backup complete.
//
// A backup is two objects side by side in a destination:
//   conflux-<clusterId>-<createdAt compact>-<lastIndex>.snap                 the snapshot bytes
//   conflux-<clusterId>-<createdAt compact>-<lastIndex>.snap.manifest.json   this manifest
// INVARIANT: the manifest is written only after the data object is complete (durable on disk, or
// its S3 upload completed), and it records the data's size and sha256. So a manifest means a
// complete backup; a data object without one is litter from a failed or running upload and is
// never listed, restored or counted. Retention deletes the manifest first for the same reason.

import { z } from 'zod';
import { clusterIdSchema } from '../shapes/cluster-id.js';
import { recordedNodeIdSchema } from '../shapes/node-id.js';
import { BackupError } from './errors.js';

export const MANIFEST_SUFFIX = '.manifest.json';
export const DATA_SUFFIX = '.snap';

const index = z.number().int().nonnegative();

export const backupMetadataSchema = z
  .object({
    // Ids end up in object names; a backup made by an older version may name a node id that
    // today's rule (shapes/node-id.ts) refuses, and must still restore.
    clusterId: clusterIdSchema,
    nodeId: recordedNodeIdSchema,
    /** When the snapshot was taken, ISO 8601 with a time zone. */
    createdAt: z.iso.datetime({ offset: true }),
    /** Raft position the snapshot captures (last applied entry). */
    lastIndex: index,
    lastTerm: index,
    /** KV store revision (last data-changing index) and number of keys. */
    revision: index,
    keyCount: index,
    /** Snapshot encoding version (`SNAPSHOT_FORMAT_VERSION`). */
    formatVersion: z.number().int().positive(),
  })
  .strict();

export type BackupMetadata = z.infer<typeof backupMetadataSchema>;

export const manifestSchema = backupMetadataSchema
  .extend({
    kind: z.literal('conflux-backup'),
    manifestVersion: z.literal(1),
    /** Name of the data object, in the same directory as the manifest. */
    dataName: z.string().regex(/^[^/]+\.snap$/),
    bytes: index,
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .strict();

export type BackupManifest = z.infer<typeof manifestSchema>;

export function parseMetadata(input: unknown): BackupMetadata {
  const r = backupMetadataSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new BackupError(
      'invalid-metadata',
      `invalid backup metadata: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`,
    );
  }
  return r.data;
}

/** Parse a manifest's bytes (throws BackupError 'corrupt', naming `where`). */
export function parseManifest(bytes: Uint8Array, where: string): BackupManifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new BackupError('corrupt', `manifest ${where} is not JSON`);
  }
  const r = manifestSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new BackupError(
      'corrupt',
      `manifest ${where} is invalid: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`,
    );
  }
  return r.data;
}

export function encodeManifest(m: BackupManifest): Uint8Array {
  return Buffer.from(`${JSON.stringify(m, null, 2)}\n`, 'utf8');
}

/**
 * Data object name. The time is compact UTC (`20250102T030405123Z`: no ':' that some tools
 * dislike), then the index, so names of one cluster sort by time.
 */
export function dataNameFor(m: BackupMetadata): string {
  const t = new Date(m.createdAt).toISOString().replace(/[-:.]/g, '');
  return `conflux-${m.clusterId}-${t}-${m.lastIndex}${DATA_SUFFIX}`;
}

export function manifestNameFor(dataName: string): string {
  return dataName + MANIFEST_SUFFIX;
}

/** Newest first: by creation time, then by log index. */
export function compareNewestFirst(a: BackupManifest, b: BackupManifest): number {
  const dt = Date.parse(b.createdAt) - Date.parse(a.createdAt);
  return dt !== 0 ? dt : b.lastIndex - a.lastIndex;
}
