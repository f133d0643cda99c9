import { describe, expect, it } from 'vitest';
import { EventRing } from './event-ring.js';
import type { WatchEvent } from './types.js';
import { ownValue } from './value-slab.js';

const bytes = (s: string) => ownValue(new TextEncoder().encode(s));

function eventAt(i: number): WatchEvent {
  const key = `k${i % 37}`;
  const prevKv = { key, value: bytes(`old${i}`), createRevision: i, modRevision: i + 1, version: 2 };
  switch (i % 4) {
    case 0: // a put that creates its key
      return {
        type: 'put',
        kv: { key, value: bytes(`v${i}`), createRevision: i, modRevision: i, version: 1 },
        revision: i,
      };
    case 1: // an overwrite, with a value too large for a slab
      return {
        type: 'put',
        kv: {
          key,
          value: new Uint8Array(3000).fill(i & 0xff),
          createRevision: i,
          modRevision: i + 2,
          version: 3,
        },
        prevKv,
        revision: i + 2,
      };
    case 2: // a delete: a tombstone and what it deleted
      return {
        type: 'delete',
        kv: { key, value: new Uint8Array(0), createRevision: 0, modRevision: i + 2, version: 0 },
        prevKv,
        revision: i + 2,
      };
    default: // revisions past 2^32
      return {
        type: 'put',
        kv: { key, value: bytes(''), createRevision: 2 ** 40, modRevision: 2 ** 40 + i, version: 2 ** 33 },
        revision: 2 ** 40 + i,
      };
  }
}

describe('EventRing', () => {
  it('gives back every held event equal to what was pushed, through growth, wrap-around and drops', () => {
    const ring = new EventRing();
    const held = new Map<number, WatchEvent>();
    let dropped = 0;
    for (let i = 0; i < 5000; i++) {
      const e = eventAt(i);
      held.set(ring.end, e);
      ring.push(e);
      // Keep a window that grows to 700 events, then shrinks to 10 and grows again.
      const keep = i < 2000 ? 700 : i < 3000 ? 10 : 300;
      if (ring.end - dropped > keep) {
        dropped = ring.end - keep;
        ring.dropBefore(dropped);
        for (const seq of held.keys()) if (seq < dropped) held.delete(seq);
      }
      if (i % 97 === 0 || i === 4999) {
        for (const [seq, want] of held) {
          expect(ring.key(seq)).toBe(want.kv.key);
          expect(ring.event(seq, want.revision)).toEqual(want);
        }
      }
    }
    expect(held.size).toBe(300);
  });

  it('clear lets go of everything and sequence numbers go on', () => {
    const ring = new EventRing();
    for (let i = 0; i < 100; i++) ring.push(eventAt(i));
    ring.clear();
    expect(ring.end).toBe(100);
    ring.push(eventAt(4));
    expect(ring.event(100, 4)).toEqual(eventAt(4));
  });
});
