import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { ConfluxError } from '../errors.js';
import type { Compare } from './commands.js';
import { KvStore } from './store.js';
import { blank, bytes, del, normal, put, run, text } from './test-helpers.js';

describe('KvStore: put, get, delete', () => {
  it('the revision of a write is its log index; reads see value and revisions', () => {
    const s = new KvStore();
    expect(put(s, 'a', '1')).toEqual({ type: 'put', ok: true, revision: 1 });
    blank(s); // index 2: no data change
    const r = put(s, 'a', '2');
    expect(r).toMatchObject({ type: 'put', ok: true, revision: 3, prev: { modRevision: 1, version: 1 } });
    const kv = s.get('a')!;
    expect(text(kv.value)).toBe('2');
    expect(kv).toMatchObject({ key: 'a', createRevision: 1, modRevision: 3, version: 2 });
    expect(s.revision).toBe(3);
    expect(s.applied).toBe(3);
  });

  it('version counts writes since creation; delete then put starts a new incarnation', () => {
    const s = new KvStore();
    put(s, 'k', 'a'); // 1
    put(s, 'k', 'b'); // 2
    put(s, 'k', 'c'); // 3
    expect(s.get('k')).toMatchObject({ createRevision: 1, modRevision: 3, version: 3 });
    const d = del(s, 'k'); // 4
    expect(d).toMatchObject({ type: 'delete', revision: 4, prev: { version: 3 } });
    expect(s.get('k')).toBeUndefined();
    put(s, 'k', 'd'); // 5
    expect(s.get('k')).toMatchObject({ createRevision: 5, modRevision: 5, version: 1 });
  });

  it('deleting a missing key changes nothing: the store revision stays', () => {
    const s = new KvStore();
    put(s, 'a', '1');
    expect(del(s, 'nope')).toEqual({ type: 'delete', revision: 1 });
    expect(s.revision).toBe(1);
    expect(s.applied).toBe(2);
  });

  it('carries the requestId into the result', () => {
    const s = new KvStore();
    const r = run(s, { type: 'put', key: 'a', value: bytes('x'), requestId: 'req-1' });
    expect(r.requestId).toBe('req-1');
  });
});

describe('KvStore: stored values', () => {
  it('gives back every value byte for byte, whatever its size and key, after writes and a restore', () => {
    const s = new KvStore();
    const expected = new Map<string, Uint8Array>();
    // Many small values (several slabs), empty, at the packing limits and large ones; keys with
    // units above U+D800 (stored under a remapped sort key).
    const sizes = [0, 1, 100, 1024, 1025, 2047, 2048, 5000];
    for (let i = 0; i < 600; i++) {
      const n = sizes[i % sizes.length]!;
      const key = i % 3 === 0 ? `k/\u{1F600}${i}` : i % 3 === 1 ? `k/\uFFFD${i}` : `k/${i}`;
      const value = new Uint8Array(n).map((_, j) => (i * 31 + j) & 0xff);
      run(s, { type: 'put', key, value });
      expected.set(key, value);
    }
    for (let i = 0; i < 600; i += 7) del(s, [...expected.keys()][i]!);
    for (const [i, key] of [...expected.keys()].entries()) if (i % 7 === 0) expected.delete(key);
    const restored = new KvStore();
    const snap = s.snapshot();
    restored.restore({ index: snap.index } as Parameters<KvStore['restore']>[0], snap.data);
    for (const store of [s, restored]) {
      expect(store.size).toBe(expected.size);
      const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
      for (const [key, value] of expected) {
        const kv = store.get(key)!;
        expect(kv.key).toBe(key);
        expect(same(kv.value, value)).toBe(true);
        expect(kv).toEqual(store.get(key));
      }
      const page = store.range({ prefix: 'k/', limit: 1000 });
      expect(page.kvs.map((kv) => kv.key).sort()).toEqual([...expected.keys()].sort());
      for (const kv of page.kvs) expect(same(kv.value, expected.get(kv.key)!)).toBe(true);
    }
  });
});

