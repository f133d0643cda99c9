// Push decoder of the snapshot format described in snapshot-format.ts. Feed it chunks of any size
// in order, then call `finish`. It checks magic and version first (it cannot parse anything else
// otherwise), then every record's shape and order, and the CRC at the end; any problem throws a
// SnapshotFormatError naming it. Nothing decoded is meant to be used unless `finish` returned.

import { crc32 } from 'node:zlib';
import { SnapshotFormatError } from './errors.js';
import { compareKeys } from './keys.js';
import {
  FLAG_AUTH,
  HEADER_BYTES,
  MAGIC,
  MAX_AUTH_SECTION_BYTES,
  RECORD_FIXED_BYTES,
  SNAPSHOT_FORMAT_VERSION,
  type SnapshotHeader,
  TRAILER_BYTES,
} from './snapshot-format.js';
import type { KeyValue } from './types.js';
import { ownValue, ownValueOf } from './value-slab.js';

export interface DecodedSnapshot {
  header: SnapshotHeader;
  /** In key order. */
  kvs: KeyValue[];
}

const TWO_32 = 2 ** 32;
// ignoreBOM keeps a leading U+FEFF: keys `\uFEFFa` and `a` are different keys and must stay so.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const bad = (message: string) => new SnapshotFormatError('malformed', message);

function u64(view: DataView, at: number, what: string): number {
  const lo = view.getUint32(at, true);
  const hi = view.getUint32(at + 4, true);
  if (hi > 0x1fffff) throw bad(`${what} exceeds 2^53`);
  return hi * TWO_32 + lo;
}

const EMPTY = new Uint8Array(0);
const viewOf = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/**
 * Received chunks not yet consumed; hands out contiguous byte ranges, copying only across chunks.
 * It also keeps the CRC-32 of the consumed bytes the checksum covers, computed a whole chunk at a
 * time (one call per chunk, not per record): the bytes of chunks[0] from `crcFrom` to `head` are
 * consumed and covered but not yet in `crcSoFar`.
 */
class ByteQueue {
  private chunks: Uint8Array[] = [];
  private head = 0; // offset into chunks[0]
  private crcFrom = 0;
  private crcSoFar = 0;
  /** chunks[0] as a Buffer, for reading records in place (made once per chunk). */
  private frontBuffer: Buffer | null = null;
  available = 0;

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.chunks.push(chunk);
    this.available += chunk.byteLength;
  }

  /** The first chunk as a Buffer and the offset of the first unconsumed byte in it. */
  front(): { buf: Buffer; at: number } {
    if (this.frontBuffer === null) {
      const c = this.chunks[0]!;
      this.frontBuffer = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    }
    return { buf: this.frontBuffer, at: this.head };
  }

  /** The first n bytes (n ≤ available), without consuming them. */
  peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.byteLength - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = new Uint8Array(n);
    let filled = 0;
    let off = this.head;
    for (const c of this.chunks) {
      const part = c.subarray(off, off + (n - filled));
      out.set(part, filled);
      filled += part.byteLength;
      off = 0;
      if (filled === n) break;
    }
    return out;
  }

  /** The first n bytes (n ≤ available), consumed. */
  take(n: number, covered = true): Uint8Array {
    const out = this.peek(n);
    this.skip(n, covered);
    return out;
  }

  /** Consume n bytes (n ≤ available); `covered` ones count towards the CRC. */
  skip(n: number, covered = true): void {
    if (!covered) this.flushCrc();
    this.available -= n;
    let left = n;
    while (left > 0) {
      const first = this.chunks[0]!;
      const room = first.byteLength - this.head;
      if (room > left) {
        this.head += left;
        break;
      }
      left -= room;
      if (covered) this.crcSoFar = crc32(first.subarray(this.crcFrom), this.crcSoFar);
      this.chunks.shift();
      this.head = 0;
      this.crcFrom = 0;
      this.frontBuffer = null;
    }
    if (!covered) this.crcFrom = this.head;
  }

  /** CRC-32 of every covered byte consumed so far. */
  crc(): number {
    this.flushCrc();
    return this.crcSoFar;
  }

  private flushCrc(): void {
    const first = this.chunks[0];
    if (first && this.head > this.crcFrom)
      this.crcSoFar = crc32(first.subarray(this.crcFrom, this.head), this.crcSoFar);
    this.crcFrom = this.head;
  }
}

