// file:// destinations: a local directory. Atomicity comes from write-to-temp, fsync, rename,
// fsync of the directory: a reader sees either no file or the complete, durable one. Temporary
// files start with '.' and are never listed; ones left by a crash are harmless litter.
// Backups hold every key: directories are created 0700 and files 0600. Small objects (manifests)
// are read only from regular files and only up to MAX_SMALL_OBJECT_BYTES, so a manifest that is
// a symlink to /dev/zero, or a huge file, is a clear BACKUP_CORRUPT rather than unbounded memory.

import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupError, describe } from './errors.js';
import { MAX_SMALL_OBJECT_BYTES, type ObjectStore, tooLarge } from './object-store.js';
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
    await mkdir(this.dest.dir, { recursive: true, mode: 0o700 });
    const tmp = join(this.dest.dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    const fh = await open(tmp, 'wx', 0o600);
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
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(join(this.dest.dir, name), 'r');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new BackupError('io', `cannot read ${this.uriOf(name)}: ${describe(err)}`, { cause: err });
    }
    try {
      const stat = await fh.stat();
      if (!stat.isFile()) throw new BackupError('corrupt', `${this.uriOf(name)} is not a regular file`);
      if (stat.size > MAX_SMALL_OBJECT_BYTES) throw tooLarge(this.uriOf(name), stat.size);
      // Read one byte past the limit: a file that grew since the stat is refused too.
      const buf = Buffer.alloc(MAX_SMALL_OBJECT_BYTES + 1);
      let got = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, got, buf.byteLength - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
        if (got > MAX_SMALL_OBJECT_BYTES) throw tooLarge(this.uriOf(name), got);
      }
      return buf.subarray(0, got);
    } catch (err) {
      if (err instanceof BackupError) throw err;
      throw new BackupError('io', `cannot read ${this.uriOf(name)}: ${describe(err)}`, { cause: err });
    } finally {
      await fh.close().catch(() => {});
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
