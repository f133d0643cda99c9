// Backup URIs, parsed once at the boundary (docs/ARCHITECTURE.md §7):
//   s3://bucket/prefix      a "directory" in a bucket of any S3-compatible endpoint
//   file:///abs/path        a local directory
// A destination is such a directory; a backup is two objects in it: the data object and its
// manifest. The URI of one backup object is the destination URI plus its name.

import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { BackupError } from './errors.js';

/** How to reach an S3 endpoint. Everything left out comes from the standard AWS environment. */
export interface S3ConnectionOptions {
  /** e.g. `http://minio:9000`; default: the SDK's (AWS_ENDPOINT_URL[_S3], else AWS itself). */
  endpoint?: string;
  /** Default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1. */
  region?: string;
  /** Path-style requests (`endpoint/bucket/key`), needed by most non-AWS endpoints. Default false. */
  forcePathStyle?: boolean;
  /** Default: the SDK's provider chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, IRSA…). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

export interface S3Destination {
  kind: 's3';
  bucket: string;
  /** Key prefix without leading or trailing '/'; '' for the bucket root. */
  prefix: string;
  connection: S3ConnectionOptions;
}

export interface FileDestination {
  kind: 'file';
  /** Absolute directory path. */
  dir: string;
}

export type BackupDestination = S3Destination | FileDestination;

const connectionSchema = z
  .object({
    endpoint: z.url({ protocol: /^https?$/, error: 'endpoint must be an http(s) URL' }).optional(),
    region: z.string().min(1).optional(),
    forcePathStyle: z.boolean().optional(),
    credentials: z
      .object({
        accessKeyId: z.string().min(1),
        secretAccessKey: z.string().min(1),
        sessionToken: z.string().min(1).optional(),
      })
      .optional(),
  })
  .strict();

// S3 bucket naming rules (the portable subset): 3-63 chars, lowercase letters, digits, '.', '-'.
const bucketName = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

const HINT = 'expected s3://bucket/prefix or file:///absolute/path';

function fail(uri: string, why: string): never {
  throw new BackupError('invalid-uri', `invalid backup URI "${uri}": ${why} (${HINT})`);
}

function parseUrl(uri: string): URL {
  const text = z.string().min(1).safeParse(uri);
  if (!text.success) fail(String(uri), 'empty or not a string');
  // URL parsing drops leading and trailing control characters: refuse them on the raw text.
  if (hasControlCharacter(text.data)) fail(uri, 'control characters (such as NUL) are not allowed');
  let url: URL;
  try {
    url = new URL(text.data);
  } catch {
    fail(text.data, 'not a URI');
  }
  // URL parsing silently resolves '.' and '..' segments: refuse them on the raw text instead.
  const rawPath = text.data.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/, '');
  for (const seg of rawPath.split(/[/?#]/)) {
    if (/^(\.|%2e){1,2}$/i.test(seg)) fail(uri, `path segment "${seg}" is not allowed`);
  }
  // An encoded '/' would be one segment to a URI and two to a path or an object key.
  if (/%2f/i.test(rawPath)) fail(uri, "an encoded '/' (%2F) is not allowed");
  if (url.search || url.hash) fail(uri, 'query strings and fragments are not allowed');
  if (url.username || url.password) fail(uri, 'credentials do not belong in the URI');
  return url;
}

function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Path segments, refusing empty, '.' and '..' ones (they would alias or escape the prefix). */
function segments(uri: string, path: string): string[] {
  const trimmed = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '') return [];
  // NUL ends a path for the operating system, and no control character belongs in a key.
  if (hasControlCharacter(trimmed)) fail(uri, 'control characters (such as NUL) are not allowed');
  const parts = trimmed.split('/');
  for (const p of parts) {
    if (p === '' || p === '.' || p === '..') fail(uri, `path segment "${p}" is not allowed`);
  }
  return parts;
}

/**
 * Parse a destination URI (throws BackupError 'invalid-uri' with a message naming the problem).
 * `connection` applies to s3:// only.
 */
export function parseDestination(uri: string, connection: S3ConnectionOptions = {}): BackupDestination {
  const url = parseUrl(uri);
  if (url.protocol === 's3:') {
    if (!url.hostname) fail(uri, 'missing bucket');
    if (url.port) fail(uri, 'a bucket name has no port; give the endpoint separately');
    if (!bucketName.test(url.hostname)) fail(uri, `"${url.hostname}" is not a valid bucket name`);
    const conn = connectionSchema.safeParse(connection);
    if (!conn.success) {
      const issue = conn.error.issues[0];
      fail(uri, `bad S3 options: ${issue ? `${issue.path.join('.')} ${issue.message}` : 'invalid'}`);
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(url.pathname);
    } catch {
      fail(uri, 'bad percent-encoding');
    }
    return {
      kind: 's3',
      bucket: url.hostname,
      prefix: segments(uri, decoded).join('/'),
      connection: conn.data,
    };
  }
  if (url.protocol === 'file:') {
    if (url.hostname && url.hostname !== 'localhost') {
      fail(uri, `file URIs take an absolute path with three slashes, got host "${url.hostname}"`);
    }
    const path = fileURLToPath(url);
    const parts = segments(uri, path);
    if (parts.length === 0) fail(uri, 'refusing the filesystem root as a backup directory');
    return { kind: 'file', dir: `/${parts.join('/')}` };
  }
  fail(uri, `unsupported scheme "${url.protocol.replace(/:$/, '')}"`);
}

/** The URI of a destination (normalized) or, with `name`, of one object in it. */
export function formatUri(dest: BackupDestination, name?: string): string {
  if (dest.kind === 's3') {
    const key = [dest.prefix, name].filter((s) => s).join('/');
    return `s3://${dest.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }
  const path = name ? `${dest.dir}/${name}` : dest.dir;
  return `file://${path.split('/').map(encodeURIComponent).join('/')}`;
}

/** Split the URI of one backup object into its destination and its name. */
export function parseObjectUri(
  uri: string,
  connection: S3ConnectionOptions = {},
): { dest: BackupDestination; name: string } {
  const dest = parseDestination(uri, connection);
  if (dest.kind === 's3') {
    const cut = dest.prefix.lastIndexOf('/');
    const name = dest.prefix.slice(cut + 1);
    if (!name) fail(uri, 'names a bucket, not a backup object');
    return { dest: { ...dest, prefix: cut < 0 ? '' : dest.prefix.slice(0, cut) }, name };
  }
  const cut = dest.dir.lastIndexOf('/');
  if (cut === 0) fail(uri, 'a backup object cannot sit in the filesystem root');
  return { dest: { kind: 'file', dir: dest.dir.slice(0, cut) }, name: dest.dir.slice(cut + 1) };
}