export interface SnapshotDecoderOptions {
  /**
   * Only verify: every check runs (shape, order, revisions, checksum) but records are not kept,
   * so `finish` answers with no KeyValues. For checking a snapshot that is installed elsewhere.
   */
  verifyOnly?: boolean;
  /**
   * Hand each record (its value already copied) to this function instead of collecting them, so
   * the caller can keep them in its own, more compact form; `finish` then answers with no
   * KeyValues. What it received must be discarded unless `finish` returns.
   */
  onRecord?: (kv: KeyValue) => void;
  /** Called once the header is read and checked, before any record (to size what receives them). */
  onHeader?: (header: SnapshotHeader) => void;
}

export class SnapshotDecoder {
  private readonly queue = new ByteQueue();
  private state: 'header' | 'records' | 'auth' | 'trailer' | 'done' = 'header';
  private hasAuth = false;
  private header: SnapshotHeader | null = null;
  private readonly kvs: KeyValue[] = [];
  /** Records decoded so far, and the last one (for the order check). */
  private count = 0;
  private last: KeyValue | undefined;
  /** Size of the record being waited for, once its length fields were seen (0: not known yet). */
  private recordBytes = 0;
  private readonly keep: boolean;
  private readonly onRecord: (kv: KeyValue) => void;
  private readonly onHeader: ((header: SnapshotHeader) => void) | undefined;

  constructor(opts: SnapshotDecoderOptions = {}) {
    this.keep = !opts.verifyOnly;
    const kvs = this.kvs;
    this.onRecord = !this.keep ? () => {} : (opts.onRecord ?? ((kv) => kvs.push(kv)));
    this.onHeader = opts.onHeader;
  }

  push(chunk: Uint8Array): void {
    this.queue.push(chunk);
    this.parse();
  }

  finish(): DecodedSnapshot {
    if (this.state !== 'done') {
      const where = this.header ? `after ${this.count} of ${this.header.keyCount} records` : 'in the header';
      throw new SnapshotFormatError('truncated', `the data ends ${where}`);
    }
    return { header: this.header!, kvs: this.kvs };
  }

  /** Consume n bytes that the checksum covers. */
  private take(n: number): Uint8Array {
    return this.queue.take(n);
  }

  private parse(): void {
    for (;;) {
      if (this.state === 'header') {
        if (this.queue.available < HEADER_BYTES) return;
        this.readHeader(this.take(HEADER_BYTES));
      } else if (this.state === 'records') {
        if (!this.readRecord()) return;
      } else if (this.state === 'auth') {
        if (this.queue.available < 4) return;
        const n = viewOf(this.queue.peek(4)).getUint32(0, true);
        if (n > MAX_AUTH_SECTION_BYTES) throw bad(`auth section of ${n} bytes`);
        if (this.queue.available < 4 + n) return;
        this.take(4);
        this.header!.auth = Uint8Array.from(this.take(n)); // own copy: chunks may be reused
        this.state = 'trailer';
      } else if (this.state === 'trailer') {
        if (this.queue.available < TRAILER_BYTES) return;
        const crc = this.queue.crc();
        const stored = viewOf(this.queue.take(TRAILER_BYTES, false)).getUint32(0, true);
        if (stored !== crc) {
          throw new SnapshotFormatError('checksum', `CRC-32 is ${crc >>> 0}, the trailer says ${stored}`);
        }
        this.state = 'done';
      } else {
        if (this.queue.available > 0) {
          throw new SnapshotFormatError('trailing-bytes', `${this.queue.available} bytes follow the trailer`);
        }
        return;
      }
    }
  }

  private readHeader(h: Uint8Array): void {
    if (MAGIC.some((b, i) => h[i] !== b)) throw new SnapshotFormatError('magic', 'not a Conflux kv snapshot');
    const view = viewOf(h);
    const version = view.getUint16(4, true);
    if (version !== SNAPSHOT_FORMAT_VERSION) {
      throw new SnapshotFormatError(
        'version',
        `format version ${version}, this node reads version ${SNAPSHOT_FORMAT_VERSION}`,
      );
    }
    const flags = view.getUint16(6, true);
    if ((flags & ~FLAG_AUTH) !== 0) throw bad('unknown flags');
    this.hasAuth = (flags & FLAG_AUTH) !== 0;
    const header = {
      applied: u64(view, 8, 'applied index'),
      revision: u64(view, 16, 'revision'),
      keyCount: u64(view, 24, 'key count'),
    };
    if (header.revision > header.applied)
      throw bad(`revision ${header.revision} > applied ${header.applied}`);
    this.header = header;
    this.onHeader?.(header);
    this.state = header.keyCount > 0 ? 'records' : this.afterRecords();
  }

