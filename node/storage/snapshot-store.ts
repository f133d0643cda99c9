// Snapshot files in `snap/`: the current snapshot (served to followers and read on restart), the
// staging file of an incoming transfer, and freshly written files not yet referenced by the WAL.
//
// What is durable when:
// - Staged chunks are not synced: a crash loses them, as it loses the transfer state in the core,
//   and the leader restarts the transfer from offset 0.
// - `finishStaging` / `writeOwn` return only once the file is complete, synced, renamed to its
//   final name and the directory synced. Such a file is still *unreferenced*: it becomes the
//   snapshot only when a WAL record naming it is durable, and recovery deletes unreferenced files.
// - `setCurrent` (called after that record is durable) makes the new file current and keeps the
//   one before it as a fallback (the WAL keeps the entries after it too), deleting anything older.
//   Should the current file ever fail its checksum, recovery starts from the fallback and replays
//   the log instead of refusing. An installed snapshot keeps no fallback (the log before it is
//   gone).
// - A replaced snapshot stays open for reading (`retired`, the last RETIRED_KEPT of them): the
//   leader goes on sending a transfer it started from it (node/raft/replicator.ts), so a transfer
//   slower than the snapshot interval still finishes. Its file may be deleted already; the open
//   descriptor keeps the bytes readable (and their disk space taken) until it is closed. A transfer
//   of an older one gets null chunks, and the leader starts it over with the current snapshot.
//
// Checksums: bytes damaged on this disk since a file was written must never be handed out (a
// follower would stage them under a checksum of its own, install them durably and fail on them
// for good). `open` checks the whole file once, in slices with turns of the event loop between
// them (docs/ARCHITECTURE.md §5). `read` then checks as the bytes go out: a read from offset 0
// starts a running checksum, each read that continues where an earlier one ended extends it, and
// the read that reaches the end of the data is refused (StorageCorruptionError) unless the sum
// matches the footer. A follower never gets the last chunk of a damaged file, so it never
// installs it; a whole-file read (a restart, an install) is checked the same way, in one piece.
// Only a read reaching the end without a known sum for where it starts (a transfer resumed from
// another node's offset) checks the whole file there and then.

import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import type { SnapshotChunk, SnapshotMeta } from '../raft/types.js';
import { StorageCorruptionError } from './errors.js';
import type { StorageFileHandle, StorageFs } from './fs.js';
import type { DurableIo, StorageLogger } from './io.js';
import type { SnapshotRef } from './schemas.js';
import {
  checkDataCrc,
  crcOfData,
  encodeFooter,
  readAt,
  readFooter,
  type SnapshotFooter,
  verifySnapshotFd,
} from './snapshot-file.js';

const STAGING_NAME = 'staging.tmp';
/** Replaced snapshots kept open for transfers in progress (see the header). */
const RETIRED_KEPT = 2;
/** Slices of `readWhole`. */
const READ_SLICE_BYTES = 8 << 20;
/** Not a crc32 (those are unsigned): a run that continues the read checked whole by `open`. */
const TRUSTED = -1;
/** Running checksums kept per snapshot (by the offset where each ends): one per transfer, plus retries. */
const RUNS_KEPT = 32;

/** An open snapshot file, with what `read` knows of its checksums. */
interface OpenSnapshot {
  ref: SnapshotRef;
  fd: number;
  /** Read lazily on the first read that needs it. */
  footer: SnapshotFooter | null;
  /** crc32 of bytes [0, offset) (or TRUSTED), by offset, for reads that started at 0; oldest first. */
  runs: Map<number, number>;
  /** Checked whole by `open` and not read from 0 since: that first read needs no second sum. */
  fresh: boolean;
}

interface Staging {
  meta: SnapshotMeta;
  fh: StorageFileHandle;
  bytes: number;
  crc: number;
}

export const isSnapshotFile = (name: string): boolean => name.endsWith('.snap');

export class SnapshotStore {
  private current: OpenSnapshot | null = null;
  /** The fallback: the snapshot before the current one, or null. */
  private previous: SnapshotRef | null = null;
  private staging: Staging | null = null;
  /** Replaced snapshots still open for transfers that started from them, oldest first. */
  private retired: OpenSnapshot[] = [];
  private readonly fs: StorageFs;

  private constructor(
    private readonly dir: string,
    private readonly io: DurableIo,
    private readonly logger: StorageLogger,
  ) {
    this.fs = io.fs;
  }

