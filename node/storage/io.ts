// The few file operations whose ordering carries durability, with the hooks chaos tests and
// metrics need. Every write and fsync the storage performs goes through here.

import * as path from 'node:path';
import { nodeFs, type StorageFileHandle, type StorageFs } from './fs.js';

/**
 * Injected failures: a hook that throws makes the operation fail as if the disk had (ENOSPC, EIO).
 * Hooks run at every durability point, also when fsync is disabled.
 */
export interface FaultInjector {
  beforeWrite?(file: string, bytes: Uint8Array): void;
  beforeFsync?(file: string): void;
}

export type FsyncTarget = 'wal' | 'snapshot' | 'dir';

export interface StorageLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: StorageLogger = { info() {}, warn() {}, error() {} };

export interface IoOptions {
  /** Default true. Off only for tests and benchmarks that accept losing data on a crash. */
  fsync?: boolean;
  faults?: FaultInjector;
  /** Called after every fsync with its duration (for the server's latency histogram). */
  onFsync?(durationMs: number, target: FsyncTarget): void;
  /** The file system (default node:fs); a simulator supplies an in-memory disk. */
  fs?: StorageFs;
}

export class DurableIo {
  private readonly fsyncEnabled: boolean;
  /** Every file operation of the storage goes through this. */
  readonly fs: StorageFs;

  constructor(private readonly opts: IoOptions) {
    this.fsyncEnabled = opts.fsync ?? true;
    this.fs = opts.fs ?? nodeFs;
  }

  /** Write all of `bytes` at `position`. */
  async write(fh: StorageFileHandle, file: string, bytes: Uint8Array, position: number): Promise<void> {
    this.opts.faults?.beforeWrite?.(file, bytes);
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
      done += bytesWritten;
    }
  }

  /**
   * Open `file` for appends that are made durable one by one: with O_DSYNC when fsync is on and
   * the file system offers it (one system call per append instead of a write and an fdatasync,
   * each a thread-pool round trip), else as 'r+'. Pass `dsync` to `syncWritten`.
   */
  async openForAppends(file: string): Promise<{ fh: StorageFileHandle; dsync: boolean }> {
    if (this.fsyncEnabled && this.fs.openDsync) return { fh: await this.fs.openDsync(file), dsync: true };
    return { fh: await this.fs.open(file, 'r+'), dsync: false };
  }

  /**
   * Make what was just written to `fh` (opened by openForAppends) durable: an fsync, or with
   * O_DSYNC nothing more, since the write itself returned only once durable. The fault hook and the
   * onFsync report are the same either way; with O_DSYNC the duration reported is the write's
   * (from `writeStartMs`), which includes the flush.
   */
  async syncWritten(
    fh: StorageFileHandle,
    file: string,
    dsync: boolean,
    writeStartMs: number,
  ): Promise<void> {
    if (!dsync) return this.fsync(fh, file, 'wal');
    this.opts.faults?.beforeFsync?.(file);
    this.opts.onFsync?.(performance.now() - writeStartMs, 'wal');
  }

  /** fdatasync: enough for appends and whole-file writes (the size is flushed with the data). */
  async fsync(fh: StorageFileHandle, file: string, target: FsyncTarget): Promise<void> {
    this.opts.faults?.beforeFsync?.(file);
    if (!this.fsyncEnabled) return;
    const start = performance.now();
    await fh.datasync();
    this.opts.onFsync?.(performance.now() - start, target);
  }

  /** Make a create, rename or unlink in `dir` durable. */
  async fsyncDir(dir: string): Promise<void> {
    this.opts.faults?.beforeFsync?.(dir);
    if (!this.fsyncEnabled) return;
    const start = performance.now();
    const fh = await this.fs.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.opts.onFsync?.(performance.now() - start, 'dir');
  }

  /**
   * Create `file` with `parts` as its content, all or nothing: write `file.tmp`, fsync it, rename,
   * fsync the directory. Afterwards the file exists durably with exactly this content.
   */
  async createFile(file: string, parts: readonly Uint8Array[], target: FsyncTarget): Promise<void> {
    const tmp = `${file}.tmp`;
    const fh = await this.fs.open(tmp, 'w');
    try {
      let position = 0;
      for (const p of parts) {
        await this.write(fh, tmp, p, position);
        position += p.length;
      }
      await this.fsync(fh, tmp, target);
    } catch (err) {
      await fh.close();
      await this.fs.rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    await this.publish(tmp, file);
  }

  /** Rename a complete, synced temp file to its final name and make the rename durable. */
  async publish(tmp: string, file: string): Promise<void> {
    await this.fs.rename(tmp, file);
    await this.fsyncDir(path.dirname(file));
  }
}

/** Delete `*.tmp` files in `dir`: temp files of writes a crash interrupted. Returns their names. */
export function removeTempFiles(fs: StorageFs, dir: string): string[] {
  const removed = fs.readdirSync(dir).filter((name) => name.endsWith('.tmp'));
  for (const name of removed) fs.rmSync(path.join(dir, name), { force: true });
  return removed;
}
