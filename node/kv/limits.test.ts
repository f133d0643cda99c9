// The store's side of the node's limits: the running count of stored bytes the quota reads, the
// growth a command would cause, and answers budgeted by the size of what they carry.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KV_ANSWER_OVERHEAD_BYTES, kvAnswerBytes, txnAnswerBytes, txnAnswerEstimate } from './answer-size.js';
import type { KvCommand } from './commands.js';
import { writeGrowth } from './quota.js';
import { KEY_OVERHEAD_BYTES, storedBytes } from './state.js';
import { KvStore } from './store.js';
import { bytes, del, put, run } from './test-helpers.js';

const value = (n: number, fill = 'v') => fill.repeat(n);

/** The stored bytes counted from scratch: what the running count must always equal. */
function recount(s: KvStore): number {
  let total = 0;
  for (const kv of s.range({ prefix: '', limit: 1_000_000 }).kvs)
    total += storedBytes(kv.key, kv.value.byteLength);
  return total;
}

describe('stored bytes', () => {
  it('count each key, its value and a fixed overhead, through overwrite, delete and restore', () => {
    const s = new KvStore();
    expect(s.bytes).toBe(0);
    put(s, 'a', value(10));
    expect(s.bytes).toBe(1 + 10 + KEY_OVERHEAD_BYTES);
    put(s, 'a', value(3)); // overwrite: the old value no longer counts
    put(s, 'é', value(2000)); // two UTF-8 bytes; a value too large to share a slab
    expect(s.bytes).toBe(1 + 3 + KEY_OVERHEAD_BYTES + 2 + 2000 + KEY_OVERHEAD_BYTES);
    expect(s.valueBytes('é')).toBe(2000);
    expect(s.valueBytes('a')).toBe(3);
    expect(s.valueBytes('nope')).toBeUndefined();
    del(s, 'a');
    del(s, 'a'); // a delete of a missing key frees nothing
    expect(s.bytes).toBe(2 + 2000 + KEY_OVERHEAD_BYTES);
    const copy = new KvStore();
    const snap = s.snapshot();
    copy.restore(
      {
        index: snap.index,
        term: 1,
        membership: { configs: [['n1']], learners: [], retired: [], nodes: {}, cluster: null },
        sizeBytes: snap.data.byteLength,
        id: 'snap',
      },
      snap.data,
    );
    expect(copy.bytes).toBe(s.bytes);
  });

  it('always equal a recount, for any sequence of puts, deletes and transactions', () => {
    const key = fc.constantFrom('a', 'b', 'c', 'ü/x', '\u{1F600}');
    const op = fc.oneof(
      fc.record({ type: fc.constant('put' as const), key, n: fc.nat(3000) }),
      fc.record({ type: fc.constant('delete' as const), key }),
    );
    fc.assert(
      fc.property(fc.array(fc.array(op, { minLength: 1, maxLength: 3 }), { maxLength: 30 }), (steps) => {
        const s = new KvStore();
        for (const ops of steps) {
          const unique = [...new Map(ops.map((o) => [o.key, o])).values()];
          run(s, {
            type: 'txn',
            compare: [],
            success: unique.map((o) =>
              o.type === 'put' ? { type: 'put', key: o.key, value: bytes(value(o.n)) } : o,
            ),
            failure: [],
          });
          expect(s.bytes).toBe(recount(s));
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('write growth (what the quota decides on)', () => {
  const s = new KvStore();
  put(s, 'old', value(100));
  const current = (k: string) => s.valueBytes(k);
  const putCmd = (key: string, n: number): KvCommand => ({ type: 'put', key, value: bytes(value(n)) });

  it('is what the write would add, negative when it frees', () => {
    expect(writeGrowth(putCmd('new', 10), current)).toBe(storedBytes('new', 10));
    expect(writeGrowth(putCmd('old', 150), current)).toBe(50);
    expect(writeGrowth(putCmd('old', 40), current)).toBe(-60);
    expect(writeGrowth({ type: 'delete', key: 'old' }, current)).toBe(-storedBytes('old', 100));
    expect(writeGrowth({ type: 'delete', key: 'missing' }, current)).toBe(0);
  });

  it('counts the larger branch of a transaction, since the branch is known only at apply', () => {
    const txn: KvCommand = {
      type: 'txn',
      compare: [{ key: 'old', target: 'exists', op: '=', operand: true }],
      success: [{ type: 'delete', key: 'old' }],
      failure: [{ type: 'put', key: 'new', value: bytes(value(500)) }],
    };
    expect(writeGrowth(txn, current)).toBe(storedBytes('new', 500));
    expect(
      writeGrowth({ type: 'txn', compare: [], success: [{ type: 'get', key: 'old' }], failure: [] }, current),
    ).toBe(0);
  });
});

describe('answer budgets', () => {
  function store(n: number, size: number): KvStore {
    const s = new KvStore();
    for (let i = 0; i < n; i++) put(s, `k/${String(i).padStart(2, '0')}`, value(size));
    return s;
  }

  it('a range page stops before the key-value that would pass the budget, and pages on to the end', () => {
    const s = store(10, 1000);
    const each = kvAnswerBytes(s.get('k/00')!);
    const maxBytes = 3 * each + 10;
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = s.range({ prefix: 'k/', limit: 100, maxBytes, ...(after ? { after } : {}) });
      expect(page.kvs.length).toBeGreaterThan(0);
      expect(page.kvs.reduce((sum, kv) => sum + kvAnswerBytes(kv), 0)).toBeLessThanOrEqual(maxBytes);
      seen.push(...page.kvs.map((kv) => kv.key));
      if (!page.more) break;
      expect(page.kvs).toHaveLength(3);
      after = page.kvs.at(-1)!.key;
    }
    expect(seen).toEqual(s.range({ prefix: 'k/', limit: 100 }).kvs.map((kv) => kv.key));
  });

  it('a range page holds at least one key-value, even one larger than the budget', () => {
    const s = store(2, 5000);
    const page = s.range({ prefix: 'k/', limit: 100, maxBytes: 10 });
    expect(page.kvs).toHaveLength(1);
    expect(page.more).toBe(true);
  });

  it('a long-poll page holds whole revisions within the budget, at least one', () => {
    const s = new KvStore();
    put(s, 'w/a', value(1000)); // 1
    run(s, {
      type: 'txn',
      compare: [],
      success: ['w/b', 'w/c', 'w/d'].map((key) => ({ type: 'put' as const, key, value: bytes(value(1000)) })),
      failure: [],
    }); // 2: three events
    put(s, 'w/e', value(1000)); // 3
    const one = 3 + 1000 + KV_ANSWER_OVERHEAD_BYTES;
    // Room for revision 1 and half of revision 2: the page stops at the revision boundary.
    let page = s.eventsSince({ prefix: 'w/' }, 1, 100, 2.5 * one);
    expect(page.events.map((e) => e.revision)).toEqual([1]);
    expect(page.nextRevision).toBe(2);
    // A revision larger than the budget on its own still comes whole.
    page = s.eventsSince({ prefix: 'w/' }, 2, 100, 10);
    expect(page.events.map((e) => e.kv.key)).toEqual(['w/b', 'w/c', 'w/d']);
    expect(page.nextRevision).toBe(3);
    page = s.eventsSince({ prefix: 'w/' }, 1, 100);
    expect(page.events).toHaveLength(5);
  });

  it('a waiting long-poll answers within the budget too', async () => {
    const s = new KvStore();
    const waiting = s.waitForEvents({ prefix: 'w/' }, 1, 100, undefined, 1);
    put(s, 'w/a', value(10));
    expect((await waiting).events).toHaveLength(1);
  });

  it('a transaction is estimated over both branches, gets seeing earlier writes, and counted exactly', () => {
    const s = store(2, 1000);
    const current = (k: string) => s.valueBytes(k);
    const kv = (key: string, n: number) => key.length + n + KV_ANSWER_OVERHEAD_BYTES;
    const gets = Array.from({ length: 128 }, () => ({ type: 'get' as const, key: 'k/00' }));
    expect(txnAnswerEstimate({ type: 'txn', compare: [], success: gets, failure: [] }, current)).toBe(
      128 * kv('k/00', 1000),
    );
    const txn = {
      type: 'txn' as const,
      compare: [],
      success: [
        { type: 'put' as const, key: 'k/00', value: bytes('x') }, // prev: 1000
        { type: 'get' as const, key: 'k/00' }, // sees the put: 1
        { type: 'delete' as const, key: 'k/01' }, // prev: 1000
        { type: 'get' as const, key: 'k/01' }, // deleted: nothing
        { type: 'get' as const, key: 'missing' },
      ],
      failure: [{ type: 'get' as const, key: 'k/01' }],
    };
    const estimate = txnAnswerEstimate(txn, current);
    expect(estimate).toBe(kv('k/00', 1000) + kv('k/00', 1) + kv('k/01', 1000));
    const r = run(s, txn);
    expect(r.type === 'txn' && txnAnswerBytes(r.responses)).toBe(estimate);
  });
});
