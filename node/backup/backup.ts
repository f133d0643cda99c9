// Moving snapshots to and from backup destinations (docs/ARCHITECTURE.md §7: POST /_cluster/backup and
// /_cluster/restore). See manifest.ts for the layout and the completeness invariant: a backup
// exists iff its manifest does, and the manifest is written only after the data is complete.

import { constants as bufferConstants } from 'node:buffer';
import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { digestingStream, verifyingStream } from './digest.js';
import { BackupError } from './errors.js';
import { FileStore } from './file.js';
import {
  type BackupManifest,
  type BackupMetadata,
  compareNewestFirst,
  DATA_SUFFIX,
  dataNameFor,
  encodeManifest,
  MANIFEST_SUFFIX,
  manifestNameFor,
  parseManifest,
  parseMetadata,
} from './manifest.js';
import type { ObjectStore } from './object-store.js';
import { S3Store, type S3StoreOptions } from './s3.js';
import { type BackupDestination, parseDestination, parseObjectUri, type S3ConnectionOptions } from './uri.js';

const MAX_BUFFER_BYTES = bufferConstants.MAX_LENGTH;

/** A destination: its URI, or already parsed. */
export type BackupTarget = string | BackupDestination;

export interface BackupOptions extends S3StoreOptions {
  /** How to reach S3 when the target is a URI string (ignored for file:// and parsed targets). */
  connection?: S3ConnectionOptions;
  /** An S3 client to use instead of one made from the destination (to share or instrument it). */
  s3Client?: S3Client;
  /**
   * Directories a file:// destination may neither be nor lie inside (the node's data directory:
   * a backup there would be counted against the quota, read by recovery and wiped with the data).
   */
  protectedDirs?: string[];
}

export interface UploadResult {
  /** URI of the data object: what `downloadBackup` and `POST /_cluster/restore` take. */
  uri: string;
  manifestUri: string;
  /** Name of the data object in the destination. */
  key: string;
  bytes: number;
  sha256: string;
  manifest: BackupManifest;
}

export interface BackupEntry {
  uri: string;
  manifestUri: string;
  manifest: BackupManifest;
}

export function openStore(target: BackupTarget, options: BackupOptions = {}): ObjectStore {
  const dest = typeof target === 'string' ? parseDestination(target, options.connection) : target;
  if (dest.kind === 's3') return new S3Store(dest, options.s3Client, options);
  refuseProtected(dest.dir, options.protectedDirs ?? []);
  return new FileStore(dest);
}

/**
 * Stream a snapshot to `target`, then write its manifest. Never buffers the whole snapshot (S3:
 * one part at a time per upload slot). When the stream throws or the destination fails, the data
 * upload is discarded (S3 multipart aborted / temp file removed), no manifest is written, and the
 * error is rethrown: nothing that looks like a backup is left behind.
 */
export async function uploadBackup(
  target: BackupTarget,
  input: { stream: AsyncIterable<Uint8Array>; metadata: BackupMetadata },
  options: BackupOptions = {},
): Promise<UploadResult> {
  const metadata = parseMetadata(input.metadata);
  const store = openStore(target, options);
  const dataName = dataNameFor(metadata);
  const manifestName = manifestNameFor(dataName);

  const digest = digestingStream(input.stream);
  await store.putStream(dataName, digest.stream);
  const { bytes, sha256 } = digest.result();

  // Only now, with the data object complete, does the backup become visible.
  const manifest: BackupManifest = {
    kind: 'conflux-backup',
    manifestVersion: 1,
    ...metadata,
    dataName,
    bytes,
    sha256,
  };
  await store.putBytes(manifestName, encodeManifest(manifest));
  return {
    uri: store.uriOf(dataName),
    manifestUri: store.uriOf(manifestName),
    key: dataName,
    bytes,
    sha256,
    manifest,
  };
}

