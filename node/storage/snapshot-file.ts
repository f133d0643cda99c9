// Snapshot file format: the state machine's bytes first, then a footer describing them:
//
//   [data: meta.sizeBytes][meta JSON][u32 LE metaLength][u32 LE crc32(data)]
//   [u32 LE crc32(meta JSON ‖ metaLength ‖ dataCrc)][magic "CFXSNAP1"]
//
// A footer rather than a header because an incoming snapshot is staged chunk by chunk straight
// into the file at its own offsets; the footer is appended once the last chunk arrived, without
// copying the data. Chunk offsets are file offsets when the snapshot is served, too.

import { crc32 } from 'node:zlib';
import type { SnapshotMeta } from '../raft/types.js';
import { StorageCorruptionError } from './errors.js';
import type { StorageFs } from './fs.js';
import { snapshotMetaSchema } from './schemas.js';

const MAGIC = Buffer.from('CFXSNAP1', 'ascii');
/** metaLength, dataCrc, footerCrc, magic. */
const FIXED_BYTES = 12 + MAGIC.length;
const VERIFY_CHUNK_BYTES = 1 << 20;

export function encodeFooter(meta: SnapshotMeta, dataCrc: number): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const footer = Buffer.alloc(json.length + FIXED_BYTES);
  json.copy(footer, 0);
  footer.writeUInt32LE(json.length, json.length);
  footer.writeUInt32LE(dataCrc, json.length + 4);
  footer.writeUInt32LE(crc32(footer.subarray(0, json.length + 8)), json.length + 8);
  MAGIC.copy(footer, json.length + 12);
  return footer;
}

/** A snapshot file's footer, checked: its meta, where the data ends, and the data's checksum. */
export interface SnapshotFooter {
  meta: SnapshotMeta;
  dataBytes: number;
  dataCrc: number;
}

/**
 * Check the footer and the data checksum of an open file (`file` names it in errors), reading
 * the data in 1 MiB pieces with a turn of the event loop between them: at 1M keys the data is
 * 165 MiB, and checking it in one piece would stall the node for a quarter of a second
 * (docs/ARCHITECTURE.md §5). Returns the meta. Throws StorageCorruptionError.
 */
export async function verifySnapshotFd(fs: StorageFs, fd: number, file: string): Promise<SnapshotMeta> {
  const footer = readFooter(fs, fd, file);
  const buf = Buffer.allocUnsafe(Math.min(VERIFY_CHUNK_BYTES, footer.dataBytes));
  let crc = 0;
  for (let pos = 0; pos < footer.dataBytes; pos += buf.length) {
    if (pos > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    crc = crcOfPiece(fs, fd, buf, pos, Math.min(buf.length, footer.dataBytes - pos), crc);
  }
  checkDataCrc(footer, crc, file);
  return footer.meta;
}

/** crc32 of the first `bytes` bytes of `fd`, in one piece (read 1 MiB at a time into one buffer). */
export function crcOfData(fs: StorageFs, fd: number, bytes: number): number {
  const buf = Buffer.allocUnsafe(Math.min(VERIFY_CHUNK_BYTES, bytes));
  let crc = 0;
  for (let pos = 0; pos < bytes; pos += buf.length) {
    crc = crcOfPiece(fs, fd, buf, pos, Math.min(buf.length, bytes - pos), crc);
  }
  return crc;
}

/**
 * `crc` extended by `length` bytes at `position`, read into `buf` (one buffer reused: a fresh one
 * per MiB would leave 165 MiB of garbage behind at 1M keys and bring on a major GC).
 */
function crcOfPiece(
  fs: StorageFs,
  fd: number,
  buf: Buffer,
  position: number,
  length: number,
  crc: number,
): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return crc32(buf.subarray(0, done), crc);
}

/** Throws StorageCorruptionError unless `crc` (over all of the data) is the footer's. */
export function checkDataCrc(footer: SnapshotFooter, crc: number, file: string): void {
  if (crc !== footer.dataCrc) {
    throw new StorageCorruptionError(
      file,
      0,
      `snapshot data checksum mismatch over bytes [0, ${footer.dataBytes})`,
    );
  }
}

/** Read and check the footer (not the data). Throws StorageCorruptionError. */
export function readFooter(fs: StorageFs, fd: number, file: string): SnapshotFooter {
  const size = fs.fstatSync(fd).size;
  const corrupt = (offset: number, detail: string) => new StorageCorruptionError(file, offset, detail);
  if (size < FIXED_BYTES) throw corrupt(0, `${size} bytes is too short for a snapshot file`);
  const fixed = readAt(fs, fd, size - FIXED_BYTES, FIXED_BYTES);
  if (!fixed.subarray(12).equals(MAGIC)) throw corrupt(size - MAGIC.length, 'snapshot footer magic missing');
  const metaLength = fixed.readUInt32LE(0);
  const metaStart = size - FIXED_BYTES - metaLength;
  if (metaStart < 0) throw corrupt(size - FIXED_BYTES, `meta length ${metaLength} exceeds the file`);
  const json = readAt(fs, fd, metaStart, metaLength);
  if (crc32(fixed.subarray(0, 8), crc32(json)) !== fixed.readUInt32LE(8)) {
    throw corrupt(metaStart, 'snapshot footer checksum mismatch');
  }
  let meta: SnapshotMeta;
  try {
    meta = snapshotMetaSchema.parse(JSON.parse(json.toString('utf8')));
  } catch (err) {
    throw corrupt(metaStart, `snapshot meta does not parse: ${err instanceof Error ? err.message : err}`);
  }
  if (meta.sizeBytes !== metaStart) {
    throw corrupt(metaStart, `meta says ${meta.sizeBytes} data bytes, the file holds ${metaStart}`);
  }
  return { meta, dataBytes: metaStart, dataCrc: fixed.readUInt32LE(4) };
}

/** Exactly `length` bytes at `position` (fewer only at the end of the file). */
export function readAt(fs: StorageFs, fd: number, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}
