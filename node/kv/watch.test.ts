import { describe, expect, it } from 'vitest';
import { CompactedError } from './errors.js';
import { KvStore, type KvStoreOptions } from './store.js';
import { bytes, del, put, run, settle } from './test-helpers.js';
import type { KeyFilter, WatchEvent } from './types.js';
import type { WatchClose } from './watch.js';

/** A watcher that records what it gets. */
function record(
  store: KvStore,
  filter: KeyFilter,
  from: number | undefined,
  opts: { bufferEvents?: number } = {},
) {
  const events: WatchEvent[] = [];
  const closes: WatchClose[] = [];
  const cancel = store.watch(filter, from, (e) => void events.push(e), {
    ...opts,
    onClose: (c) => closes.push(c),
  });
  const summary = () => events.map((e) => `${e.type} ${e.kv.key}@${e.revision}`);
  return { events, closes, cancel, summary };
}

const storeWith = (opts: KvStoreOptions = {}) => {
  const s = new KvStore(opts);
  put(s, 'a/1', 'x'); // 1
  put(s, 'b/1', 'y'); // 2
  put(s, 'a/1', 'z'); // 3
  del(s, 'a/1'); // 4
  return s;
};

describe('watch', () => {
  it('replays history from fromRevision (inclusive), then delivers live events', async () => {
    const s = storeWith();
    const w = record(s, { key: 'a/1' }, 3);
    expect(w.events).toEqual([]); // never synchronous: apply must not run consumer code
    await settle();
    expect(w.summary()).toEqual(['put a/1@3', 'delete a/1@4']);
    put(s, 'a/1', 'again'); // 5
    put(s, 'a/2', 'other key'); // 6
    await settle();
    expect(w.summary()).toEqual(['put a/1@3', 'delete a/1@4', 'put a/1@5']);
    const [put3, del4, put5] = w.events;
    expect(put3!.prevKv).toMatchObject({ modRevision: 1 });
    expect(del4).toMatchObject({
      kv: { key: 'a/1', modRevision: 4, version: 0 },
      prevKv: { modRevision: 3 },
    });
    expect(put5!.prevKv).toBeUndefined();
    expect(put5!.kv).toMatchObject({ createRevision: 5, version: 1 });
  });

  it('a prefix watch sees every key under the prefix and nothing else', async () => {
    const s = storeWith();
    const w = record(s, { prefix: 'a/' }, 1);
    put(s, 'a0', 'not under a/'); // 5
    put(s, 'a/2', 'v'); // 6
    await settle();
    expect(w.summary()).toEqual(['put a/1@1', 'put a/1@3', 'delete a/1@4', 'put a/2@6']);
  });

  it('without fromRevision, starts with the next revision', async () => {
    const s = storeWith();
    const w = record(s, { prefix: '' }, undefined);
    put(s, 'c', '1'); // 5
    await settle();
    expect(w.summary()).toEqual(['put c@5']);
  });

  it('a watch from a future revision skips everything before it', async () => {
    const s = storeWith();
    const w = record(s, { prefix: '' }, 7);
    await settle();
    for (let i = 5; i <= 8; i++) put(s, 'k', String(i));
    await settle();
    expect(w.summary()).toEqual(['put k@7', 'put k@8']);
  });

  it('delivers all events of a transaction at its one revision, in op order', async () => {
    const s = storeWith();
    const w = record(s, { prefix: '' }, 5);
    run(s, {
      type: 'txn',
      compare: [],
      success: [
        { type: 'put', key: 'x', value: bytes('1') },
        { type: 'delete', key: 'b/1' },
      ],
      failure: [],
    });
    await settle();
    expect(w.summary()).toEqual(['put x@5', 'delete b/1@5']);
  });

  it('cancel stops delivery and reports where to resume', async () => {
    const s = storeWith();
    const w = record(s, { prefix: '' }, undefined);
    put(s, 'c', '1'); // 5
    await settle();
    w.cancel();
    put(s, 'c', '2'); // 6
    await settle();
    expect(w.summary()).toEqual(['put c@5']);
    expect(w.closes).toEqual([{ reason: 'cancelled', nextRevision: 6 }]);
    expect(s.watcherCount).toBe(0);
  });

  it('waits for a slow (async) listener without blocking apply', async () => {
    const s = storeWith();
    const seen: number[] = [];
    let release: () => void = () => {};
    s.watch({ prefix: '' }, undefined, async (e) => {
      seen.push(e.revision);
      await new Promise<void>((r) => {
        release = r;
      });
    });
    for (let i = 0; i < 5; i++) put(s, `k${i}`, 'v'); // 5..9: apply returns at once
    await settle();
    expect(seen).toEqual([5]);
    for (let i = 0; i < 5; i++) {
      release();
      await settle();
    }
    expect(seen).toEqual([5, 6, 7, 8, 9]);
  });
});

