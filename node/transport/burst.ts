// Turns a peer's queue into as few socket writes as possible. Small frames are concatenated into
// one buffer (one copy of a few bytes each beats one write() per frame); a large frame (an append
// with big entries, a snapshot chunk) is passed through as its own chunk so it is never copied.
// The caller writes the chunks inside cork()/uncork(), which makes them a single writev syscall.

import type { Message } from '../raft/types.js';
import type { BoundedQueue } from './bounded-queue.js';

/** Stop pulling messages into one burst beyond this many bytes: the rest waits for 'drain'. */
export const BURST_BYTES = 1 << 20;
/** Frames at least this large are written as they are instead of being copied into a batch. */
export const LARGE_FRAME_BYTES = 64 << 10;

export interface Burst {
  chunks: Buffer[];
  /** Messages encoded into `chunks` (the lead frame is not one). */
  messages: number;
  bytes: number;
}

/**
 * Takes messages off the front of `queue` until about `maxBytes` are encoded, preceded by `lead`
 * (a control frame) if given. `encode` returns a whole frame, or null to skip a message it could
 * not encode (and already accounted for).
 */
export function takeBurst(
  queue: BoundedQueue<Message>,
  lead: Buffer | null,
  encode: (message: Message) => Buffer | null,
  maxBytes = BURST_BYTES,
): Burst {
  const chunks: Buffer[] = [];
  let small: Buffer[] = lead ? [lead] : [];
  let smallBytes = lead ? lead.length : 0;
  let messages = 0;
  let bytes = 0;
  const closeSmall = (): void => {
    if (small.length > 0)
      chunks.push(small.length === 1 ? (small[0] as Buffer) : Buffer.concat(small, smallBytes));
    small = [];
    smallBytes = 0;
  };
  while (bytes < maxBytes && queue.length > 0) {
    const frame = encode(queue.shift() as Message);
    if (!frame) continue;
    messages++;
    bytes += frame.length;
    if (frame.length >= LARGE_FRAME_BYTES) {
      closeSmall();
      chunks.push(frame);
    } else {
      small.push(frame);
      smallBytes += frame.length;
    }
  }
  closeSmall();
  return { chunks, messages, bytes };
}
