// Recovery from a corrupt (or missing) current snapshot file. The store keeps the snapshot before
// the current one, and the WAL keeps every entry after that older one (snapshot-store.ts,
// storage.ts), so the same state can be rebuilt without the bad file: the older snapshot plus the
// log. Only then does the node start; otherwise it refuses, naming the bad file. Never across an
// installed snapshot: the log before an install may conflict with the leader's (replay.ts).

import * as path from 'node:path';
import { StorageCorruptionError } from './errors.js';
import type { DurableIo, StorageLogger } from './io.js';
import type { ReplayResult } from './replay.js';
import type { SnapshotRef } from './schemas.js';
import { SnapshotStore } from './snapshot-store.js';
import { Wal, type WalOptions } from './wal.js';

/** Suffix of a snapshot file moved aside for inspection (never read, never deleted). */
export const CORRUPT_SNAPSHOT_SUFFIX = '.corrupt';

export async function openWithoutSnapshot(
  walDir: string,
  snapDir: string,
  walOpts: WalOptions,
  io: DurableIo,
  logger: StorageLogger,
  bad: SnapshotRef,
  err: StorageCorruptionError,
): Promise<{ wal: Wal; state: ReplayResult; snaps: SnapshotStore }> {
  const refuse = (why: string) =>
    new StorageCorruptionError(
      err.file,
      err.offset,
      `${err.detail}; no older snapshot can stand in for it (${why})`,
    );
  const reason = (e: unknown) => (e instanceof StorageCorruptionError ? e.detail : String(e));
  const opened = await Wal.open(walDir, { ...walOpts, excludeSnapshots: new Set([bad.meta.id]) }).catch(
    (e: unknown) => {
      throw refuse(reason(e));
    },
  );
  const { wal, state } = opened;
  const fallback = state.snapshot;
  if (!fallback) {
    await wal.close();
    throw refuse('the WAL names no older snapshot');
  }
  const { fs } = io;
  const badFile = path.join(snapDir, bad.file);
  const aside = `${badFile}${CORRUPT_SNAPSHOT_SUFFIX}`;
  const hadFile = fs.existsSync(badFile);
  if (hadFile) fs.renameSync(badFile, aside);
  let snaps: SnapshotStore;
  try {
    snaps = await SnapshotStore.open(snapDir, fallback, io, logger, state.previousSnapshot ?? null);
    // Make the WAL say so: later replays and segment headers start from the older snapshot.
    await wal.append({ type: 'snapshot', snapshot: fallback }, false);
  } catch (e) {
    if (hadFile) fs.renameSync(aside, badFile);
    await wal.close();
    throw refuse(reason(e));
  }
  logger.warn(
    {
      file: err.file,
      offset: err.offset,
      movedTo: hadFile ? aside : null,
      snapshotIndex: bad.meta.index,
      fallbackIndex: fallback.meta.index,
    },
    `snapshot ${err.file} is unusable (${err.detail}); recovered from the older snapshot at index ` +
      `${fallback.meta.index} and the WAL instead${hadFile ? `; the bad file is kept as ${aside}` : ''}`,
  );
  return { wal, state, snaps };
}
