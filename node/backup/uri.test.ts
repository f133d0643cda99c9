import { describe, expect, it } from 'vitest';
import { BackupError } from './errors.js';
import { formatUri, parseDestination, parseObjectUri } from './uri.js';

function problemOf(f: () => unknown): { problem: string; code: string; message: string } {
  try {
    f();
  } catch (err) {
    if (err instanceof BackupError) return { problem: err.problem, code: err.code, message: err.message };
    throw err;
  }
  throw new Error('did not throw');
}

describe('backup URIs', () => {
  it('parses s3://bucket/prefix with connection options', () => {
    const d = parseDestination('s3://my-bucket/a/b/', {
      endpoint: 'http://minio:9000',
      forcePathStyle: true,
    });
    expect(d).toEqual({
      kind: 's3',
      bucket: 'my-bucket',
      prefix: 'a/b',
      connection: { endpoint: 'http://minio:9000', forcePathStyle: true },
    });
    expect(parseDestination('s3://my-bucket')).toMatchObject({ prefix: '' });
    expect(formatUri(d, 'x.snap')).toBe('s3://my-bucket/a/b/x.snap');
  });

  it('parses file:///abs/path', () => {
    const d = parseDestination('file:///var/backups/conflux/');
    expect(d).toEqual({ kind: 'file', dir: '/var/backups/conflux' });
    expect(formatUri(d, 'x.snap')).toBe('file:///var/backups/conflux/x.snap');
    expect(parseDestination('file://localhost/tmp/b')).toEqual({ kind: 'file', dir: '/tmp/b' });
  });

  it('splits an object URI into destination and name', () => {
    expect(parseObjectUri('s3://b-1/p/q/c.snap')).toMatchObject({
      dest: { bucket: 'b-1', prefix: 'p/q' },
      name: 'c.snap',
    });
    expect(parseObjectUri('s3://b-1/c.snap')).toMatchObject({ dest: { prefix: '' }, name: 'c.snap' });
    expect(parseObjectUri('file:///tmp/b/c.snap')).toEqual({
      dest: { kind: 'file', dir: '/tmp/b' },
      name: 'c.snap',
    });
  });

  it.each([
    ['', /not a string|empty/],
    ['not a uri', /not a URI/],
    ['http://example.com/x', /unsupported scheme "http"/],
    ['gs://bucket/x', /unsupported scheme "gs"/],
    ['s3://', /missing bucket|not a URI/],
    ['s3://Bad_Bucket/x', /not a valid bucket name/],
    ['s3://bucket:9000/x', /no port/],
    ['s3://bucket/a/../b', /segment/],
    ['s3://bucket/a//b', /segment "" is not allowed/],
    ['s3://key:secret@bucket/x', /credentials do not belong/],
    ['s3://bucket/x?versionId=1', /query strings/],
    ['file://relative/path', /absolute path with three slashes/],
    ['file:///', /filesystem root/],
    ['file:///tmp/a%00b', /control characters/],
    ['file:///tmp/a\u0000b', /control characters/],
    ['s3://bucket/a%00b', /control characters/],
    ['s3://bucket/a%0Ab', /control characters/],
    ['s3://bucket/x\u0000', /control characters/],
    ['file:///tmp/a%2Fb', /encoded '\/'/],
    ['file:///tmp/a%2fb/c.snap', /encoded '\/'/],
    ['s3://bucket/a%2Fb', /encoded '\/'/],
  ])('refuses %j with a clear message', (uri, why) => {
    const p = problemOf(() => parseDestination(uri));
    expect(p.problem).toBe('invalid-uri');
    expect(p.code).toBe('INVALID_REQUEST');
    expect(p.message).toMatch(why);
    expect(p.message).toMatch(/expected s3:\/\/bucket\/prefix or file:\/\/\/absolute\/path/);
  });

  it('refuses bad S3 options', () => {
    expect(problemOf(() => parseDestination('s3://bucket/x', { endpoint: 'ftp://x' })).message).toMatch(
      /endpoint/,
    );
  });

  it('refuses an object URI that names only a bucket', () => {
    expect(problemOf(() => parseObjectUri('s3://bucket')).message).toMatch(/names a bucket/);
  });
});
