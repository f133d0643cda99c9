// Round trips, completeness (manifest only after data), failed uploads and tampering, against a
// real s3rver and a local directory.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  downloadBackup,
  lastBackup,
  listBackups,
  openStore,
  readBackupData,
  uploadBackup,
} from './backup.js';
import { BackupError } from './errors.js';
import { type BackupMetadata, dataNameFor, manifestNameFor } from './manifest.js';
import { createS3Client, MIN_PART_BYTES } from './s3.js';
import { type S3rverHandle, startS3rver } from './test-s3rver.js';
import { parseDestination, type S3Destination } from './uri.js';

const CHUNK = 64 * 1024;

function meta(over: Partial<BackupMetadata> = {}): BackupMetadata {
  return {
    clusterId: 'c-1234',
    nodeId: 'n1',
    createdAt: '2025-03-01T10:00:00.000Z',
    lastIndex: 42,
    lastTerm: 3,
    revision: 40,
    keyCount: 7,
    formatVersion: 1,
    ...over,
  };
}

async function* chunks(data: Uint8Array, after?: () => Promise<void>): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.byteLength; off += CHUNK) yield data.subarray(off, off + CHUNK);
  await after?.();
}

async function* failingAfter(data: Uint8Array, failAtBytes: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.byteLength; off += CHUNK) {
    if (off >= failAtBytes) throw new Error('snapshot source failed');
    yield data.subarray(off, off + CHUNK);
  }
}

async function consume(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Uint8Array[] = [];
  for await (const c of stream) out.push(c);
  return Buffer.concat(out);
}

