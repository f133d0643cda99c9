// The binary snapshot format of the key-value store, version 1. All integers little-endian.
//
//   header   magic "CXKV" | u16 format version | u16 flags | u64 applied index
//            | u64 store revision | u64 key count                                     (32 bytes)
//   records  key count times, in key order (UTF-8 byte order, strictly increasing):
//            u32 key bytes | key (UTF-8) | u32 value bytes | value
//            | u64 createRevision | u64 modRevision | u64 version
//   auth     only with flag bit 0 (FLAG_AUTH): u32 bytes | the users and roles of client
//            authorization (node/auth/section.ts). Written only when there are any, so a
//            cluster that never used authorization writes the same bytes as before it existed,
//            and snapshots without the section (every older one) decode as before.
//   trailer  u32 CRC-32 of every byte before it
//
// The encoder is a generator of chunks, so a snapshot can be streamed without ever being one
// buffer; the whole-buffer snapshot is the same generator asked for a single chunk of the exact
// size, so both are byte-identical by construction. The decoder is push-based (feed chunks, then
// `finish`) and never hands out anything before the checksum matched. u64 fields hold numbers up
// to 2^53 - 1 (JavaScript's safe integers; a log index will not exceed that).

import { crc32 } from 'node:zlib';
import { utf8Bytes } from './keys.js';
import type { KeyValue } from './types.js';

export const SNAPSHOT_FORMAT_VERSION = 1;
export const MAGIC = [0x43, 0x58, 0x4b, 0x56]; // "CXKV"
export const HEADER_BYTES = 32;
export const RECORD_FIXED_BYTES = 4 + 4 + 24;
export const TRAILER_BYTES = 4;
const TWO_32 = 2 ** 32;
export const DEFAULT_CHUNK_BYTES = 64 * 1024;
/** Header flag: an auth section follows the records. */
export const FLAG_AUTH = 1;
/** Largest auth section a decoder accepts. */
export const MAX_AUTH_SECTION_BYTES = 16 * 1024 * 1024;

export interface SnapshotHeader {
  applied: number;
  revision: number;
  keyCount: number;
  /** The auth section's bytes (absent: no section, flag clear). */
  auth?: Uint8Array;
}

/** Bytes of the optional sections after the records. */
export const sectionBytes = (header: SnapshotHeader): number =>
  header.auth ? 4 + header.auth.byteLength : 0;

/** Exact encoded size of a snapshot of `kvs` (with `header`'s sections). */
export function snapshotSize(kvs: Iterable<KeyValue>, header?: SnapshotHeader): number {
  let n = HEADER_BYTES + TRAILER_BYTES + (header ? sectionBytes(header) : 0);
  for (const kv of kvs) n += RECORD_FIXED_BYTES + utf8Bytes(kv.key) + kv.value.byteLength;
  return n;
}

/** Fills fixed-size chunks; `ready` collects full ones. The CRC covers every byte emitted so far. */
class ChunkWriter {
  readonly ready: Uint8Array[] = [];
  private buf: Buffer;
  private pos = 0;
  private crc = 0;

  constructor(private readonly chunkBytes: number) {
    this.buf = Buffer.allocUnsafe(chunkBytes);
  }

  u32(n: number): void {
    this.room(4);
    this.buf.writeUInt32LE(n, this.pos);
    this.pos += 4;
  }

  u64(n: number): void {
    this.room(8);
    if (n < TWO_32) {
      // The common case, without a floating-point remainder (revisions come from Float64 columns).
      this.buf.writeUInt32LE(n, this.pos);
      this.buf.writeUInt32LE(0, this.pos + 4);
    } else {
      this.buf.writeUInt32LE(n % TWO_32, this.pos);
      this.buf.writeUInt32LE(Math.floor(n / TWO_32), this.pos + 4);
    }
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    if (b.length <= this.chunkBytes - this.pos) {
      this.buf.set(b, this.pos); // the common case: no view, no loop
      this.pos += b.length;
      return;
    }
    let off = 0;
    while (off < b.length) {
      if (this.pos === this.chunkBytes) this.flush();
      const n = Math.min(b.length - off, this.chunkBytes - this.pos);
      this.buf.set(b.subarray(off, off + n), this.pos);
      this.pos += n;
      off += n;
    }
  }

