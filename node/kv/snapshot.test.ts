import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SnapshotMeta } from '../raft/types.js';
import type { Compare, KvCommand, Op } from './commands.js';
import { SnapshotFormatError } from './errors.js';
import { KvStore } from './store.js';
import { blank, del, put, run, settle } from './test-helpers.js';

const meta = (index: number): SnapshotMeta => ({
  index,
  term: 1,
  membership: { configs: [['n1']], learners: [], retired: [], nodes: {}, cluster: null },
  sizeBytes: 0,
  id: `snap-${index}`,
});

/** Everything observable through queries. */
function dump(s: KvStore) {
  return {
    applied: s.applied,
    revision: s.revision,
    size: s.size,
    all: s.range({ prefix: '', limit: 1_000_000 }),
  };
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

async function* rechunk(data: Uint8Array, cuts: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    yield data.subarray(at, Math.max(at, cut));
    at = Math.max(at, cut);
  }
  yield data.subarray(at);
}

// Random command sequences over a small key space, including keys whose UTF-16 and UTF-8 orders
// differ, so restore has to rebuild the index in the same order, and keys that begin with a byte
// order mark next to the same key without one (a decoder that drops the mark makes them collide).
const KEYS = ['a', 'a/1', 'a/2', 'a0', 'b', 'é', '\uFF21', '\u{1F600}', 'k'.repeat(40), '\uFEFFa', '\uFEFF'];
const key = fc.constantFrom(...KEYS);
const value = fc.uint8Array({ maxLength: 40 });
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ type: fc.constant('put' as const), key, value }),
  fc.record({ type: fc.constant('delete' as const), key }),
  fc.record({ type: fc.constant('get' as const), key }),
);
const compare: fc.Arbitrary<Compare> = fc.oneof(
  fc.record({
    key,
    target: fc.constantFrom('modRevision' as const, 'createRevision' as const, 'version' as const),
    op: fc.constantFrom('=' as const, '!=' as const, '<' as const, '>' as const),
    operand: fc.integer({ min: 0, max: 40 }),
  }),
  fc.record({
    key,
    target: fc.constant('value' as const),
    op: fc.constantFrom('=' as const, '<' as const),
    operand: value,
  }),
  fc.record({
    key,
    target: fc.constant('exists' as const),
    op: fc.constantFrom('=' as const, '!=' as const),
    operand: fc.boolean(),
  }),
);
const command: fc.Arbitrary<KvCommand | null> = fc.oneof(
  { arbitrary: fc.record({ type: fc.constant('put' as const), key, value }), weight: 4 },
  {
    arbitrary: fc.record({
      type: fc.constant('put' as const),
      key,
      value,
      expectModRevision: fc.integer({ min: 0, max: 40 }),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ type: fc.constant('delete' as const), key }), weight: 2 },
  {
    arbitrary: fc.record({
      type: fc.constant('txn' as const),
      compare: fc.array(compare, { maxLength: 3 }),
      success: fc.array(op, { maxLength: 4 }),
      failure: fc.array(op, { maxLength: 4 }),
    }),
    weight: 2,
  },
  { arbitrary: fc.constant(null), weight: 1 }, // a blank entry
);

const applyAll = (s: KvStore, cmds: (KvCommand | null)[]) => cmds.map((c) => (c ? run(s, c) : blank(s)));

