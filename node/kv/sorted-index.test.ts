import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SortedKeys } from './sorted-index.js';

describe('SortedKeys', () => {
  it('behaves like a sorted set under random inserts and deletes (chunks split and merge)', () => {
    const op = fc.record({ insert: fc.boolean(), key: fc.integer({ min: 0, max: 300 }) });
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 2000 }),
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 1, max: 8 }),
        (ops, start, load) => {
          const s = new SortedKeys(load);
          const ref = new Set<string>();
          for (const { insert, key } of ops) {
            const k = `k${String(key).padStart(4, '0')}`;
            expect(insert ? s.insert(k) : s.delete(k)).toBe(insert ? !ref.has(k) : ref.has(k));
            if (insert) ref.add(k);
            else ref.delete(k);
          }
          s.check();
          const sorted = [...ref].sort();
          expect([...s]).toEqual(sorted);
          const viaForEach: string[] = [];
          s.forEach((k) => {
            viaForEach.push(k);
          });
          expect(viaForEach).toEqual(sorted);
          expect(s.size).toBe(ref.size);
          const from = `k${String(start).padStart(4, '0')}`;
          expect([...s.from(from)]).toEqual(sorted.filter((k) => k >= from));
          expect([...s.from(from, true)]).toEqual(sorted.filter((k) => k > from));
          expect(s.has(from)).toBe(ref.has(from));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keys inserted in order (appended past every key) interleave with keys inserted before them', () => {
    const s = new SortedKeys(4);
    const ref: string[] = [];
    for (let i = 0; i < 200; i++) {
      const k = `k${String(i * 2).padStart(4, '0')}`;
      expect(s.insert(k)).toBe(true);
      ref.push(k);
      if (i % 7 === 0) {
        const before = `k${String(i).padStart(4, '0')}a`; // lands inside, not at the end
        expect(s.insert(before)).toBe(true);
        ref.push(before);
      }
      expect(s.insert(k)).toBe(false); // a key it holds, the largest one or not
    }
    s.check();
    expect([...s]).toEqual(ref.sort());
  });

  it('fromSorted builds a valid index and refuses unsorted input', () => {
    const keys = Array.from({ length: 5000 }, (_, i) => `key-${String(i).padStart(6, '0')}`);
    const s = SortedKeys.fromSorted(keys);
    s.check();
    expect(s.size).toBe(5000);
    expect(s.insert('key-0000005')).toBe(true);
    s.check();
    expect(() => SortedKeys.fromSorted(['b', 'a'])).toThrow();
    expect(() => SortedKeys.fromSorted(['a', 'a'])).toThrow();
  });

  it('deleting everything leaves an empty, usable index', () => {
    const s = new SortedKeys();
    for (let i = 0; i < 3000; i++) s.insert(`k${i}`);
    for (let i = 0; i < 3000; i++) expect(s.delete(`k${i}`)).toBe(true);
    s.check();
    expect([...s]).toEqual([]);
    expect([...s.from('a')]).toEqual([]);
    expect(s.insert('x')).toBe(true);
    expect([...s]).toEqual(['x']);
  });
});
