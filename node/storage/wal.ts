// The segmented write-ahead log: `wal/<16-digit sequence>.wal`, each segment a header record
// followed by batch and snapshot records (see wal-record.ts for the framing).
//
// What is durable when:
// - A segment file is created whole (temp file, fsync, rename, fsync dir), so its header is never
//   torn. Its header records the durable hard state and snapshot at its creation, which is what
//   lets every older segment be deleted without losing them.
// - `append` resolves after its record is written and fdatasync'ed: one fsync per record (or, with
//   fsync on, one write to a segment opened with O_DSYNC, which returns once durable).
// - A segment is deleted only after a durable record made it useless (a snapshot covering all its
//   entries, or an installed snapshot after it), and only as a prefix: the segments left always
//   replay to the same state.
// - On open, a bad record at the very end of the last segment with nothing valid after it, that
//   is short or holds an unwritten (zero) sector, is a write a crash interrupted (it was never
//   acknowledged): it is cut off with a warning. Any other bad record is corruption and the open
//   fails: a node that cannot prove it kept every vote and acknowledged entry must not serve.
//   (A last segment cut exactly at a record boundary cannot be told from a shorter log; the
//   file system's own guarantees cover that case, as for every WAL.)

import * as path from 'node:path';
import type { HardState } from '../raft/types.js';
import { StorageCorruptionError } from './errors.js';
import type { StorageFileHandle, StorageFs } from './fs.js';
import type { DurableIo, StorageLogger } from './io.js';
import { type ReplayResult, ReplayView } from './replay.js';
import type { SnapshotRef } from './schemas.js';
import {
  corruptTailReason,
  decodeFrame,
  encodeRecord,
  findValidFrameAfter,
  scanFrames,
  type WalRecord,
} from './wal-record.js';

interface Segment {
  seq: number;
  file: string;
  /** Highest entry index written to this segment (0 if none): it may go once a snapshot covers it. */
  maxIndex: number;
}

export interface WalOptions {
  segmentBytes: number;
  io: DurableIo;
  logger: StorageLogger;
  /** Replay as if these snapshots had never been taken (their files are corrupt): see replay.ts. */
  excludeSnapshots?: ReadonlySet<string>;
}

const SEGMENT_NAME = /^([0-9]{16})\.wal$/;
const segmentName = (seq: number): string => `${String(seq).padStart(16, '0')}.wal`;

