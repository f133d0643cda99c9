// The node's durable storage: RaftStorage over a segmented WAL (wal/) and snapshot files (snap/).
//
// Layout of a data directory:
//   LOCK                       owner pid (lock.ts)
//   wal/<seq>.wal              segments (wal.ts, wal-record.ts)
//   snap/<index>-<rand>.snap   the current snapshot and the one before it, the fallback
//                              (snapshot-file.ts, snapshot-store.ts, snapshot-fallback.ts)
//   snap/staging.tmp           an incoming snapshot being received
//   snap/*.snap.corrupt        a snapshot that failed its checksum, kept for inspection
//
// What is durable when:
// - `save` resolves once its one WAL record is fsynced (one fsync per Ready: group commit). A
//   Ready that installs a snapshot first makes the snapshot file durable under its final name,
//   then writes the record that refers to it.
// - `saveSnapshot` resolves once the snapshot file and then the WAL record naming it are durable;
//   only then are the snapshot file before the fallback and the segments the fallback covers
//   deleted. So the fallback plus the WAL rebuild the state should the current file go bad.
// - A failed write or fsync poisons the storage: after fsync fails the kernel may have dropped
//   the dirty pages, so nothing written since the last good fsync can be trusted. Every later
//   call is refused, `onFailure` stops the node (fail-stop.ts), and restarting replays whatever
//   consistent prefix actually reached the disk (the open first fsyncs every file and directory
//   it recovers from: that run may have left some in the page cache only). So does a current
//   snapshot file found damaged when a read from its start checks it (snapshot-store.ts `read`):
//   it is never served.

import * as path from 'node:path';
import type { RaftState } from '../raft/raft.js';
import type { DurableReady, RaftStorage } from '../raft/raft-node.js';
import type { SnapshotMeta } from '../raft/types.js';
import { CORRUPTION_REMEDY, errnoCode, StorageCorruptionError, StorageError } from './errors.js';
import { nodeFs } from './fs.js';
import { DurableIo, type IoOptions, removeTempFiles, type StorageLogger, silentLogger } from './io.js';
import { acquireLock, type DirLock } from './lock.js';
import { tightenDataDir } from './permissions.js';
import type { SnapshotRef } from './schemas.js';
import { openWithoutSnapshot } from './snapshot-fallback.js';
import { isSnapshotFile, SnapshotStore } from './snapshot-store.js';
import { listSegments, Wal } from './wal.js';

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

export interface StorageOptions extends IoOptions {
  /** A segment is rotated once it grows past this (default 64 MiB). */
  segmentBytes?: number;
  logger?: StorageLogger;
  /**
   * Called once, synchronously, when a write or fsync fails and the storage poisons itself, before
   * the failing call rejects. The node server stops the process here (fail-stop).
   */
  onFailure?(err: StorageError): void;
}

export interface StorageStats {
  segments: number;
  activeSegmentBytes: number;
  snapshot: SnapshotMeta | null;
}

/**
 * Open (creating if new) the data directory `dir`, lock it, and recover the state to start the
 * Raft core with. Throws StorageError: STORAGE_LOCKED, or STORAGE_CORRUPTION naming the file.
 */