describe('watch: history window', () => {
  it('keeps the last historyRevisions data revisions; older starts throw CompactedError', async () => {
    const s = new KvStore({ historyRevisions: 3 });
    for (let i = 1; i <= 6; i++) put(s, 'k', String(i)); // revisions 1..6, keeps 4..6
    expect(s.oldestRevision).toBe(4);
    let err: unknown;
    try {
      s.watch({ key: 'k' }, 3, () => {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CompactedError);
    expect(err).toMatchObject({ code: 'COMPACTED', oldestRevision: 4, details: { oldestRevision: 4 } });
    const w = record(s, { key: 'k' }, 4);
    await settle();
    expect(w.summary()).toEqual(['put k@4', 'put k@5', 'put k@6']);
    expect(() => s.eventsSince({ key: 'k' }, 2, 10)).toThrow(CompactedError);
  });

  it('bounds history by bytes too', () => {
    const s = new KvStore({ historyBytes: 3000 });
    for (let i = 0; i < 10; i++) run(s, { type: 'put', key: `k${i}`, value: new Uint8Array(1000) });
    expect(s.oldestRevision).toBeGreaterThan(7);
    expect(s.eventsSince({ prefix: '' }, s.oldestRevision, 100).events.length).toBeLessThanOrEqual(3);
  });

  it('closes a replaying watcher whose position the history dropped meanwhile', async () => {
    const s = new KvStore({ historyRevisions: 5 });
    for (let i = 1; i <= 5; i++) put(s, 'k', String(i));
    let release: () => void = () => {};
    const closes: WatchClose[] = [];
    s.watch(
      { key: 'k' },
      1,
      () =>
        new Promise<void>((r) => {
          release = r;
        }),
      { onClose: (c) => closes.push(c) },
    );
    await settle(); // delivering revision 1, blocked
    for (let i = 6; i <= 20; i++) put(s, 'k', String(i)); // history now 16..20
    for (let i = 0; i < 5 && closes.length === 0; i++) {
      release();
      await settle();
    }
    expect(closes).toEqual([{ reason: 'compacted', nextRevision: 6, oldestRevision: 16 }]);
  });
});

describe('watch: a slow consumer', () => {
  it('falls back to the history when its buffer overflows and misses nothing; others go on', async () => {
    const s = new KvStore();
    let release: () => void = () => {};
    const slow: number[] = [];
    const closes: WatchClose[] = [];
    s.watch(
      { prefix: '' },
      undefined,
      async (e) => {
        slow.push(e.revision);
        await new Promise<void>((r) => {
          release = r;
        });
      },
      { bufferEvents: 3, onClose: (c) => closes.push(c) },
    );
    const fast = record(s, { prefix: '' }, undefined);
    await settle(); // both caught up ("synced"): live events now go through their buffers
    put(s, 'k', '1'); // 1: taken by the slow listener, which blocks
    await settle();
    for (let i = 2; i <= 6; i++) put(s, 'k', String(i)); // 2..6: more than its buffer of 3
    await settle();
    expect(closes).toEqual([]);
    expect(fast.events.map((e) => e.revision)).toEqual([1, 2, 3, 4, 5, 6]);
    for (let i = 0; i < 6; i++) {
      release();
      await settle();
    }
    expect(slow).toEqual([1, 2, 3, 4, 5, 6]);
    put(s, 'k', '7'); // and it is live again
    await settle();
    release();
    await settle();
    expect(slow).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(s.watcherCount).toBe(2);
  });

  it('a long replay is not limited by the buffer (it reads history directly)', async () => {
    const s = new KvStore({ watchBufferEvents: 2 });
    for (let i = 0; i < 1000; i++) put(s, `k${i}`, 'v');
    const w = record(s, { prefix: 'k' }, 1);
    await settle();
    expect(w.events).toHaveLength(1000);
    expect(w.closes).toEqual([]);
  });

  it('a listener that throws is closed with the error, apply is unaffected', async () => {
    const s = new KvStore();
    const closes: WatchClose[] = [];
    s.watch(
      { prefix: '' },
      undefined,
      () => {
        throw new Error('boom');
      },
      { onClose: (c) => closes.push(c) },
    );
    expect(() => put(s, 'k', 'v')).not.toThrow();
    await settle();
    expect(closes[0]).toMatchObject({ reason: 'listener-error', nextRevision: 1 });
  });
});

describe('long-poll', () => {
  it('eventsSince returns what is available and where to continue', () => {
    const s = storeWith();
    expect(s.eventsSince({ prefix: 'a/' }, 1, 2)).toMatchObject({
      events: [{ revision: 1 }, { revision: 3 }],
      nextRevision: 4,
      revision: 4,
    });
    expect(s.eventsSince({ prefix: 'a/' }, 4, 10)).toMatchObject({
      events: [{ revision: 4 }],
      nextRevision: 5,
    });
    expect(s.eventsSince({ prefix: 'a/' }, 5, 10)).toEqual({ events: [], nextRevision: 5, revision: 4 });
  });

  it('waitForEvents resolves on the next matching revision', async () => {
    const s = storeWith();
    const p = s.waitForEvents({ prefix: 'c/' }, 5, 10);
    put(s, 'other', 'v'); // 5: does not match
    put(s, 'c/1', 'v'); // 6
    const page = await p;
    expect(page.events.map((e) => `${e.kv.key}@${e.revision}`)).toEqual(['c/1@6']);
    expect(page.nextRevision).toBe(7);
  });

  it('waitForEvents answers an empty page when the signal aborts (timeout)', async () => {
    const s = storeWith();
    const ac = new AbortController();
    const p = s.waitForEvents({ key: 'zzz' }, 5, 10, ac.signal);
    put(s, 'other', 'v'); // 5
    ac.abort();
    expect(await p).toEqual({ events: [], nextRevision: 6, revision: 5 });
    const timedOut = await s.waitForEvents({ key: 'zzz' }, 6, 10, AbortSignal.timeout(10));
    expect(timedOut.events).toEqual([]);
  });

  it('waitForEvents ignores revisions before the one asked for', async () => {
    const s = storeWith();
    const p = s.waitForEvents({ key: 'k' }, 6, 10);
    put(s, 'k', '5'); // 5: before 6
    put(s, 'k', '6'); // 6
    expect((await p).events.map((e) => e.revision)).toEqual([6]);
  });
});

describe('watch: restore', () => {
  it('closes live watchers, rejects old revisions, serves new ones', async () => {
    const s = storeWith();
    const w = record(s, { prefix: '' }, 1);
    await settle();
    const other = new KvStore();
    for (let i = 0; i < 10; i++) put(other, `o${i}`, 'v');
    const waiting = s.waitForEvents({ key: 'nothing' }, 5, 10).catch((err: unknown) => err);
    s.restore(
      {
        index: 10,
        term: 1,
        membership: { configs: [], learners: [], retired: [], nodes: {}, cluster: null },
        sizeBytes: 0,
        id: 'x',
      },
      other.snapshot().data,
    );
    await settle();
    expect(w.closes).toEqual([{ reason: 'restored', nextRevision: 5, oldestRevision: 11 }]);
    expect(await waiting).toBeInstanceOf(CompactedError);
    expect(() => s.watch({ prefix: '' }, 10, () => {})).toThrow(CompactedError);
    const after = record(s, { prefix: '' }, 11);
    put(s, 'new', 'v'); // 11
    await settle();
    expect(after.summary()).toEqual(['put new@11']);
  });
});