async function consumeError(stream: AsyncIterable<Uint8Array>): Promise<BackupError> {
  try {
    await consume(stream);
  } catch (err) {
    if (err instanceof BackupError) return err;
    throw err;
  }
  throw new Error('stream did not throw');
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Backend {
  name: 'file' | 's3';
  uri: () => string;
}

let s3: S3rverHandle;
let dir: string;
const opts = () => ({ connection: s3.connection, partSizeBytes: MIN_PART_BYTES });

beforeAll(async () => {
  [s3, dir] = await Promise.all([startS3rver(), mkdtemp(join(tmpdir(), 'conflux-backup-'))]);
});
afterAll(async () => {
  await Promise.all([s3?.stop(), dir && rm(dir, { recursive: true, force: true })]);
});

let seq = 0;
const backends: Backend[] = [
  { name: 'file', uri: () => `file://${dir}/t${++seq}` },
  { name: 's3', uri: () => `s3://${s3.bucket}/cluster-a/t${++seq}` },
];

describe.each(backends)('backups on $name', (backend) => {
  it('round-trips a multi-part upload, verifying sha256 on download', async () => {
    const uri = backend.uri();
    const data = randomBytes(11 * 1024 * 1024 + 123); // > 2 parts of 5 MiB: multipart on S3
    const commands: string[] = [];
    const client = await createS3Client(
      parseDestination(`s3://${s3.bucket}`, s3.connection) as S3Destination,
    );
    client.middlewareStack.add(
      (next, context) => async (args) => {
        commands.push(String(context.commandName));
        return next(args);
      },
      { step: 'initialize' },
    );
    const res = await uploadBackup(
      uri,
      { stream: chunks(data), metadata: meta() },
      { ...opts(), s3Client: client },
    );
    expect(res.bytes).toBe(data.byteLength);
    expect(res.sha256).toBe(sha(data));
    expect(res.key).toBe('conflux-c-1234-20250301T100000000Z-42.snap');
    expect(res.uri).toBe(`${uri}/${res.key}`);
    expect(res.manifestUri).toBe(`${res.uri}.manifest.json`);

    if (backend.name === 's3') {
      // 11 MiB in 5 MiB parts: create, 3 parts, complete; then the manifest in one put.
      expect(commands.filter((c) => c !== 'ListObjectsV2Command')).toEqual([
        'CreateMultipartUploadCommand',
        'UploadPartCommand',
        'UploadPartCommand',
        'UploadPartCommand',
        'CompleteMultipartUploadCommand',
        'PutObjectCommand',
      ]);
    }

    for (const u of [res.uri, res.manifestUri]) {
      const dl = await downloadBackup(u, opts());
      expect(dl.manifest).toMatchObject({ ...meta(), bytes: data.byteLength, sha256: sha(data) });
      expect(dl.uri).toBe(res.uri);
      expect((await consume(dl.stream)).equals(data)).toBe(true);
    }
    const listed = await listBackups(uri, opts());
    expect(listed.map((e) => e.uri)).toEqual([res.uri]);
    expect((await lastBackup(uri, opts()))?.manifest.lastIndex).toBe(42);
  });

  it('writes the manifest only after the data object is complete', async () => {
    const uri = backend.uri();
    const store = openStore(uri, opts());
    const data = randomBytes(6 * 1024 * 1024);
    let checked = false;
    // Runs when the uploader pulls past the last chunk: all data handed over, upload not done.
    const atEnd = async () => {
      expect(await store.list()).toEqual([]); // neither the data object nor a manifest yet
      expect(await listBackups(uri, opts())).toEqual([]);
      checked = true;
    };
    const res = await uploadBackup(uri, { stream: chunks(data, atEnd), metadata: meta() }, opts());
    expect(checked).toBe(true);
    expect((await store.list()).sort()).toEqual([res.key, manifestNameFor(res.key)]);
  });

  it('leaves no manifest and no object when the source stream throws midway', async () => {
    const uri = backend.uri();
    const store = openStore(uri, opts());
    const data = randomBytes(12 * 1024 * 1024);
    await expect(
      uploadBackup(uri, { stream: failingAfter(data, 7 * 1024 * 1024), metadata: meta() }, opts()),
    ).rejects.toThrow(/snapshot source failed/);
    expect(await store.list()).toEqual([]);
    if (backend.name === 'file') {
      expect(await readdir(parseDestinationDir(uri))).toEqual([]); // temp file removed too
    }
    // A leftover data object without a manifest (e.g. a crash between data and manifest) is ignored.
    await store.putBytes(dataNameFor(meta({ lastIndex: 99 })), new Uint8Array([1, 2, 3]));
    await store.putBytes('unrelated.txt', new Uint8Array([1]));
    expect(await listBackups(uri, opts())).toEqual([]);
    expect(await lastBackup(uri, opts())).toBeUndefined();
    await expect(
      downloadBackup(`${uri}/${dataNameFor(meta({ lastIndex: 99 }))}`, opts()),
    ).rejects.toMatchObject({
      problem: 'not-found',
    });
  });

  it('refuses a tampered object when the stream is consumed', async () => {
    const uri = backend.uri();
    const data = randomBytes(300 * 1024);
    const res = await uploadBackup(uri, { stream: chunks(data), metadata: meta() }, opts());
    const bad = Buffer.from(data);
    bad[150_000] = (bad[150_000]! ^ 0xff) & 0xff;
    await overwrite(backend.name, uri, res.key, bad);
    const dl = await downloadBackup(res.uri, opts());
    const err = await consumeError(dl.stream);
    expect(err.problem).toBe('corrupt');
    expect(err.message).toMatch(/sha256/);
  });

  it('gathers the verified data into one buffer, the size and sha256 verdict before a failed chunk check', async () => {
    const uri = backend.uri();
    const data = randomBytes(300 * 1024);
    const res = await uploadBackup(uri, { stream: chunks(data), metadata: meta() }, opts());
    const seen: number[] = [];
    const got = await readBackupData(await downloadBackup(res.uri, opts()), (c) => seen.push(c.byteLength));
    expect(got).toEqual(data);
    expect(seen.reduce((a, b) => a + b, 0)).toBe(data.byteLength);
    const bad = Buffer.from(data);
    bad[10] = (bad[10]! ^ 0xff) & 0xff;
    await overwrite(backend.name, uri, res.key, bad);
    const failing = readBackupData(await downloadBackup(res.uri, opts()), () => {
      throw new Error('record check failed');
    });
    await expect(failing).rejects.toMatchObject({
      problem: 'corrupt',
      message: expect.stringMatching(/sha256/),
    });
    // Intact data: the chunk check's own error comes out, once the stream is verified.
    await overwrite(backend.name, uri, res.key, data);
    const checked = readBackupData(await downloadBackup(res.uri, opts()), () => {
      throw new Error('record check failed');
    });
    await expect(checked).rejects.toThrow('record check failed');
  });

  it('refuses a truncated or extended object', async () => {
    const uri = backend.uri();
    const data = randomBytes(200 * 1024);
    const res = await uploadBackup(uri, { stream: chunks(data), metadata: meta() }, opts());
    await overwrite(backend.name, uri, res.key, data.subarray(0, 100_000));
    expect((await consumeError((await downloadBackup(res.uri, opts())).stream)).message).toMatch(/truncated/);
    await overwrite(backend.name, uri, res.key, Buffer.concat([data, Buffer.from('x')]));
    expect((await consumeError((await downloadBackup(res.uri, opts())).stream)).message).toMatch(/longer/);
  });
});

function parseDestinationDir(uri: string): string {
  const d = parseDestination(uri);
  if (d.kind !== 'file') throw new Error('not a file uri');
  return d.dir;
}

/** Tamper behind the module's back: a raw file write, or a raw S3 PutObject. */
async function overwrite(kind: string, uri: string, name: string, bytes: Uint8Array): Promise<void> {
  if (kind === 'file') {
    const path = join(parseDestinationDir(uri), name);
    await truncate(path, 0);
    const fh = await open(path, 'r+');
    await fh.write(bytes, 0, bytes.byteLength, 0);
    await fh.close();
    return;
  }
  const dest = parseDestination(uri, s3.connection) as S3Destination;
  await (await createS3Client(dest)).send(
    new PutObjectCommand({ Bucket: dest.bucket, Key: `${dest.prefix}/${name}`, Body: bytes }),
  );
}

describe('downloadBackup errors', () => {
  it('names a missing backup and a malformed object URI', async () => {
    await expect(downloadBackup(`file://${dir}/none/conflux-x-1.snap`)).rejects.toThrow(
      /no backup at .*manifest/,
    );
    await expect(downloadBackup(`file://${dir}/none/readme.txt`)).rejects.toThrow(/ending in \.snap/);
    await expect(downloadBackup('ftp://x/y.snap')).rejects.toThrow(/unsupported scheme "ftp"/);
  });

  it('reports an unreadable manifest as corrupt', async () => {
    const name = dataNameFor(meta());
    await writeFile(join(dir, `${name}.manifest.json`), '{"kind":"conflux-backup"');
    await expect(downloadBackup(`file://${dir}/${name}`)).rejects.toMatchObject({ problem: 'corrupt' });
    expect(await listBackups(`file://${dir}`)).toEqual([]);
  });

  it('refuses invalid metadata before writing anything', async () => {
    const uri = `file://${dir}/meta`;
    await expect(
      uploadBackup(uri, { stream: chunks(new Uint8Array(1)), metadata: meta({ clusterId: '../x' }) }),
    ).rejects.toMatchObject({ problem: 'invalid-metadata', code: 'INVALID_REQUEST' });
    await expect(
      uploadBackup(uri, { stream: chunks(new Uint8Array(1)), metadata: meta({ createdAt: 'yesterday' }) }),
    ).rejects.toThrow(/createdAt/);
  });
});