/** Sequence numbers of the segments in `walDir`, ascending. */
export function listSegments(fs: StorageFs, walDir: string): number[] {
  return fs
    .readdirSync(walDir)
    .map((name) => SEGMENT_NAME.exec(name)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

export class Wal {
  /** The durable hard state and snapshot: what the header of the next segment records. */
  private hardState: HardState;
  private snapshot: SnapshotRef | null;

  private constructor(
    private readonly dir: string,
    private readonly opts: WalOptions,
    private readonly segments: Segment[],
    private fh: StorageFileHandle,
    /** Whether `fh` was opened with O_DSYNC (DurableIo.openForAppends). */
    private dsync: boolean,
    private size: number,
    state: ReplayResult,
  ) {
    this.hardState = state.hardState;
    this.snapshot = state.snapshot;
  }

  /** Replay `dir` (creating the first segment of a new log) and open the last segment for appends. */
  static async open(dir: string, opts: WalOptions): Promise<{ wal: Wal; state: ReplayResult }> {
    const { fs } = opts.io;
    const seqs = listSegments(fs, dir);
    if (seqs.length === 0) {
      const state: ReplayResult = {
        hardState: { term: 0, vote: null, commit: 0 },
        snapshot: null,
        entries: [],
      };
      const file = path.join(dir, segmentName(1));
      const header = encodeRecord({ type: 'header', seq: 1, ...state });
      await opts.io.createFile(file, [header], 'wal');
      const { fh, dsync } = await opts.io.openForAppends(file);
      const segments = [{ seq: 1, file, maxIndex: 0 }];
      return { wal: new Wal(dir, opts, segments, fh, dsync, header.length, state), state };
    }
    const view = new ReplayView(opts.excludeSnapshots);
    const segments: Segment[] = [];
    let end = 0;
    for (const [i, seq] of seqs.entries()) {
      const file = path.join(dir, segmentName(seq));
      const prev = seqs[i - 1];
      if (prev !== undefined && seq !== prev + 1) {
        throw new StorageCorruptionError(
          file,
          0,
          `segment ${prev + 1} between ${prev} and ${seq} is missing`,
        );
      }
      const replayed = replaySegment(fs, file, seq, i === seqs.length - 1, view);
      segments.push({ seq, file, maxIndex: replayed.maxIndex });
      end = replayed.end;
      if (replayed.torn) {
        opts.logger.warn(
          { file, offset: end, droppedBytes: replayed.torn.droppedBytes, reason: replayed.torn.reason },
          `WAL ends in a torn record: truncating ${file} at byte offset ${end}, dropping ` +
            `${replayed.torn.droppedBytes} bytes of a write that never completed`,
        );
      }
    }
    const last = segments.at(-1) as Segment;
    const { fh, dsync } = await opts.io.openForAppends(last.file);
    if ((await fh.stat()).size !== end) {
      await fh.truncate(end);
      await opts.io.fsync(fh, last.file, 'wal');
    }
    const state = view.result();
    return { wal: new Wal(dir, opts, segments, fh, dsync, end, state), state };
  }

  get durableSnapshot(): SnapshotRef | null {
    return this.snapshot;
  }

  stats(): { segments: number; activeBytes: number } {
    return { segments: this.segments.length, activeBytes: this.size };
  }

  /**
   * Write one record and fsync it (rotating first when the active segment is full, unless
   * `mayRotate` is false: a new header would record a state this record has not made durable yet).
   */
  async append(record: Exclude<WalRecord, { type: 'header' }>, mayRotate = true): Promise<void> {
    if (mayRotate && this.size >= this.opts.segmentBytes) await this.rotate();
    const active = this.segments.at(-1) as Segment;
    const frame = encodeRecord(record);
    const writeStartMs = performance.now();
    await this.opts.io.write(this.fh, active.file, frame, this.size);
    this.size += frame.length;
    if (record.type === 'batch') {
      active.maxIndex = Math.max(active.maxIndex, record.entries.at(-1)?.index ?? 0);
    }
    await this.opts.io.syncWritten(this.fh, active.file, this.dsync, writeStartMs);
    // Durable from here: later segment headers may record it.
    if (record.type === 'snapshot') this.snapshot = record.snapshot;
    else {
      if (record.install) this.snapshot = record.install;
      if (record.hardState) this.hardState = record.hardState;
    }
  }

  /** Start a new segment whose header holds the current durable state. */
  async rotate(): Promise<void> {
    const seq = (this.segments.at(-1) as Segment).seq + 1;
    const file = path.join(this.dir, segmentName(seq));
    const header = encodeRecord({ type: 'header', seq, hardState: this.hardState, snapshot: this.snapshot });
    await this.opts.io.createFile(file, [header], 'wal');
    const { fh, dsync } = await this.opts.io.openForAppends(file);
    await this.fh.close();
    this.fh = fh;
    this.dsync = dsync;
    this.size = header.length;
    this.segments.push({ seq, file, maxIndex: 0 });
  }

  /** Delete the oldest segments whose entries are all ≤ `index` (never the active one). */
  compact(index: number): Promise<void> {
    return this.dropWhile((s) => s.maxIndex <= index);
  }

  /** After an installed snapshot is durable, nothing before the active segment is needed. */
  dropAllButActive(): Promise<void> {
    return this.dropWhile(() => true);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  private async dropWhile(droppable: (s: Segment) => boolean): Promise<void> {
    while (this.segments.length > 1 && droppable(this.segments[0] as Segment)) {
      const oldest = this.segments[0] as Segment;
      try {
        await this.opts.io.fs.rm(oldest.file);
      } catch (err) {
        // Harmless: the segment still replays to the same state. Keep the prefix invariant.
        this.opts.logger.warn({ file: oldest.file, err }, 'could not delete an obsolete WAL segment');
        return;
      }
      this.segments.shift();
      this.opts.logger.info({ file: oldest.file, maxIndex: oldest.maxIndex }, 'deleted obsolete WAL segment');
    }
  }
}

interface ReplayedSegment {
  maxIndex: number;
  /** Where the valid records end (the file is truncated here when it has a torn tail). */
  end: number;
  torn: { droppedBytes: number; reason: string } | null;
}

function replaySegment(
  fs: StorageFs,
  file: string,
  seq: number,
  isLast: boolean,
  view: ReplayView,
): ReplayedSegment {
  const buf = fs.readFileSync(file);
  const { frames, bad } = scanFrames(buf);
  let torn: ReplayedSegment['torn'] = null;
  if (bad) {
    const corrupt = (detail: string) => new StorageCorruptionError(file, bad.offset, detail);
    if (!isLast) throw corrupt(`${bad.reason} in a segment that is not the last one`);
    if (frames.length === 0) {
      throw corrupt(`unreadable segment header (${bad.reason}); headers are written atomically`);
    }
    const next = findValidFrameAfter(buf, bad.offset);
    if (next !== null) throw corrupt(`${bad.reason}, yet a valid record follows at byte offset ${next}`);
    const notTorn = corruptTailReason(buf, bad.offset);
    if (notTorn !== null) throw corrupt(`${bad.reason} in the last record: ${notTorn}`);
    torn = { droppedBytes: buf.length - bad.offset, reason: bad.reason };
  }
  if (frames.length === 0) throw new StorageCorruptionError(file, 0, 'empty segment without a header');
  let maxIndex = 0;
  for (const [k, frame] of frames.entries()) {
    const at = { file, offset: frame.offset };
    let record: WalRecord;
    try {
      record = decodeFrame(frame);
    } catch (err) {
      // The checksum matched, so these are the bytes that were written: a bug, not a torn write.
      const reason = err instanceof Error ? err.message : String(err);
      throw new StorageCorruptionError(file, frame.offset, `record does not decode: ${reason}`);
    }
    if (k === 0 && (record.type !== 'header' || record.seq !== seq)) {
      throw new StorageCorruptionError(file, 0, `expected the header of segment ${seq}`);
    }
    if (k > 0 && record.type === 'header') {
      throw new StorageCorruptionError(file, frame.offset, 'a segment header in the middle of a segment');
    }
    view.apply(record, at);
    if (record.type === 'batch') maxIndex = Math.max(maxIndex, record.entries.at(-1)?.index ?? 0);
  }
  return { maxIndex, end: bad ? bad.offset : buf.length, torn };
}