describe('KvStore: blank, membership and undecodable entries advance applied only', () => {
  it('blank and membership entries', () => {
    const s = new KvStore();
    put(s, 'a', '1');
    expect(blank(s)).toEqual({ type: 'none', revision: 1 });
    const m = s.apply({
      type: 'membership',
      index: 3,
      term: 1,
      membership: { configs: [['n1']], learners: [], retired: [], nodes: {}, cluster: null },
    });
    expect(m).toEqual({ type: 'none', revision: 1 });
    expect(s.applied).toBe(3);
    expect(s.revision).toBe(1);
  });

  it('an entry that is not a command is a counted, logged no-op, never a crash', () => {
    const warnings: string[] = [];
    const s = new KvStore({ logger: { warn: (_fields, msg) => warnings.push(msg) } });
    const garbage = [new Uint8Array([0xc1]), bytes('not msgpack at all'), new Uint8Array(0)];
    for (const data of garbage) {
      expect(s.apply(normal(s.applied + 1, data))).toMatchObject({ type: 'invalid', revision: 0 });
    }
    // msgpack, but not a valid command: unknown type, empty key
    const p = new Packr({ useRecords: false });
    expect(s.apply(normal(4, p.pack({ type: 'rename', key: 'a' })))).toMatchObject({ type: 'invalid' });
    expect(s.apply(normal(5, p.pack({ type: 'delete', key: '' })))).toMatchObject({ type: 'invalid' });
    expect(s.applied).toBe(5);
    expect(s.undecodableEntries).toBe(5);
    expect(warnings).toHaveLength(5);
  });

  it('refuses an entry out of order (a host bug, not a command outcome)', () => {
    const s = new KvStore();
    expect(() => s.apply({ type: 'blank', index: 2, term: 1 })).toThrow(/expected 1/);
  });
});

describe('KvStore: compare-and-set', () => {
  it('expectModRevision 0 means "must not exist"', () => {
    const s = new KvStore();
    expect(put(s, 'k', 'a', 0)).toMatchObject({ ok: true, revision: 1 });
    const failed = put(s, 'k', 'b', 0);
    expect(failed).toMatchObject({ type: 'put', ok: false, revision: 1, current: { modRevision: 1 } });
    expect(text(s.get('k')!.value)).toBe('a');
    expect(s.revision).toBe(1);
  });

  it('succeeds on the current modRevision, fails on a stale one', () => {
    const s = new KvStore();
    put(s, 'k', 'a'); // 1
    put(s, 'k', 'b'); // 2
    expect(put(s, 'k', 'c', 1)).toMatchObject({ ok: false, revision: 2, current: { modRevision: 2 } });
    expect(put(s, 'k', 'c', 2)).toMatchObject({ ok: true, revision: 4, prev: { modRevision: 2 } });
    expect(put(s, 'missing', 'x', 7)).toEqual({ type: 'put', ok: false, revision: 4 });
  });
});

describe('KvStore: transactions', () => {
  const setup = () => {
    const s = new KvStore();
    put(s, 'a', 'apple'); // 1
    put(s, 'a', 'apricot'); // 2
    put(s, 'b', 'banana'); // 3
    return s;
  };
  type Case = [name: string, compare: Compare[], succeeds: boolean];
  const cases: Case[] = [
    ['modRevision =', [{ key: 'a', target: 'modRevision', op: '=', operand: 2 }], true],
    ['modRevision <', [{ key: 'a', target: 'modRevision', op: '<', operand: 2 }], false],
    ['createRevision =', [{ key: 'a', target: 'createRevision', op: '=', operand: 1 }], true],
    [
      'createRevision of a missing key is 0',
      [{ key: 'z', target: 'createRevision', op: '=', operand: 0 }],
      true,
    ],
    ['version >', [{ key: 'a', target: 'version', op: '>', operand: 1 }], true],
    ['version !=', [{ key: 'b', target: 'version', op: '!=', operand: 1 }], false],
    ['value =', [{ key: 'b', target: 'value', op: '=', operand: bytes('banana') }], true],
    ['value < (bytewise)', [{ key: 'a', target: 'value', op: '<', operand: bytes('b') }], true],
    ['value > (bytewise)', [{ key: 'a', target: 'value', op: '>', operand: bytes('apz') }], false],
    [
      'value on a missing key is false even with !=',
      [{ key: 'z', target: 'value', op: '!=', operand: bytes('x') }],
      false,
    ],
    ['exists = true', [{ key: 'a', target: 'exists', op: '=', operand: true }], true],
    ['exists = false on a missing key', [{ key: 'z', target: 'exists', op: '=', operand: false }], true],
    ['exists != true on a present key', [{ key: 'a', target: 'exists', op: '!=', operand: true }], false],
    [
      'all compares must hold',
      [
        { key: 'a', target: 'version', op: '=', operand: 2 },
        { key: 'b', target: 'version', op: '=', operand: 9 },
      ],
      false,
    ],
    ['no compares: success', [], true],
  ];
  it.each(cases)('%s', (_name, compare, expected) => {
    const s = setup();
    const r = run(s, {
      type: 'txn',
      compare,
      success: [{ type: 'put', key: 'won', value: bytes('yes') }],
      failure: [{ type: 'get', key: 'a' }],
    });
    expect(r).toMatchObject({ type: 'txn', succeeded: expected });
    expect(s.get('won') !== undefined).toBe(expected);
    expect(s.revision).toBe(expected ? 4 : 3);
  });

  it('runs ops in order at one revision; gets see earlier writes of the same txn', () => {
    const s = setup();
    const r = run(s, {
      type: 'txn',
      compare: [],
      success: [
        { type: 'put', key: 'c', value: bytes('cherry') },
        { type: 'get', key: 'c' },
        { type: 'delete', key: 'a' },
        { type: 'delete', key: 'nope' },
        { type: 'get', key: 'a' },
      ],
      failure: [],
    });
    expect(r).toMatchObject({
      type: 'txn',
      succeeded: true,
      revision: 4,
      responses: [
        { type: 'put' },
        { type: 'get', kv: { key: 'c', modRevision: 4, version: 1 } },
        { type: 'delete', prev: { key: 'a', version: 2 } },
        { type: 'delete' },
        { type: 'get' },
      ],
    });
    expect(r.type === 'txn' && r.responses[3]).not.toHaveProperty('prev');
    expect(s.get('c')!.modRevision).toBe(4);
  });

  it('a read-only txn leaves the revision alone', () => {
    const s = setup();
    const r = run(s, { type: 'txn', compare: [], success: [{ type: 'get', key: 'b' }], failure: [] });
    expect(r).toMatchObject({ revision: 3, responses: [{ type: 'get', kv: { key: 'b' } }] });
  });
});

