// file:// destinations: a local directory. Atomicity comes from write-to-temp, fsync, rename,
// fsync of the directory: a reader sees either no file or the complete, durable one. Temporary
// files start with '.' and are never listed; ones left by a crash are harmless litter.

import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupError, describe } from './errors.js';
import type { ObjectStore } from './object-store.js';
import { type FileDestination, formatUri } from './uri.js';

function isNotFound(err: unknown): boolean {
  return err instanceof Error && 'code' in err && err.code === 'ENOENT';
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class FileStore implements ObjectStore {
  constructor(private readonly dest: FileDestination) {}

  uriOf(name: string): string {
    return formatUri(this.dest, name);
  }

  async putStream(name: string, body: AsyncIterable<Uint8Array>): Promise<void> {
    await mkdir(this.dest.dir, { recursive: true });
    const tmp = join(this.dest.dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    const fh = await open(tmp, 'wx');
    let done = false;
    try {
      for await (const chunk of body) {
        // Loop: write() may write less than asked.
        for (let off = 0; off < chunk.byteLength; ) {
          const { bytesWritten } = await fh.write(chunk, off);
          off += bytesWritten;
        }
      }
      await fh.sync();
      await fh.close();
      await rename(tmp, join(this.dest.dir, name));
      done = true;
      await fsyncDir(this.dest.dir);
    } finally {
      if (!done) {
        await fh.close().catch(() => {});
        await rm(tmp, { force: true });
      }
    }
  }

  async putBytes(name: string, body: Uint8Array): Promise<void> {
    await this.putStream(name, once(body));
  }

  async getBytes(name: string): Promise<Uint8Array | undefined> {
    try {
      return await readFile(join(this.dest.dir, name));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new BackupError('io', `cannot read ${this.uriOf(name)}: ${describe(err)}`, { cause: err });
    }
  }

  async getStream(name: string): Promise<AsyncIterable<Uint8Array> | undefined> {
    const path = join(this.dest.dir, name);
    // Open first so a missing file is reported here, not on the first read.
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new BackupError('io', `cannot open ${this.uriOf(name)}: ${describe(err)}`, { cause: err });
    }
    return fh.createReadStream({ autoClose: true });
  }

  async list(): Promise<string[]> {
    try {
      const entries = await readdir(this.dest.dir, { withFileTypes: true });
      return entries.filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => e.name);
    } catch (err) {
      if (isNotFound(err)) return [];
      throw new BackupError('io', `cannot list ${formatUri(this.dest)}: ${describe(err)}`, { cause: err });
    }
  }

  async delete(name: string): Promise<void> {
    await rm(join(this.dest.dir, name), { force: true });
  }
}
