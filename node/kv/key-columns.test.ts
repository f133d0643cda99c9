import { describe, expect, it } from 'vitest';
import { KeyColumns } from './key-columns.js';
import { ownValue } from './value-slab.js';

const bytes = (s: string) => ownValue(new TextEncoder().encode(s));

describe('KeyColumns', () => {
  it('gives back what a slot holds: revisions, the value in a slab, a large value and an empty one', () => {
    const c = new KeyColumns(1);
    const small = c.add(bytes('hello'), 3, 7, 2);
    const large = new Uint8Array(5000).fill(9);
    const big = c.add(large, 1, 1, 1);
    const empty = c.add(new Uint8Array(0), 4, 4, 1);
    expect(c.toKeyValue(small, 'a')).toEqual({
      key: 'a',
      value: bytes('hello'),
      createRevision: 3,
      modRevision: 7,
      version: 2,
    });
    expect(c.value(big)).toBe(large);
    expect(c.valueBytes(big)).toBe(5000);
    expect(c.valueBytes(small)).toBe(5);
    expect(c.value(empty).byteLength).toBe(0);
    expect(c.size).toBe(3);
  });

  it('keeps revisions beyond 32 bits exactly (revisions are log indexes)', () => {
    const c = new KeyColumns();
    const s = c.add(bytes('v'), 2 ** 40 + 1, 2 ** 52 + 3, 2 ** 33);
    expect([c.createRevision(s), c.modRevision(s), c.version(s)]).toEqual([
      2 ** 40 + 1,
      2 ** 52 + 3,
      2 ** 33,
    ]);
  });

  it('reuses released slots, grows by doubling and agrees with a model under random writes', () => {
    const c = new KeyColumns(1);
    const model = new Map<number, { v: string; rev: number }>();
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const slots: number[] = [];
    let mostLive = 0;
    for (let i = 1; i <= 20_000; i++) {
      const r = rand(10);
      if (r < 5 || slots.length === 0) {
        const s = c.add(bytes(`v${i}`), i, i, 1);
        expect(model.has(s)).toBe(false);
        model.set(s, { v: `v${i}`, rev: i });
        slots.push(s);
        mostLive = Math.max(mostLive, slots.length);
      } else if (r < 8) {
        const s = slots[rand(slots.length)]!;
        c.set(s, bytes(`w${i}`), model.get(s)!.rev, i, 2);
        model.set(s, { v: `w${i}`, rev: model.get(s)!.rev });
      } else {
        const s = slots.splice(rand(slots.length), 1)[0]!;
        c.release(s);
        model.delete(s);
      }
    }
    expect(c.size).toBe(model.size);
    for (const [s, { v, rev }] of model) {
      expect(new TextDecoder().decode(c.value(s))).toBe(v);
      expect(c.createRevision(s)).toBe(rev);
    }
    // Freed slots are reused before new ones: no slot number reaches the most ever live at once.
    expect(Math.max(...slots)).toBeLessThan(mostLive);
  });

  it('reserve makes room at once, and only grows', () => {
    const c = new KeyColumns(1024);
    c.reserve(5000);
    expect(c.columnBytes).toBe(5000 * 28);
    c.reserve(10);
    expect(c.columnBytes).toBe(5000 * 28);
    for (let i = 0; i < 5000; i++) c.add(bytes(`v${i}`), i + 1, i + 1, 1);
    expect(c.columnBytes).toBe(5000 * 28);
    expect(new TextDecoder().decode(c.value(4999))).toBe('v4999');
  });

  it('trim keeps every slot and leaves room to grow again', () => {
    const c = new KeyColumns(1024);
    for (let i = 0; i < 3000; i++) c.add(bytes(`v${i}`), i + 1, i + 1, 1);
    expect(c.columnBytes).toBe(4096 * 28);
    c.trim();
    expect(c.columnBytes).toBe(3000 * 28);
    const s = c.add(bytes('after'), 9, 9, 1);
    expect(new TextDecoder().decode(c.value(s))).toBe('after');
    expect(new TextDecoder().decode(c.value(2999))).toBe('v2999');
    expect(c.modRevision(0)).toBe(1);
  });
});
