// s3:// destinations: a key prefix in a bucket of any S3-compatible endpoint. Large objects go up
// as multipart uploads (@aws-sdk/lib-storage); S3 makes an object visible only when its upload
// completes, and a failed upload is aborted, so no partial object is ever listed. The AWS SDK is
// loaded on the first use of an s3:// destination: a node that never uses one does not load it at
// every start (0.3–0.4 s of module loading in a bare process; docs/performance.md).

import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { BackupError, describe } from './errors.js';
import { MAX_SMALL_OBJECT_BYTES, type ObjectStore, tooLarge } from './object-store.js';
import { formatUri, type S3Destination } from './uri.js';

/** S3's minimum part size (all parts but the last). */
export const MIN_PART_BYTES = 5 * 1024 * 1024;

export interface S3StoreOptions {
  /** Multipart part size, ≥ 5 MiB (default 8 MiB). Memory held ≈ partSizeBytes × (queueSize + 1). */
  partSizeBytes?: number;
  /** Parts uploaded concurrently (default 2). */
  queueSize?: number;
}

type Sdk = typeof import('@aws-sdk/client-s3') & { Upload: typeof import('@aws-sdk/lib-storage').Upload };
let sdkLoading: Promise<Sdk> | undefined;

function sdk(): Promise<Sdk> {
  sdkLoading ??= Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]).then(
    ([s3, storage]) => ({ ...s3, Upload: storage.Upload }),
  );
  return sdkLoading;
}

export async function createS3Client(dest: S3Destination): Promise<S3Client> {
  const { S3Client } = await sdk();
  const c = dest.connection;
  return new S3Client({
    region: c.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    ...(c.endpoint ? { endpoint: c.endpoint } : {}),
    forcePathStyle: c.forcePathStyle ?? false,
    ...(c.credentials ? { credentials: c.credentials } : {}),
    // Checksums only where the API requires them: many S3-compatible servers mishandle the
    // SDK's default flexible checksums (aws-chunked bodies) and store corrupted objects. Our own
    // sha256 in the manifest covers integrity end to end anyway.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

function isNotFound({ NoSuchKey, S3ServiceException }: Sdk, err: unknown): boolean {
  if (err instanceof NoSuchKey) return true;
  return (
    err instanceof S3ServiceException && (err.name === 'NotFound' || err.$metadata.httpStatusCode === 404)
  );
}

export class S3Store implements ObjectStore {
  private readonly partSizeBytes: number;
  private readonly queueSize: number;
  private clientMade: Promise<S3Client> | undefined;

  constructor(
    private readonly dest: S3Destination,
    private readonly givenClient?: S3Client,
    options: S3StoreOptions = {},
  ) {
    this.partSizeBytes = options.partSizeBytes ?? 8 * 1024 * 1024;
    if (this.partSizeBytes < MIN_PART_BYTES)
      throw new RangeError(`partSizeBytes must be ≥ ${MIN_PART_BYTES}`);
    this.queueSize = options.queueSize ?? 2;
  }

  /** The SDK and the client: made on first use, not when the store is opened. */
  private async connect(): Promise<{ sdk: Sdk; client: S3Client }> {
    this.clientMade ??= this.givenClient ? Promise.resolve(this.givenClient) : createS3Client(this.dest);
    const [m, client] = await Promise.all([sdk(), this.clientMade]);
    return { sdk: m, client };
  }

  private key(name: string): string {
    return this.dest.prefix ? `${this.dest.prefix}/${name}` : name;
  }

  uriOf(name: string): string {
    return formatUri(this.dest, name);
  }

  private wrap(what: string, name: string, err: unknown): BackupError {
    if (err instanceof BackupError) return err;
    return new BackupError('io', `cannot ${what} ${this.uriOf(name)}: ${describe(err)}`, { cause: err });
  }

  async putStream(name: string, body: AsyncIterable<Uint8Array>): Promise<void> {
    // Remember the source's own failure: lib-storage reports the abort's error instead when the
    // abort fails too (some S3 stand-ins do not implement AbortMultipartUpload), and the caller
    // should see why the upload stopped.
    let sourceError: { err: unknown } | undefined;
    async function* watched(): AsyncGenerator<Uint8Array> {
      try {
        yield* body;
      } catch (err) {
        sourceError = { err };
        throw err;
      }
    }
    const { sdk: m, client } = await this.connect();
    const upload = new m.Upload({
      client,
      params: {
        Bucket: this.dest.bucket,
        Key: this.key(name),
        Body: Readable.from(watched(), { objectMode: false }),
      },
      partSize: this.partSizeBytes,
      queueSize: this.queueSize,
      // On any failure (including the body throwing) the multipart upload is aborted, so the
      // parts already sent are discarded. Even if that abort fails, S3 never shows an object for an
      // uncompleted multipart upload (a bucket lifecycle rule should expire such parts).
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      if (sourceError) throw sourceError.err;
      throw this.wrap('upload', name, err);
    }
  }

  async putBytes(name: string, body: Uint8Array): Promise<void> {
    try {
      const { sdk: m, client } = await this.connect();
      await client.send(
        new m.PutObjectCommand({
          Bucket: this.dest.bucket,
          Key: this.key(name),
          Body: body,
          ContentLength: body.byteLength,
        }),
      );
    } catch (err) {
      throw this.wrap('write', name, err);
    }
  }

  async getStream(name: string): Promise<AsyncIterable<Uint8Array> | undefined> {
    const { sdk: m, client } = await this.connect();
    try {
      const res = await client.send(
        new m.GetObjectCommand({ Bucket: this.dest.bucket, Key: this.key(name) }),
      );
      // In Node the SDK's body is an http.IncomingMessage, a Readable.
      if (!(res.Body instanceof Readable)) throw new Error('response body is not a Node stream');
      return res.Body;
    } catch (err) {
      if (isNotFound(m, err)) return undefined;
      throw this.wrap('read', name, err);
    }
  }

  async getBytes(name: string): Promise<Uint8Array | undefined> {
    const stream = await this.getStream(name);
    if (!stream) return undefined;
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    try {
      for await (const c of stream) {
        bytes += c.byteLength;
        if (bytes > MAX_SMALL_OBJECT_BYTES) break;
        chunks.push(c);
      }
    } catch (err) {
      throw this.wrap('read', name, err);
    }
    if (bytes > MAX_SMALL_OBJECT_BYTES) throw tooLarge(this.uriOf(name), bytes);
    return Buffer.concat(chunks);
  }

  async list(): Promise<string[]> {
    const prefix = this.dest.prefix ? `${this.dest.prefix}/` : '';
    const names: string[] = [];
    let token: string | undefined;
    try {
      const { sdk: m, client } = await this.connect();
      do {
        const res = await client.send(
          new m.ListObjectsV2Command({
            Bucket: this.dest.bucket,
            Prefix: prefix,
            Delimiter: '/', // only this "directory", not nested ones
            ContinuationToken: token,
          }),
        );
        for (const o of res.Contents ?? []) {
          if (o.Key?.startsWith(prefix)) names.push(o.Key.slice(prefix.length));
        }
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw new BackupError('io', `cannot list ${formatUri(this.dest)}: ${describe(err)}`, { cause: err });
    }
    return names;
  }

  async delete(name: string): Promise<void> {
    try {
      const { sdk: m, client } = await this.connect();
      await client.send(new m.DeleteObjectCommand({ Bucket: this.dest.bucket, Key: this.key(name) }));
    } catch (err) {
      throw this.wrap('delete', name, err);
    }
  }
}