describe('KvStore: range', () => {
  it('pages over many keys with `after` in key order', () => {
    const s = new KvStore();
    const keys = Array.from({ length: 2500 }, (_, i) => `item/${String((i * 7919) % 2500).padStart(5, '0')}`);
    for (const k of keys) put(s, k, k);
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const page = s.range({ prefix: 'item/', limit: 100, ...(after === undefined ? {} : { after }) });
      expect(page.revision).toBe(2500);
      seen.push(...page.kvs.map((kv) => kv.key));
      pages++;
      if (!page.more) break;
      after = page.kvs[page.kvs.length - 1]!.key;
    }
    expect(pages).toBe(25);
    expect(seen).toEqual([...keys].sort());
  });

  it('a prefix matches only keys that start with it', () => {
    const s = new KvStore();
    for (const k of ['a', 'a/', 'a/x', 'a/y/z', 'a0', 'a.', 'b/x', '`']) put(s, k, k);
    const keys = (prefix: string) => s.range({ prefix, limit: 100 }).kvs.map((kv) => kv.key);
    expect(keys('a/')).toEqual(['a/', 'a/x', 'a/y/z']);
    expect(keys('a')).toEqual(['a', 'a.', 'a/', 'a/x', 'a/y/z', 'a0']);
    expect(keys('')).toHaveLength(8);
    expect(keys('c')).toEqual([]);
  });

  it('`after` outside the prefix: before it starts at the prefix, after it is empty', () => {
    const s = new KvStore();
    for (const k of ['a/1', 'a/2', 'b/1']) put(s, k, k);
    expect(s.range({ prefix: 'a/', after: '0', limit: 10 }).kvs).toHaveLength(2);
    expect(s.range({ prefix: 'a/', after: 'a/1', limit: 10 }).kvs.map((kv) => kv.key)).toEqual(['a/2']);
    expect(s.range({ prefix: 'a/', after: 'a0', limit: 10 })).toMatchObject({ kvs: [], more: false });
  });

  it('`more` is exact at the page boundary', () => {
    const s = new KvStore();
    for (const k of ['p/1', 'p/2', 'q']) put(s, k, k);
    expect(s.range({ prefix: 'p/', limit: 2 }).more).toBe(false);
    expect(s.range({ prefix: 'p/', limit: 1 }).more).toBe(true);
  });

  it('orders keys by UTF-8 bytes, like etcd (not by UTF-16 units)', () => {
    const s = new KvStore();
    const keys = ['k/\u{1F600}', 'k/\uFF21', 'k/z', 'k/é'];
    for (const k of keys) put(s, k, k);
    const got = s.range({ prefix: 'k/', limit: 10 }).kvs.map((kv) => kv.key);
    expect(got).toEqual([...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
    expect(got).toEqual(['k/z', 'k/é', 'k/\uFF21', 'k/\u{1F600}']);
    expect(s.range({ prefix: 'k/', after: 'k/\uFF21', limit: 10 }).kvs.map((kv) => kv.key)).toEqual([
      'k/\u{1F600}',
    ]);
  });

  it('refuses a non-positive limit', () => {
    expect(() => new KvStore().range({ prefix: '', limit: 0 })).toThrow(ConfluxError);
  });
});