  /**
   * Verify the snapshot the WAL refers to and delete every snapshot file but it and `previous`
   * (the fallback, if the WAL still names it and its file is there). The check reads the file in
   * slices, the event loop running between them.
   */
  static async open(
    dir: string,
    ref: SnapshotRef | null,
    io: DurableIo,
    logger: StorageLogger,
    previous: SnapshotRef | null = null,
  ): Promise<SnapshotStore> {
    const store = new SnapshotStore(dir, io, logger);
    const { fs } = io;
    if (ref) {
      const file = path.join(dir, ref.file);
      if (!fs.existsSync(file)) {
        throw new StorageCorruptionError(file, 0, `snapshot ${ref.meta.id} referenced by the WAL is missing`);
      }
      const fd = fs.openSync(file, 'r');
      let meta: SnapshotMeta;
      try {
        meta = await verifySnapshotFd(fs, fd, file);
      } catch (err) {
        fs.closeSync(fd);
        throw err;
      }
      if (meta.id !== ref.meta.id || meta.index !== ref.meta.index || meta.term !== ref.meta.term) {
        fs.closeSync(fd);
        throw new StorageCorruptionError(
          file,
          0,
          `holds snapshot ${meta.id}, the WAL expects ${ref.meta.id}`,
        );
      }
      store.current = { ...openSnapshot(ref, fd), fresh: true };
    }
    if (previous && previous.file !== ref?.file && fs.existsSync(path.join(dir, previous.file))) {
      store.previous = previous;
    }
    for (const name of fs.readdirSync(dir)) {
      if (!isSnapshotFile(name) || name === ref?.file || name === store.previous?.file) continue;
      // Written but never referenced (a crash before its WAL record), or superseded.
      fs.rmSync(path.join(dir, name), { force: true });
      logger.info({ file: path.join(dir, name) }, 'deleted unreferenced snapshot file');
    }
    return store;
  }

  get currentRef(): SnapshotRef | null {
    return this.current?.ref ?? null;
  }

  /** Append one chunk of an incoming snapshot; offset 0 starts over. Chunks arrive in order. */
  async stage(chunk: SnapshotChunk): Promise<void> {
    const file = path.join(this.dir, STAGING_NAME);
    if (chunk.offset === 0) {
      await this.dropStaging();
      this.staging = { meta: chunk.meta, fh: await this.fs.open(file, 'w'), bytes: 0, crc: 0 };
    }
    const s = this.staging;
    if (!s || s.meta.id !== chunk.meta.id || s.bytes !== chunk.offset) {
      throw new Error(
        `snapshot chunk ${chunk.meta.id}@${chunk.offset} out of order (staged ${s?.meta.id}@${s?.bytes})`,
      );
    }
    await this.io.write(s.fh, file, chunk.data, s.bytes);
    s.bytes += chunk.data.length;
    s.crc = crc32(chunk.data, s.crc);
  }

  /** Turn the staged bytes of `meta` into a complete, durable (still unreferenced) snapshot file. */
  async finishStaging(meta: SnapshotMeta): Promise<SnapshotRef> {
    const s = this.staging;
    if (!s || s.meta.id !== meta.id || s.bytes !== meta.sizeBytes) {
      throw new Error(
        `snapshot ${meta.id} is not fully staged (${s?.meta.id}: ${s?.bytes}/${meta.sizeBytes})`,
      );
    }
    this.staging = null;
    const tmp = path.join(this.dir, STAGING_NAME);
    const ref: SnapshotRef = { meta, file: newFileName(meta) };
    try {
      await this.io.write(s.fh, tmp, encodeFooter(meta, s.crc), s.bytes);
      await this.io.fsync(s.fh, tmp, 'snapshot');
    } finally {
      await s.fh.close();
    }
    await this.io.publish(tmp, path.join(this.dir, ref.file));
    return ref;
  }

  /** Write a snapshot this node made as a complete, durable (still unreferenced) file. */
  async writeOwn(meta: SnapshotMeta, data: Uint8Array): Promise<SnapshotRef> {
    if (data.length !== meta.sizeBytes)
      throw new Error(`snapshot ${meta.id}: ${data.length} bytes, meta says ${meta.sizeBytes}`);
    const ref: SnapshotRef = { meta, file: newFileName(meta) };
    await this.io.createFile(
      path.join(this.dir, ref.file),
      [data, encodeFooter(meta, await crcInSlices(data))],
      'snapshot',
    );
    return ref;
  }

  /**
   * `ref` is referenced by a durable WAL record now: serve it, keep the one it replaces as the
   * fallback (unless `keepFallback` is false), and delete anything older.
   */
  setCurrent(ref: SnapshotRef, keepFallback = true): void {
    const fd = this.fs.openSync(path.join(this.dir, ref.file), 'r');
    const replaced = this.current;
    this.current = openSnapshot(ref, fd);
    const dropped = this.previous;
    this.previous = keepFallback && replaced && replaced.ref.file !== ref.file ? replaced.ref : null;
    if (replaced) this.retire(replaced);
    for (const old of [dropped, replaced?.ref ?? null]) {
      if (old && old.file !== ref.file && old.file !== this.previous?.file) this.remove(old.file);
    }
  }

  /** Delete a file that lost the race to become current (a newer snapshot got there first). */
  discard(ref: SnapshotRef): void {
    this.remove(ref.file);
  }

