import { describe, expect, it } from 'vitest';
import { BoundedQueue } from './bounded-queue.js';

describe('BoundedQueue', () => {
  it('is FIFO and evicts the oldest item when full', () => {
    const q = new BoundedQueue<number>(3);
    expect([q.push(1), q.push(2), q.push(3)]).toEqual([undefined, undefined, undefined]);
    expect(q.push(4)).toBe(1);
    expect(q.push(5)).toBe(2);
    expect(q.shift()).toBe(3);
    q.push(6);
    expect(q.drain()).toEqual([4, 5, 6]);
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
  });
});
