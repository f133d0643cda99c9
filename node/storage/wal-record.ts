// WAL records and their on-disk framing.
//
// Frame: [u32 LE length][u32 LE crc32][u8 type][payload], where `length` counts the type byte and
// the payload, and the CRC covers the same bytes. The payload is a msgpack map validated by zod
// when decoded.
//
// One `save` writes exactly ONE batch record followed by one fsync. That makes the fsync unit
// and the record the same thing: a torn write (even one whose sectors reached the disk out of
// order) can only damage the last record, so a bad record followed by a valid one was damaged
// *after* it was durable, i.e. it is corruption and never a crash artefact.

import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';
import { z } from 'zod';
import type { Entry, HardState } from '../raft/types.js';
import { entrySchema, hardStateSchema, type SnapshotRef, snapshotRefSchema } from './schemas.js';

export type WalRecord =
  /** First record of every segment: the durable state before it, so older segments can go. */
  | { type: 'header'; seq: number; hardState: HardState; snapshot: SnapshotRef | null }
  /**
   * One Ready: `install` (a received snapshot; replay drops the whole log before it), then
   * `entries` (entry i replaces every earlier entry ≥ i), then `hardState`.
   */
  | { type: 'batch'; install: SnapshotRef | null; entries: Entry[]; hardState: HardState | null }
  /** A snapshot this node made: entries ≤ its index are covered by it (and may be deleted). */
  | { type: 'snapshot'; snapshot: SnapshotRef };

const TYPE_CODES = { header: 1, batch: 2, snapshot: 3 } as const;

const payloadSchemas = {
  1: z.object({
    seq: z.number().int().min(1),
    hardState: hardStateSchema,
    snapshot: snapshotRefSchema.nullable(),
  }),
  2: z.object({
    install: snapshotRefSchema.nullable(),
    entries: z.array(entrySchema),
    hardState: hardStateSchema.nullable(),
  }),
  3: z.object({ snapshot: snapshotRefSchema }),
} as const;

type TypeCode = keyof typeof payloadSchemas;

const isTypeCode = (n: number): n is TypeCode => n === 1 || n === 2 || n === 3;

/** Bytes before the type byte: length and CRC. */
export const FRAME_PREFIX_BYTES = 8;

const packr = new Packr({ useRecords: false, copyBuffers: true });

export function encodeRecord(record: WalRecord): Buffer {
  const { type, ...fields } = record;
  const payload = packr.pack(fields);
  const frame = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + 1 + payload.length);
  frame.writeUInt32LE(1 + payload.length, 0);
  frame[FRAME_PREFIX_BYTES] = TYPE_CODES[type];
  payload.copy(frame, FRAME_PREFIX_BYTES + 1);
  frame.writeUInt32LE(crc32(frame.subarray(FRAME_PREFIX_BYTES)), 4);
  return frame;
}

/** A frame whose length and CRC check out; its payload is not decoded yet. */
export interface Frame {
  offset: number;
  /** Offset just past the frame. */
  end: number;
  type: TypeCode;
  payload: Buffer;
}

/** The frame at `offset`, or why there is none ('incomplete' when the buffer ends inside it). */
export function readFrame(buf: Buffer, offset: number): Frame | { error: string } {
  const left = buf.length - offset;
  if (left < FRAME_PREFIX_BYTES + 1) return { error: `incomplete frame header (${left} bytes left)` };
  const length = buf.readUInt32LE(offset);
  if (length < 1) return { error: 'zero-length frame' };
  if (length > left - FRAME_PREFIX_BYTES) {
    return { error: `frame of ${length} bytes runs past the end of the file (${left} bytes left)` };
  }
  const end = offset + FRAME_PREFIX_BYTES + length;
  const body = buf.subarray(offset + FRAME_PREFIX_BYTES, end);
  if (crc32(body) !== buf.readUInt32LE(offset + 4)) return { error: 'checksum mismatch' };
  const type = body[0] as number;
  if (!isTypeCode(type)) return { error: `unknown record type ${type}` };
  return { offset, end, type, payload: body.subarray(1) };
}