  /**
   * Bytes [offset, offset + length) of `meta`'s snapshot if it is the current one or a retired one
   * still open; clamped to its size. A read that reaches the end of the data is checked against
   * the file's checksum first (see the header). Throws StorageCorruptionError.
   */
  read(meta: SnapshotMeta, offset: number, length: number): Uint8Array | null {
    const cur =
      this.current?.ref.meta.id === meta.id
        ? this.current
        : this.retired.find((r) => r.ref.meta.id === meta.id);
    if (!cur) return null;
    const size = cur.ref.meta.sizeBytes;
    const start = Math.min(Math.max(0, offset), size);
    const data = readAt(this.fs, cur.fd, start, Math.max(0, Math.min(length, size - start)));
    this.check(cur, start, data);
    return data;
  }

  /**
   * `read` of the whole snapshot in 8 MiB slices with a turn of the event loop between them (one
   * read of 165 MiB at 1M keys stalls for 0.1 s), checked as `read` checks; null if it is not
   * held or `stopped()` turns true meanwhile. Throws StorageCorruptionError.
   */
  async readWhole(meta: SnapshotMeta, stopped: () => boolean): Promise<Uint8Array | null> {
    const size = meta.sizeBytes;
    if (size <= READ_SLICE_BYTES) return this.read(meta, 0, size);
    const data = Buffer.allocUnsafe(size);
    for (let at = 0; at < size; ) {
      if (at > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const piece = stopped() ? null : this.read(meta, at, READ_SLICE_BYTES);
      if (!piece || piece.length === 0) return null;
      data.set(piece, at);
      at += piece.length;
    }
    return data;
  }

  /** Extend the running checksum `data` (read at `start`) continues; check it at the end. */
  private check(cur: OpenSnapshot, start: number, data: Buffer): void {
    const end = start + data.length;
    const file = path.join(this.dir, cur.ref.file);
    let crc: number | undefined;
    if (start === 0 && cur.fresh) {
      // The first read after `open` checked the whole file: the read (in one piece or in chunks)
      // that restores the state from it needs no second sum.
      cur.fresh = false;
      crc = TRUSTED;
    } else {
      const before = start === 0 ? 0 : cur.runs.get(start);
      crc = before === undefined || before === TRUSTED ? before : crc32(data, before);
      // A trusted run is read once, in order: no transfer continues from where it passed.
      if (before === TRUSTED) cur.runs.delete(start);
    }
    if (crc === TRUSTED && end === cur.ref.meta.sizeBytes) return;
    if (crc !== undefined && end < cur.ref.meta.sizeBytes) {
      cur.runs.delete(end);
      cur.runs.set(end, crc);
      if (cur.runs.size > RUNS_KEPT) cur.runs.delete(cur.runs.keys().next().value as number);
      return;
    }
    if (end < cur.ref.meta.sizeBytes) return;
    cur.footer ??= readFooter(this.fs, cur.fd, file);
    if (crc !== undefined) checkDataCrc(cur.footer, crc, file);
    else checkDataCrc(cur.footer, crcOfData(this.fs, cur.fd, cur.footer.dataBytes), file);
  }

  async close(): Promise<void> {
    await this.dropStaging();
    if (this.current) this.fs.closeSync(this.current.fd);
    this.current = null;
    for (const r of this.retired.splice(0)) this.fs.closeSync(r.fd);
  }

  private retire(replaced: OpenSnapshot): void {
    this.retired.push(replaced);
    while (this.retired.length > RETIRED_KEPT) this.fs.closeSync(this.retired.shift()!.fd);
  }

  private async dropStaging(): Promise<void> {
    const s = this.staging;
    this.staging = null;
    if (s) await s.fh.close();
  }

  private remove(name: string): void {
    const file = path.join(this.dir, name);
    try {
      this.fs.rmSync(file, { force: true });
    } catch (err) {
      // Harmless: recovery deletes every snapshot file the WAL does not reference.
      this.logger.warn({ file, err }, 'could not delete an old snapshot file');
    }
  }
}

const openSnapshot = (ref: SnapshotRef, fd: number): OpenSnapshot => ({
  ref,
  fd,
  footer: null,
  runs: new Map(),
  fresh: false,
});

/**
 * crc32 of `data`, 4 MiB at a time with a turn of the event loop between: 165 MiB at 1M keys
 * take 35 ms in one piece (docs/ARCHITECTURE.md §5).
 */
async function crcInSlices(data: Uint8Array): Promise<number> {
  const slice = 4 << 20;
  let crc = 0;
  for (let pos = 0; pos < data.length; pos += slice) {
    if (pos > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    crc = crc32(data.subarray(pos, pos + slice), crc);
  }
  return crc;
}

const newFileName = (meta: SnapshotMeta): string =>
  `${String(meta.index).padStart(16, '0')}-${randomBytes(4).toString('hex')}.snap`;
