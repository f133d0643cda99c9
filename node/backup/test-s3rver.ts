// Test helper: a real s3rver (S3 stand-in) in a child process on a random port, over a temp dir,
// with one bucket. Run as a child so it can get NODE_OPTIONS=--openssl-legacy-provider (s3rver's
// md5 use needs it on Node 20) without touching the test process.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { S3ConnectionOptions } from './uri.js';

export interface S3rverHandle {
  endpoint: string;
  bucket: string;
  connection: S3ConnectionOptions;
  stop(): Promise<void>;
}

export async function startS3rver(bucket = 'backups'): Promise<S3rverHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-s3rver-'));
  const bin = join(
    dirname(createRequire(import.meta.url).resolve('s3rver/package.json')),
    'bin',
    's3rver.js',
  );
  const child: ChildProcess = spawn(
    process.execPath,
    [bin, '-d', dir, '-a', '127.0.0.1', '-p', '0', '--silent', '--configure-bucket', bucket],
    { env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`s3rver did not start: ${out}`)), 15_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = /listening on [^:\s]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with ${code}: ${out}`));
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    connection: {
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