/** Complete backups in `target`, newest first. Data objects without a manifest are ignored. */
export async function listBackups(target: BackupTarget, options: BackupOptions = {}): Promise<BackupEntry[]> {
  const store = openStore(target, options);
  const names = (await store.list()).filter((n) => n.endsWith(DATA_SUFFIX + MANIFEST_SUFFIX));
  const entries: BackupEntry[] = [];
  for (const name of names) {
    const bytes = await store.getBytes(name);
    if (!bytes) continue; // deleted meanwhile (concurrent retention)
    // An unreadable manifest does not mark a usable backup: skip it rather than fail the listing
    // (so one bad object cannot block backups or retention). downloadBackup reports it precisely.
    let manifest: BackupManifest;
    try {
      manifest = parseManifest(bytes, store.uriOf(name));
    } catch {
      continue;
    }
    if (manifestNameFor(manifest.dataName) !== name) continue; // copied or renamed by hand
    entries.push({ uri: store.uriOf(manifest.dataName), manifestUri: store.uriOf(name), manifest });
  }
  return entries.sort((a, b) => compareNewestFirst(a.manifest, b.manifest));
}

/** The newest complete backup, so the caller can skip a backup when nothing changed since. */
export async function lastBackup(
  target: BackupTarget,
  options: BackupOptions = {},
): Promise<BackupEntry | undefined> {
  return (await listBackups(target, options))[0];
}