describe('snapshot and restore', () => {
  it('restore gives identical state, and both stores then apply the same log identically', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(command, { maxLength: 60 }),
        fc.array(command, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        async (before, after, cuts) => {
          const a = new KvStore();
          applyAll(a, before);
          const snap = a.snapshot();
          expect(snap.index).toBe(a.applied);

          const b = new KvStore();
          b.restore(meta(snap.index), snap.data);
          expect(dump(b)).toEqual(dump(a));
          for (const k of [...KEYS, 'zzz']) expect(b.get(k)).toEqual(a.get(k));
          expect(applyAll(b, after)).toEqual(applyAll(a, after));
          expect(dump(b)).toEqual(dump(a));

          // The stream is the same bytes; a stream restore, however chunked, the same state.
          const c = new KvStore({ snapshotChunkBytes: 48 });
          c.restore(meta(snap.index), snap.data);
          const streamed = Buffer.concat(await collect(c.snapshotStream()));
          expect(streamed).toEqual(Buffer.from(snap.data));
          const d = new KvStore();
          await d.restoreFromStream(
            rechunk(
              snap.data,
              cuts.map((n) => n % (snap.data.length + 1)),
            ),
          );
          expect(dump(d)).toEqual(dump(c));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('keys of any Unicode text come back byte for byte, a leading byte order mark included', () => {
    const anyKey = fc.oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }),
      fc.string({ unit: 'binary', maxLength: 12 }).map((k) => `\uFEFF${k}`),
      fc.constantFrom('\uFEFF', '\uFEFF\uFEFF', '\0', 'e\u0301', '\u{10FFFF}'),
    );
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(anyKey, value), { selector: ([k]) => k, maxLength: 30 }),
        (pairs) => {
          const a = new KvStore();
          for (const [k, v] of pairs) run(a, { type: 'put', key: k, value: v });
          const b = new KvStore();
          b.restore(meta(a.applied), a.snapshot().data);
          expect(dump(b)).toEqual(dump(a));
          for (const [k, v] of pairs) expect(b.get(k)?.value).toEqual(v);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('an empty store round-trips', () => {
    const s = new KvStore();
    blank(s);
    const b = new KvStore();
    b.restore(meta(1), s.snapshot().data);
    expect(dump(b)).toEqual(dump(s));
  });

  it('stream chunks respect the chunk size and hold values larger than a chunk', async () => {
    const s = new KvStore({ snapshotChunkBytes: 1000 });
    for (let i = 0; i < 20; i++) run(s, { type: 'put', key: `big/${i}`, value: randomBytes(2500) });
    const stream = s.snapshotStream();
    expect(stream).toMatchObject({ applied: 20, revision: 20, keyCount: 20 });
    const chunks = await collect(stream);
    expect(chunks.length).toBeGreaterThan(50);
    for (const c of chunks) expect(c.byteLength).toBeLessThanOrEqual(1000);
    expect(Buffer.concat(chunks)).toEqual(Buffer.from(s.snapshot().data));
  });

  it('a stream is the state when it was asked for, even if writes happen while it is read', async () => {
    const s = new KvStore({ snapshotChunkBytes: 64 });
    for (let i = 0; i < 50; i++) put(s, `k${i}`, `v${i}`);
    const expected = Buffer.from(s.snapshot().data);
    const chunks: Uint8Array[] = [];
    let i = 0;
    for await (const c of s.snapshotStream()) {
      chunks.push(c);
      put(s, `k${i++ % 60}`, 'changed');
    }
    expect(Buffer.concat(chunks)).toEqual(expected);
  });

  it('snapshotAsync lets the event loop run and encodes the state of its call, whatever is applied meanwhile', async () => {
    const s = new KvStore();
    for (let i = 0; i < 3000; i++) put(s, `k${i}`, `v${i}`);
    const expected = Buffer.from(s.snapshot().data);
    const applied = s.applied;
    let done = false;
    const encoding = s.snapshotAsync(0).finally(() => {
      done = true;
    });
    let turns = 0;
    // Between slices: overwrite, delete, delete and recreate, and add keys.
    for (let i = 0; !done; i++) {
      await settle();
      turns++;
      put(s, `k${i}`, 'changed');
      del(s, `k${2999 - i}`);
      put(s, `k${1000 + i}`, 'recreated');
      put(s, `new${i}`, 'added');
    }
    const { index, data } = await encoding;
    expect(turns).toBeGreaterThan(2);
    expect(index).toBe(applied);
    expect(Buffer.from(data)).toEqual(expected);
    // Closed captures cost writes nothing more: a later snapshot is the state now.
    const now = Buffer.from(s.snapshot().data);
    expect(Buffer.from((await s.snapshotAsync(0)).data)).toEqual(now);
  });

  it('restoreAsync lets the event loop run and gives the state restore gives', async () => {
    const a = new KvStore();
    for (let i = 0; i < 5000; i++) put(a, `key/${i}`, 'x'.repeat(100));
    const { index, data } = a.snapshot();
    const b = new KvStore();
    let turns = 0;
    let done = false;
    const restoring = b.restoreAsync(meta(index), data, 0).finally(() => {
      done = true;
    });
    while (!done) {
      await settle();
      turns++;
    }
    await restoring;
    expect(turns).toBeGreaterThan(1);
    expect(dump(b)).toEqual(dump(a));
  });

  it('restoreAsync refuses a corrupt snapshot and leaves the store untouched', async () => {
    const a = new KvStore();
    for (let i = 0; i < 100; i++) put(a, `k${i}`, `v${i}`);
    const { index, data } = a.snapshot();
    const b = new KvStore();
    put(b, 'mine', 'kept');
    const before = dump(b);
    const bad = Buffer.from(data);
    bad[bad.length - 1] = (bad[bad.length - 1]! + 1) % 256;
    await expect(b.restoreAsync(meta(index), bad, 0)).rejects.toThrow(SnapshotFormatError);
    await expect(b.restoreAsync(meta(index + 1), data, 0)).rejects.toThrow(/expected/);
    expect(dump(b)).toEqual(before);
  });

  it('restored values own their bytes', () => {
    const s = new KvStore();
    put(s, 'k', 'hello');
    const data = s.snapshot().data;
    const b = new KvStore();
    b.restore(meta(1), data);
    data.fill(0);
    expect(Buffer.from(b.get('k')!.value).toString()).toBe('hello');
  });
});

describe('snapshot: corrupt data is refused', () => {
  const sample = () => {
    const s = new KvStore();
    put(s, 'a/1', 'one');
    put(s, 'a/2', 'two');
    run(s, { type: 'put', key: '\u{1F600}', value: new Uint8Array([0, 255]) });
    blank(s);
    return s;
  };
  const problem = (f: () => void) => {
    try {
      f();
      return 'accepted';
    } catch (err) {
      if (err instanceof SnapshotFormatError) return err.problem;
      throw err;
    }
  };

  it('every single flipped byte, and the store is left untouched', () => {
    const { data } = sample().snapshot();
    const target = new KvStore();
    put(target, 'mine', 'untouched');
    const before = dump(target);
    for (let i = 0; i < data.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = Uint8Array.from(data);
        bad[i]! ^= mask;
        expect(
          problem(() => target.restore(meta(4), bad)),
          `byte ${i} ^ ${mask}`,
        ).not.toBe('accepted');
      }
    }
    expect(dump(target)).toEqual(before);
  });

  it('every truncation', () => {
    const { data } = sample().snapshot();
    for (let n = 0; n < data.length; n++) {
      expect(
        problem(() => new KvStore().restore(meta(4), data.subarray(0, n))),
        `length ${n}`,
      ).toBe('truncated');
    }
  });

  it('names the problem: magic, version, checksum, trailing bytes, index mismatch', () => {
    const { data } = sample().snapshot();
    const patched = (at: number, byte: number) => {
      const b = Uint8Array.from(data);
      b[at] = byte;
      return b;
    };
    const restore =
      (b: Uint8Array, index = 4) =>
      () =>
        new KvStore().restore(meta(index), b);
    expect(problem(restore(patched(0, 0x00)))).toBe('magic');
    expect(problem(restore(patched(4, 2)))).toBe('version');
    expect(problem(restore(patched(data.length - 10, data[data.length - 10]! ^ 1)))).toBe('checksum');
    expect(problem(restore(Buffer.concat([data, new Uint8Array([0])])))).toBe('trailing-bytes');
    expect(problem(restore(data, 5))).toBe('index-mismatch');
    expect(() => new KvStore().restore(meta(4), patched(4, 2))).toThrow(
      /format version 2, this node reads version 1/,
    );
  });

  it('restoreFromStream refuses a corrupt stream and leaves the store untouched', async () => {
    const { data } = sample().snapshot();
    const bad = Uint8Array.from(data);
    bad[40]! ^= 0x10;
    const target = new KvStore();
    put(target, 'mine', 'v');
    await expect(target.restoreFromStream(rechunk(bad, [7, 50]))).rejects.toBeInstanceOf(SnapshotFormatError);
    await expect(target.restoreFromStream(rechunk(data.subarray(0, 60), [10]))).rejects.toMatchObject({
      problem: 'truncated',
    });
    expect(target.get('mine')).toBeDefined();
    expect(target.applied).toBe(1);
  });
});
