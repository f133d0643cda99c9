// Frame bodies are MessagePack (msgpackr) in its plain form: no records, no shared structures, so
// every frame decodes on its own and any MessagePack implementation can read it. Uint8Array fields
// (entry data, snapshot chunks) travel as `bin` and come back as Buffers, which are Uint8Arrays.

import { Packr, RESERVE_START_SPACE } from 'msgpackr';
import { FRAME_HEADER_BYTES, writeFrameHeader } from './framing.js';

const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  // Decoded `bin` values are copies, not views into the receive buffer: entries live on in the
  // Raft log, and a view would pin a whole socket chunk (or a 64 MiB frame) per 10-byte entry.
  copyBuffers: true,
  moreTypes: false,
});

/**
 * Encodes `value` as one complete frame (header included). msgpackr reserves the header bytes in
 * front of the body, so framing costs no copy. The returned buffer is never reused by msgpackr.
 */
export function encodeFrame(value: unknown): Buffer {
  const frame = packr.pack(value, RESERVE_START_SPACE | FRAME_HEADER_BYTES);
  writeFrameHeader(frame);
  return frame;
}

/** Decodes one body. Throws on malformed MessagePack or trailing bytes; the result is unvalidated. */
export function decodeBody(body: Buffer): unknown {
  return packr.unpack(body);
}