export interface RetentionPolicy {
  /** Keep at least the newest N backups. */
  keepLast?: number;
  /** Keep every backup younger than this. */
  maxAgeDays?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Which backups (newest first) a policy deletes. A backup goes only when it is beyond EVERY limit
 * given: not among the newest `keepLast` and older than `maxAgeDays`; with no limit given, none.
 * The newest backup is never deleted, whatever the policy.
 */
export function selectExpired(entries: BackupEntry[], policy: RetentionPolicy, now: Date): BackupEntry[] {
  const { keepLast, maxAgeDays } = policy;
  if (keepLast === undefined && maxAgeDays === undefined) return [];
  if (keepLast !== undefined && !(Number.isInteger(keepLast) && keepLast >= 0)) {
    throw new BackupError('invalid-metadata', `keepLast must be a non-negative integer, got ${keepLast}`);
  }
  if (maxAgeDays !== undefined && !(Number.isFinite(maxAgeDays) && maxAgeDays >= 0)) {
    throw new BackupError('invalid-metadata', `maxAgeDays must be a non-negative number, got ${maxAgeDays}`);
  }
  const sorted = [...entries].sort((a, b) => compareNewestFirst(a.manifest, b.manifest));
  return sorted.filter((e, i) => {
    if (i === 0) return false;
    const beyondCount = keepLast === undefined || i >= keepLast;
    const beyondAge =
      maxAgeDays === undefined || now.getTime() - Date.parse(e.manifest.createdAt) > maxAgeDays * DAY_MS;
    return beyondCount && beyondAge;
  });
}

/** Delete the backups `selectExpired` picks; returns them. */
export async function applyRetention(
  target: BackupTarget,
  policy: RetentionPolicy,
  now: Date,
  options: BackupOptions = {},
): Promise<BackupEntry[]> {
  const store = openStore(target, options);
  const expired = selectExpired(await listBackups(target, options), policy, now);
  for (const e of expired) {
    // Manifest first: if we stop between the two, what remains is an unlisted data object, never
    // a manifest that promises data that is gone.
    await store.delete(manifestNameFor(e.manifest.dataName));
    await store.delete(e.manifest.dataName);
  }
  return expired;
}

export interface DownloadedBackup {
  manifest: BackupManifest;
  /** URI of the data object. */
  uri: string;
  /**
   * The snapshot bytes, verified as consumed: throws BackupError 'corrupt' when the data is longer
   * than the manifest says (at once) or shorter or with another sha256 (at the end, after the last
   * chunk). Install the data only after the stream ended without error. Consume it once.
   */
  stream: AsyncIterable<Uint8Array>;
}

/**
 * Open a backup by the URI of its data object (`….snap`) or of its manifest (`….manifest.json`).
 * Throws BackupError 'not-found' when there is no manifest (no such backup, or an incomplete one).
 */
export async function downloadBackup(uri: string, options: BackupOptions = {}): Promise<DownloadedBackup> {
  const { dest, name } = parseObjectUri(uri, options.connection);
  let manifestName: string;
  if (name.endsWith(DATA_SUFFIX + MANIFEST_SUFFIX)) manifestName = name;
  else if (name.endsWith(DATA_SUFFIX)) manifestName = manifestNameFor(name);
  else {
    throw new BackupError(
      'invalid-uri',
      `invalid backup URI "${uri}": expected a backup object ending in ${DATA_SUFFIX} or ${DATA_SUFFIX + MANIFEST_SUFFIX}`,
    );
  }
  const store = openStore(dest, options);
  const manifestBytes = await store.getBytes(manifestName);
  if (!manifestBytes) {
    throw new BackupError(
      'not-found',
      `no backup at ${uri}: manifest ${store.uriOf(manifestName)} does not exist (missing or incomplete backup)`,
    );
  }
  const manifest = parseManifest(manifestBytes, store.uriOf(manifestName));
  if (manifestNameFor(manifest.dataName) !== manifestName) {
    throw new BackupError('corrupt', `manifest ${store.uriOf(manifestName)} names another data object`);
  }
  const dataUri = store.uriOf(manifest.dataName);
  const data = await store.getStream(manifest.dataName);
  if (!data)
    throw new BackupError('corrupt', `backup data ${dataUri} is missing although its manifest exists`);
  return { manifest, uri: dataUri, stream: verifyingStream(data, manifest, dataUri) };
}

/**
 * The whole data of a download, verified (its stream's errors are thrown), gathered into one
 * buffer of the manifest's size as the chunks arrive: no concatenation at the end, which at 1M
 * keys copies 165 MiB in one piece and stalls the node for 0.1 s. `onChunk` sees each chunk in
 * order as it arrives (to check the snapshot's records along the way); a throw from it is kept
 * and thrown after the stream ended, so the stream's own verdict (size, sha256) comes first.
 */
export async function readBackupData(
  dl: DownloadedBackup,
  onChunk?: (chunk: Uint8Array) => void,
): Promise<Buffer> {
  const expected = dl.manifest.bytes;
  if (expected > MAX_BUFFER_BYTES) {
    throw new BackupError(
      'corrupt',
      `backup ${dl.uri} claims ${expected} bytes, more than one buffer holds (${MAX_BUFFER_BYTES})`,
    );
  }
  const data = Buffer.allocUnsafe(expected);
  let at = 0;
  let failed: { err: unknown } | null = null;
  for await (const chunk of dl.stream) {
    // The verifying stream throws before handing out a chunk past the manifest's size.
    data.set(chunk, at);
    at += chunk.byteLength;
    if (!failed && onChunk) {
      try {
        onChunk(chunk);
      } catch (err) {
        failed = { err };
      }
    }
  }
  if (failed) throw failed.err;
  return data;
}

/** Throws BackupError 'invalid-uri' when `dir` is one of `protectedDirs` or inside one (symlinks resolved). */
export function refuseProtected(dir: string, protectedDirs: string[]): void {
  const real = realpathOfExisting(dir);
  for (const p of protectedDirs) {
    const guarded = realpathOfExisting(p);
    if (real === guarded || real.startsWith(guarded.endsWith(sep) ? guarded : guarded + sep)) {
      throw new BackupError(
        'invalid-uri',
        `${dir} is ${real === guarded ? '' : 'inside '}the data directory ${p}: backups must be kept elsewhere`,
      );
    }
  }
}

/**
 * The real path of `dir`, or of its nearest existing ancestor joined with the rest; a dangling
 * symlink counts as where it points.
 */
function realpathOfExisting(dir: string, hops = 0): string {
  const abs = resolve(dir);
  try {
    return realpathSync(abs);
  } catch {
    if (hops < 40) {
      try {
        if (lstatSync(abs).isSymbolicLink()) {
          return realpathOfExisting(resolve(dirname(abs), readlinkSync(abs)), hops + 1);
        }
      } catch {
        // not there at all: resolve through the parent
      }
    }
    const parent = dirname(abs);
    return parent === abs ? abs : join(realpathOfExisting(parent, hops), basename(abs));
  }
}