  /** Decode the next record if all its bytes are here; false when more bytes are needed. */
  private readRecord(): boolean {
    if (this.recordBytes === 0 && this.readRecordInPlace()) return true;
    const q = this.queue;
    if (this.recordBytes === 0) {
      if (q.available < 4) return false;
      const keyBytes = viewOf(q.peek(4)).getUint32(0, true);
      if (q.available < 8 + keyBytes) return false;
      const valueBytes = viewOf(q.peek(8 + keyBytes)).getUint32(4 + keyBytes, true);
      this.recordBytes = RECORD_FIXED_BYTES + keyBytes + valueBytes;
    }
    if (q.available < this.recordBytes) return false;
    const rec = this.take(this.recordBytes);
    this.recordBytes = 0;
    const view = viewOf(rec);
    const keyBytes = view.getUint32(0, true);
    let key: string;
    try {
      key = utf8.decode(rec.subarray(4, 4 + keyBytes));
    } catch {
      throw bad(`record ${this.count}: key is not UTF-8`);
    }
    const valueAt = 8 + keyBytes;
    const valueBytes = view.getUint32(4 + keyBytes, true);
    // A copy: the store must own its values, not view the caller's (maybe reused) buffers.
    const raw = rec.subarray(valueAt, valueAt + valueBytes);
    const value = this.keep ? ownValue(raw) : raw;
    const at = valueAt + valueBytes;
    const kv: KeyValue = {
      key,
      value,
      createRevision: u64(view, at, 'createRevision'),
      modRevision: u64(view, at + 8, 'modRevision'),
      version: u64(view, at + 16, 'version'),
    };
    this.check(kv);
    this.onRecord(kv);
    this.last = kv;
    if (++this.count === this.header!.keyCount) this.state = this.afterRecords();
    return true;
  }

  /**
   * The common case, without intermediate views: the whole record lies in the first chunk, read
   * in place. False (nothing consumed) when it does not; the general path then handles it.
   */
  private readRecordInPlace(): boolean {
    const q = this.queue;
    if (q.available < RECORD_FIXED_BYTES) return false;
    const { buf, at } = q.front();
    const left = buf.byteLength - at;
    if (left < 8) return false;
    const keyBytes = buf.readUInt32LE(at);
    if (left < 8 + keyBytes) return false;
    const valueBytes = buf.readUInt32LE(at + 4 + keyBytes);
    const size = RECORD_FIXED_BYTES + keyBytes + valueBytes;
    if (left < size) return false;
    const keyAt = at + 4;
    const keyEnd = keyAt + keyBytes;
    let ascii = true;
    for (let i = keyAt; i < keyEnd; i++) {
      if (buf[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    let key: string;
    if (ascii) key = buf.toString('latin1', keyAt, keyEnd);
    else {
      try {
        key = utf8.decode(buf.subarray(keyAt, keyEnd));
      } catch {
        throw bad(`record ${this.count}: key is not UTF-8`);
      }
    }
    const valueAt = keyEnd + 4;
    const valueEnd = valueAt + valueBytes;
    const num = (off: number, what: string) => {
      const hi = buf.readUInt32LE(off + 4);
      if (hi > 0x1fffff) throw bad(`${what} exceeds 2^53`);
      return hi * TWO_32 + buf.readUInt32LE(off);
    };
    const kv: KeyValue = {
      key,
      // A copy: the store must own its values, not view the caller's (maybe reused) buffers.
      value: this.keep ? ownValueOf(buf, valueAt, valueEnd) : EMPTY,
      createRevision: num(valueEnd, 'createRevision'),
      modRevision: num(valueEnd + 8, 'modRevision'),
      version: num(valueEnd + 16, 'version'),
    };
    q.skip(size);
    this.check(kv);
    this.onRecord(kv);
    this.last = kv;
    if (++this.count === this.header!.keyCount) this.state = this.afterRecords();
    return true;
  }

  private afterRecords(): 'auth' | 'trailer' {
    return this.hasAuth ? 'auth' : 'trailer';
  }

  private check(kv: KeyValue): void {
    const n = this.count;
    const prev = this.last;
    if (kv.key.length === 0) throw bad(`record ${n}: empty key`);
    if (prev && compareKeys(prev.key, kv.key) >= 0) throw bad(`record ${n}: keys out of order`);
    const rev = this.header!.revision;
    if (
      kv.createRevision < 1 ||
      kv.createRevision > kv.modRevision ||
      kv.modRevision > rev ||
      kv.version < 1
    ) {
      throw bad(`record ${n}: impossible revisions for ${JSON.stringify(kv.key)}`);
    }
  }
}
