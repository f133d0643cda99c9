import { describe, expect, it } from 'vitest';
import type { Message } from '../raft/types.js';
import { BoundedQueue } from './bounded-queue.js';
import { LARGE_FRAME_BYTES, takeBurst } from './burst.js';

const msg = (readSeq: number): Message => ({
  type: 'heartbeat',
  from: 'a',
  to: 'b',
  term: 1,
  commit: 0,
  readSeq,
});
/** A fake encoder: readSeq is the frame size; 0 means "cannot encode". */
const encode = (m: Message): Buffer | null =>
  m.type === 'heartbeat' && m.readSeq > 0 ? Buffer.alloc(m.readSeq, m.readSeq & 0xff) : null;

function queueOf(...sizes: number[]): BoundedQueue<Message> {
  const q = new BoundedQueue<Message>(100);
  for (const size of sizes) q.push(msg(size));
  return q;
}

describe('takeBurst', () => {
  it('concatenates small frames (after the lead frame) into one chunk', () => {
    const burst = takeBurst(queueOf(10, 20, 30), Buffer.from('PING'), encode);
    expect(burst.chunks).toHaveLength(1);
    expect(burst.chunks[0]?.length).toBe(4 + 60);
    expect(burst).toMatchObject({ messages: 3, bytes: 60 });
  });

  it('passes large frames through uncopied, between batches of small ones', () => {
    const big = LARGE_FRAME_BYTES;
    const burst = takeBurst(queueOf(10, 20, big, 30), null, encode);
    expect(burst.chunks.map((c) => c.length)).toEqual([30, big, 30]);
  });

  it('skips messages the encoder refuses and stops near maxBytes, leaving the rest queued', () => {
    const q = queueOf(100, 0, 100, 100, 100);
    const burst = takeBurst(q, null, encode, 250);
    expect(burst).toMatchObject({ messages: 3, bytes: 300 });
    expect(q.length).toBe(1);
  });
});