  /** A key, written in place when it fits (the common case) to avoid an intermediate buffer. */
  utf8(s: string, byteLength: number): void {
    if (byteLength <= this.chunkBytes - this.pos) this.pos += this.buf.write(s, this.pos, 'utf8');
    else this.bytes(Buffer.from(s, 'utf8'));
  }

  /** Append the CRC trailer and emit the last chunk. */
  finish(): void {
    this.room(TRAILER_BYTES);
    this.crc = crc32(this.buf.subarray(0, this.pos), this.crc);
    this.buf.writeUInt32LE(this.crc, this.pos);
    this.pos += TRAILER_BYTES;
    this.ready.push(this.buf.subarray(0, this.pos));
    this.pos = 0;
  }

  private room(n: number): void {
    if (this.pos + n > this.chunkBytes) this.flush();
  }

  private flush(): void {
    if (this.pos === 0) return;
    const chunk = this.buf.subarray(0, this.pos);
    this.crc = crc32(chunk, this.crc);
    this.ready.push(chunk);
    this.buf = Buffer.allocUnsafe(this.chunkBytes);
    this.pos = 0;
  }
}

/**
 * The snapshot's bytes, chunk by chunk (each ≤ chunkBytes, which must be ≥ 32). `kvs` must be in
 * key order and hold exactly `header.keyCount` entries; KeyValues are immutable, so an array of
 * them taken at one moment is a consistent snapshot however long the caller takes to consume.
 */
export function* encodeSnapshot(
  header: SnapshotHeader,
  kvs: Iterable<KeyValue>,
  chunkBytes = DEFAULT_CHUNK_BYTES,
): Generator<Uint8Array> {
  if (chunkBytes < HEADER_BYTES) throw new RangeError(`chunkBytes must be ≥ ${HEADER_BYTES}`);
  const w = new ChunkWriter(chunkBytes);
  w.bytes(Uint8Array.from(MAGIC));
  // u16 version + u16 flags, as one little-endian u32
  w.u32(SNAPSHOT_FORMAT_VERSION + (header.auth ? FLAG_AUTH * 0x10000 : 0));
  w.u64(header.applied);
  w.u64(header.revision);
  w.u64(header.keyCount);
  let written = 0;
  for (const kv of kvs) {
    const keyBytes = utf8Bytes(kv.key);
    w.u32(keyBytes);
    w.utf8(kv.key, keyBytes);
    w.u32(kv.value.byteLength);
    w.bytes(kv.value);
    w.u64(kv.createRevision);
    w.u64(kv.modRevision);
    w.u64(kv.version);
    written++;
    if (w.ready.length > 0) yield* w.ready.splice(0);
  }
  if (written !== header.keyCount)
    throw new Error(`snapshot header says ${header.keyCount} keys, wrote ${written}`);
  if (header.auth) {
    w.u32(header.auth.byteLength);
    w.bytes(header.auth);
  }
  w.finish();
  yield* w.ready.splice(0);
}

/**
 * The whole snapshot as one buffer of exactly the right size. `kvs` is iterated twice (sizing,
 * then writing), so it must be re-iterable and must not change in between.
 */
export function encodeSnapshotBuffer(header: SnapshotHeader, kvs: Iterable<KeyValue>): Uint8Array {
  const size = snapshotSize(kvs, header);
  const chunks = [...encodeSnapshot(header, kvs, size)];
  if (chunks.length !== 1 || chunks[0]!.byteLength !== size) throw new Error('snapshot size miscounted');
  return chunks[0]!;
}