/**
 * Every valid frame from the start of `buf`, stopping at the first bad one. `bad` is null when
 * the frames end exactly at the end of the buffer.
 */
export function scanFrames(buf: Buffer): { frames: Frame[]; bad: { offset: number; reason: string } | null } {
  const frames: Frame[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const f = readFrame(buf, offset);
    if ('error' in f) return { frames, bad: { offset, reason: f.error } };
    frames.push(f);
    offset = f.end;
  }
  return { frames, bad: null };
}

/**
 * The first offset after `from` where a valid frame starts, or null. Used only after a bad frame
 * in the last segment, to tell a torn tail (nothing valid follows) from corruption in the middle.
 * The cheap checks (plausible length, known type, a msgpack map) run before the CRC so that a
 * zero-filled or garbage tail costs about one pass over it.
 */
export function findValidFrameAfter(buf: Buffer, from: number): number | null {
  const last = buf.length - FRAME_PREFIX_BYTES - 2;
  for (let o = from + 1; o <= last; o++) {
    const length = buf.readUInt32LE(o);
    if (length < 2 || length > buf.length - o - FRAME_PREFIX_BYTES) continue;
    if (!isTypeCode(buf[o + FRAME_PREFIX_BYTES] as number)) continue;
    const first = buf[o + FRAME_PREFIX_BYTES + 1] as number;
    if (!((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf)) continue;
    if (!('error' in readFrame(buf, o))) return o;
  }
  return null;
}

/** Disk sector size: the unit a crash can leave unwritten inside a record. */
const SECTOR_BYTES = 512;
/**
 * A zero run shorter than this (a record's first or last bytes in a sector) may just be payload
 * (msgpack writes small zeros as 0x00): it does not count as unwritten. Erring this way refuses.
 */
const MIN_ZERO_RUN_BYTES = 8;

/**
 * Why the bad frame at `offset` (the last thing in the last segment: nothing valid follows it)
 * is NOT the torn write of a crash, or null when it is. A crash during the one write before an
 * fsync leaves the record short (the file ends inside it) or with sectors the disk never wrote,
 * which read back as zeros. A record whose every byte is there yet fails its checksum was
 * damaged after it was written, and possibly after it was fsynced and acknowledged: dropping it
 * could forget a vote or an acknowledged entry, so that is corruption. (etcd's WAL draws the
 * same line: an unexpected EOF or a zero sector in the last segment is torn, a CRC mismatch is
 * not.) Known blind spot: a bit flip in a record that holds a whole zero sector of payload.
 */
export function corruptTailReason(buf: Buffer, offset: number): string | null {
  const left = buf.length - offset;
  if (left < FRAME_PREFIX_BYTES + 1) return null;
  const length = buf.readUInt32LE(offset);
  if (length === 0) return null;
  const crc = buf.readUInt32LE(offset + 4);
  if (length > left - FRAME_PREFIX_BYTES) {
    // Short, unless the rest of the file is a whole record whose length field was damaged.
    const rest = buf.subarray(offset + FRAME_PREFIX_BYTES);
    return crc32(rest) === crc
      ? `the length field says ${length} bytes, the record holds ${rest.length}`
      : null;
  }
  const end = offset + FRAME_PREFIX_BYTES + length;
  for (let from = offset; from < end; ) {
    const to = Math.min(end, (Math.floor(from / SECTOR_BYTES) + 1) * SECTOR_BYTES);
    if (to - from >= MIN_ZERO_RUN_BYTES && buf.subarray(from, to).every((b) => b === 0)) return null;
    from = to;
  }
  return 'a complete record fails its checksum (not a torn write: no sector of it is unwritten)';
}

/** Decode a frame's payload; throws (with zod's or msgpackr's message) when it does not parse. */
export function decodeFrame(frame: Frame): WalRecord {
  const raw: unknown = packr.unpack(frame.payload);
  switch (frame.type) {
    case 1:
      return { type: 'header', ...payloadSchemas[1].parse(raw) };
    case 2:
      return { type: 'batch', ...payloadSchemas[2].parse(raw) };
    case 3:
      return { type: 'snapshot', ...payloadSchemas[3].parse(raw) };
  }
}