export async function openStorage(
  dir: string,
  opts: StorageOptions = {},
): Promise<{ storage: DiskStorage; state: RaftState }> {
  const logger = opts.logger ?? silentLogger;
  const io = new DurableIo(opts);
  const { fs } = io;
  const { walDir, snapDir } = await makeDirs(io, dir);
  const lock = acquireLock(dir, logger, fs);
  // Every key is in here: only the node's user may read it (permissions.ts).
  if (fs === nodeFs) tightenDataDir(dir, logger);
  try {
    for (const d of [walDir, snapDir]) {
      const removed = removeTempFiles(fs, d);
      if (removed.length > 0)
        logger.info({ dir: d, files: removed }, 'removed temp files of interrupted writes');
    }
    await syncLeftovers(io, dir, [walDir, snapDir]);
    if (listSegments(fs, walDir).length === 0 && fs.readdirSync(snapDir).some(isSnapshotFile)) {
      throw new StorageError(
        'STORAGE_CORRUPTION',
        `${walDir} holds no WAL segment but ${snapDir} holds snapshots: the log of ${dir} was lost; ` +
          CORRUPTION_REMEDY,
      );
    }
    const walOpts = { segmentBytes: opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES, io, logger };
    let { wal, state } = await Wal.open(walDir, walOpts);
    let snaps: SnapshotStore;
    try {
      snaps = await SnapshotStore.open(snapDir, state.snapshot, io, logger, state.previousSnapshot ?? null);
    } catch (err) {
      await wal.close();
      if (!(err instanceof StorageCorruptionError) || !state.snapshot) throw err;
      ({ wal, state, snaps } = await openWithoutSnapshot(
        walDir,
        snapDir,
        walOpts,
        io,
        logger,
        state.snapshot,
        err,
      ));
    }
    const { hardState, entries } = state;
    const snapshot = state.snapshot?.meta ?? null;
    const lastIndex = entries.at(-1)?.index ?? snapshot?.index ?? 0;
    if (hardState.commit > lastIndex) {
      throw new StorageError(
        'STORAGE_CORRUPTION',
        `${walDir} records commit index ${hardState.commit} but its log ends at ${lastIndex}: committed entries were lost; ` +
          CORRUPTION_REMEDY,
      );
    }
    logger.info(
      {
        dir,
        term: hardState.term,
        vote: hardState.vote,
        commit: hardState.commit,
        snapshotIndex: snapshot?.index ?? 0,
        lastIndex,
        segments: wal.stats().segments,
      },
      'storage recovered',
    );
    return {
      storage: new DiskStorage(dir, wal, snaps, lock, logger, opts.onFailure),
      state: { hardState, snapshot, entries },
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** The WAL and snapshot directories of `dir`, created (and made durable) on first start. */
async function makeDirs(io: DurableIo, dir: string): Promise<{ walDir: string; snapDir: string }> {
  const { fs } = io;
  const walDir = path.join(dir, 'wal');
  const snapDir = path.join(dir, 'snap');
  const fresh = !fs.existsSync(walDir);
  fs.mkdirSync(walDir, { recursive: true });
  fs.mkdirSync(snapDir, { recursive: true });
  if (fresh) {
    await io.fsyncDir(dir);
    await io.fsyncDir(path.dirname(path.resolve(dir)));
  }
  return { walDir, snapDir };
}

/**
 * fsync every file of `subdirs`, then the directories. A previous run that stopped after a failed
 * fsync (fail-stop) may have left data and directory entries (a new segment, a deleted one) in the
 * page cache only, where this run would see them and build on them: acknowledging entries in a
 * segment whose name a power loss then takes away. So they become durable before anything is
 * trusted (PostgreSQL fsyncs its data directory at start for the same reason); a disk that still
 * fails makes the open fail.
 */
async function syncLeftovers(io: DurableIo, dir: string, subdirs: readonly string[]): Promise<void> {
  for (const d of subdirs) {
    for (const name of io.fs.readdirSync(d)) {
      const file = path.join(d, name);
      const fh = await io.fs.open(file, 'r');
      try {
        await io.fsync(fh, file, isSnapshotFile(name) ? 'snapshot' : 'wal');
      } finally {
        await fh.close();
      }
    }
    await io.fsyncDir(d);
  }
  await io.fsyncDir(dir);
}

export class DiskStorage implements RaftStorage {
  /** WAL operations run one at a time, in call order (saveSnapshot's record may overlap a save). */
  private tail: Promise<unknown> = Promise.resolve();
  private readonly inflight = new Set<Promise<unknown>>();
  private failed: StorageError | null = null;
  private closing: Promise<void> | null = null;

  constructor(
    readonly dir: string,
    private readonly wal: Wal,
    private readonly snaps: SnapshotStore,
    private readonly lock: DirLock,
    private readonly logger: StorageLogger,
    private readonly onFailure?: (err: StorageError) => void,
  ) {}

  save(rd: DurableReady): Promise<void> {
    return this.serial(async () => {
      this.assertWritable();
      try {
        await this.persist(rd);
      } catch (err) {
        throw this.fail(err);
      }
    });
  }

  readSnapshotChunk(meta: SnapshotMeta, offset: number, length: number): Uint8Array | null {
    if (this.closing) return null;
    try {
      return this.snaps.read(meta, offset, length);
    } catch (err) {
      // The current snapshot file no longer matches its checksums: this disk returns bad data.
      // Serve nothing and stop as after a failed write; the restart falls back to the older
      // snapshot and the WAL (snapshot-fallback.ts), or refuses naming the file.
      this.fail(err);
      return null;
    }
  }

  /** As readSnapshotChunk for the whole snapshot, in slices (snapshot-store.ts). */
  async readSnapshot(meta: SnapshotMeta): Promise<Uint8Array | null> {
    if (this.closing) return null;
    try {
      return await this.snaps.readWhole(meta, () => this.closing !== null);
    } catch (err) {
      this.fail(err); // as in readSnapshotChunk
      return null;
    }
  }

  saveSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void> {
    try {
      this.assertWritable();
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.isNewer(meta)) return Promise.resolve();
    // The file is written outside the queue (a concurrent save need not wait for it); only the
    // record that makes it current is queued, and re-checks that nothing newer won meanwhile.
    // A failed snapshot write poisons the storage too: after a failed fsync nothing on that disk
    // is trusted until a restart re-reads it.
    const task = this.snaps.writeOwn(meta, data).then(
      (ref) => this.serial(() => this.commitSnapshot(ref)),
      (err: unknown) => {
        throw this.fail(err);
      },
    );
    this.inflight.add(task);
    const forget = () => this.inflight.delete(task);
    task.then(forget, forget);
    return task;
  }

  stats(): StorageStats {
    const { segments, activeBytes } = this.wal.stats();
    return { segments, activeSegmentBytes: activeBytes, snapshot: this.snaps.currentRef?.meta ?? null };
  }

  /** Wait for pending work, then release the files and the lock. Later calls are refused. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.inflight]);
      await this.tail;
      await this.wal.close();
      await this.snaps.close();
      this.lock.release();
    })();
    return this.closing;
  }

  private async persist(rd: DurableReady): Promise<void> {
    for (const chunk of rd.snapshotChunks) await this.snaps.stage(chunk);
    let install: SnapshotRef | null = null;
    if (rd.snapshot) {
      install = await this.snaps.finishStaging(rd.snapshot);
      // Start a fresh segment: once the install record is durable every older one is garbage.
      await this.wal.rotate();
    }
    if (install || rd.entries.length > 0 || rd.hardState) {
      await this.wal.append({ type: 'batch', install, entries: rd.entries, hardState: rd.hardState });
    }
    if (install) {
      this.snaps.setCurrent(install, false);
      await this.wal.dropAllButActive();
    }
  }

  private async commitSnapshot(ref: SnapshotRef): Promise<void> {
    if (this.closing || this.failed || !this.isNewer(ref.meta)) {
      this.snaps.discard(ref);
      this.assertWritable();
      return;
    }
    try {
      await this.wal.append({ type: 'snapshot', snapshot: ref });
    } catch (err) {
      throw this.fail(err);
    }
    // Keep the entries after the snapshot this one replaces: with its file (the fallback) they
    // rebuild the state should the new file ever fail its checksum.
    const fallback = this.snaps.currentRef ?? ref;
    this.snaps.setCurrent(ref);
    await this.wal.compact(fallback.meta.index);
  }

  private isNewer(meta: SnapshotMeta): boolean {
    return meta.index > (this.wal.durableSnapshot?.meta.index ?? 0);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private assertWritable(): void {
    if (this.failed) throw this.failed;
    if (this.closing) throw new StorageError('STORAGE_CLOSED', `storage in ${this.dir} is closed`);
  }

  /** Poison the storage (see the file comment); returns the original error for the caller. */
  private fail(err: unknown): unknown {
    if (this.failed) return err;
    const reason = err instanceof Error ? err.message : String(err);
    const failed = new StorageError(
      'STORAGE_FAILED',
      `storage in ${this.dir} failed (${reason}); nothing written since the last good fsync can be ` +
        'trusted. Fix the disk (free space for ENOSPC, check the device for EIO), then restart the ' +
        'node: it recovers from what reached the disk',
      { cause: err },
    );
    this.failed = failed;
    this.logger.error(
      { dir: this.dir, code: failed.code, errno: errnoCode(err), err },
      'storage write failed; refusing further writes',
    );
    this.onFailure?.(failed);
    return err;
  }
}
