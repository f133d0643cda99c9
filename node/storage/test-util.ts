// Helpers for the storage tests: temp data directories, entries, snapshot metas, a log recorder.

import { readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DurableReady } from '../raft/raft-node.js';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';
import type { StorageLogger } from './io.js';
import { openStorage, type StorageOptions } from './storage.js';
import { scanFrames } from './wal-record.js';

export async function tempDir(): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'conflux-storage-'));
  return { dir, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
}

/** The WAL segment `seq` of the data directory `dir`. */
export const walFile = (dir: string, seq: number) =>
  path.join(dir, 'wal', `${String(seq).padStart(16, '0')}.wal`);

/** Where each record of a WAL segment starts. */
export const frameOffsets = (file: string) => scanFrames(readFileSync(file)).frames.map((f) => f.offset);

export const normal = (index: number, term: number, text = `v${index}@${term}`): Entry => ({
  index,
  term,
  type: 'normal',
  data: new TextEncoder().encode(text),
});

export const range = (from: number, to: number, term: number): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => normal(from + i, term));

export const hs = (term: number, commit: number, vote: string | null = 'n1'): HardState => ({
  term,
  vote,
  commit,
});

export const ready = (r: Partial<DurableReady>): DurableReady => ({
  hardState: null,
  entries: [],
  snapshot: null,
  snapshotChunks: [],
  ...r,
});

export const snapMeta = (
  index: number,
  term: number,
  sizeBytes: number,
  id = `s-${index}`,
): SnapshotMeta => ({
  index,
  term,
  membership: { configs: [['n1', 'n2', 'n3']], learners: [], retired: [], nodes: {}, cluster: null },
  sizeBytes,
  id,
});

/** Comparable view of entries (Buffer vs Uint8Array differences do not matter). */
export const show = (entries: readonly Entry[]): string[] =>
  entries.map(
    (e) => `${e.index}/${e.term}/${e.type === 'normal' ? new TextDecoder().decode(e.data) : e.type}`,
  );

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  obj: object;
  msg: string;
}

export function recordingLogger(): StorageLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (obj: object, msg = ''): void => {
      lines.push({ level, obj, msg });
    };
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

/** Opens the storage in `dir` and closes it again: the state it recovered. */
export async function reopen(dir: string, opts: StorageOptions = {}) {
  const r = await openStorage(dir, opts);
  await r.storage.close();
  return r.state;
}

/** The error opening the storage in `dir` fails with (an open that succeeds is an error). */
export const refusal = (dir: string, opts: StorageOptions = {}) =>
  openStorage(dir, opts).then(
    () => {
      throw new Error('the open succeeded');
    },
    (err: unknown) => err,
  );
