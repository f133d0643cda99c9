// The key-value data itself: a Map for point lookups plus a SortedKeys index for ordered ranges,
// both keyed by sort keys (keys.ts: native order = UTF-8 byte order).
// Invariant: the index holds exactly the Map's keys. Only `put` and `delete` change either, and
// both record a WatchEvent, so every change of data is visible to watchers.
//
// Memory: the Map maps each sort key to a slot number (a small integer, no object), and the slot
// indexes KeyColumns (key-columns.ts): the revisions and the value's location in typed arrays. So
// a key costs its string, one Map entry, one index slot and about 36 bytes of columns, and no
// object of its own (docs/performance.md, "Store layout"). The key is the Map's key itself (the
// sort key, mapped back by fromSortKey: the same string for keys without high code units), so no
// key string is duplicated. KeyValues are made when asked for (get, range, snapshots, events);
// they are equal field by field whenever they describe the same slot state.

import { ConfluxError } from '../errors.js';
import { kvAnswerBytes } from './answer-size.js';
import { KeyColumns } from './key-columns.js';
import { fromSortKey, toSortKey, utf8Bytes } from './keys.js';
import { SortedKeys } from './sorted-index.js';
import type { KeyValue, RangeQuery, WatchEvent } from './types.js';
import { ownValue } from './value-slab.js';

const EMPTY = new Uint8Array(0);

/** Bookkeeping bytes counted per key on top of its key and value (index slot, record, revisions). */
export const KEY_OVERHEAD_BYTES = 128;

/**
 * What one key counts toward the stored bytes (`KvState.bytes`, the storage quota): its UTF-8
 * bytes, its value's bytes and a fixed overhead. A function of the key and value only, so every
 * node that applies the same log counts the same.
 */
export const storedBytes = (key: string, valueBytes: number): number =>
  utf8Bytes(key) + valueBytes + KEY_OVERHEAD_BYTES;

/**
 * A capture that costs a copy of the key index, not a pass over a million values: values are read
 * as iteration reaches them, and a write to a key the capture holds first hands it the KeyValue it
 * replaces (`keep`), so iteration sees the state of the moment of capture however long it takes
 * (the snapshot encoder yields to the event loop between slices, docs/ARCHITECTURE.md §5). Until
 * `close`, every write pays one lookup per open capture, and replaced values stay alive. Iterable
 * any number of times, each time giving equal KeyValues.
 */
export class LiveCapture implements Iterable<KeyValue> {
  private readonly kept = new Map<string, KeyValue>();
  private slots: Int32Array | undefined;

  constructor(
    private readonly chunks: readonly (readonly string[])[],
    private readonly map: ReadonlyMap<string, number>,
    private readonly columns: KeyColumns,
    readonly size: number,
    private readonly onClose: (c: LiveCapture) => void,
  ) {}

  /** `sk` is about to change: remember what it held at the moment of capture (the first time only). */
  keep(sk: string, old: KeyValue): void {
    if (!this.kept.has(sk)) this.kept.set(sk, old);
  }

  *[Symbol.iterator](): Iterator<KeyValue> {
    const { kept, map, columns } = this;
    // The slot of each captured key, found on the first pass (a Map lookup, mostly a cache miss)
    // and reused by later ones (the encoders pass twice: sizing, then writing). A cached slot stays
    // the key's until the key is written, and a write first puts the key in `kept`.
    if (!this.slots) this.slots = new Int32Array(this.size).fill(-1);
    const slots = this.slots;
    let i = 0;
    for (const chunk of this.chunks) {
      for (let j = 0; j < chunk.length; j++, i++) {
        const sk = chunk[j]!;
        const old = kept.size === 0 ? undefined : kept.get(sk);
        if (old) {
          yield old;
          continue;
        }
        let slot = slots[i]!;
        if (slot < 0) {
          const found = map.get(sk);
          // A captured key is in the map or was replaced or deleted after keep() saw its value.
          if (found === undefined) throw new Error(`capture lost the value of a key it holds`);
          slots[i] = slot = found;
        }
        yield columns.toKeyValue(slot, fromSortKey(sk));
      }
    }
  }

  close(): void {
    this.kept.clear();
    this.slots = undefined;
    this.onClose(this);
  }
}

export class KvState {
  private readonly captures = new Set<LiveCapture>();

  private constructor(
    /** Sort key → slot in `columns`. */
    private readonly map: Map<string, number>,
    private readonly index: SortedKeys,
    private readonly columns: KeyColumns,
    /** Invariant: the sum of storedBytes over every key, kept by put, delete and the builder. */
    private storedTotal: number,
  ) {}

  static empty(): KvState {
    return new KvState(new Map(), new SortedKeys(), new KeyColumns(), 0);
  }

  /**
   * A state built one KeyValue at a time, in strictly increasing key order (checked by `build`):
   * a snapshot being decoded goes straight into the compact form, without an array of KeyValues.
   */
  static builder(): { add(kv: KeyValue): void; reserve(keys: number): void; build(): KvState } {
    const map = new Map<string, number>();
    const columns = new KeyColumns();
    const sortKeys: string[] = [];
    let bytes = 0;
    return {
      add(kv: KeyValue): void {
        const sk = toSortKey(kv.key);
        map.set(sk, columns.add(kv.value, kv.createRevision, kv.modRevision, kv.version));
        sortKeys.push(sk);
        bytes += storedBytes(kv.key, kv.value.byteLength);
      },
      /** Size the columns for `keys` keys at once: no doubling copies while records arrive. */
      reserve: (keys: number) => columns.reserve(keys),
      build: () => {
        const index = SortedKeys.fromSorted(sortKeys);
        columns.trim();
        return new KvState(map, index, columns, bytes);
      },
    };
  }

  get size(): number {
    return this.map.size;
  }

  /** Stored bytes of every key (see storedBytes): what the storage quota measures. */
  get bytes(): number {
    return this.storedTotal;
  }

  /** Bytes of the metadata columns (capacity): for measurements of the layout. */
  get columnBytes(): number {
    return this.columns.columnBytes;
  }

  /** Byte length of the value stored under `key`, or undefined: no KeyValue is made. */
  valueBytes(key: string): number | undefined {
    const slot = this.map.get(toSortKey(key));
    return slot === undefined ? undefined : this.columns.valueBytes(slot);
  }

  get(key: string): KeyValue | undefined {
    const slot = this.map.get(toSortKey(key));
    return slot === undefined ? undefined : this.columns.toKeyValue(slot, key);
  }

  /**
   * Every KeyValue in key order as of now, later writes not changing it (see LiveCapture): close
   * it when done, or every later write keeps feeding it.
   */
  captureLive(): LiveCapture {
    const capture = new LiveCapture(this.index.copyChunks(), this.map, this.columns, this.map.size, (c) =>
      this.captures.delete(c),
    );
    this.captures.add(capture);
    return capture;
  }

  private keepForCaptures(sk: string, old: KeyValue): void {
    for (const c of this.captures) c.keep(sk, old);
  }

  /** Write `value` at `revision`; records the event. Returns the previous KeyValue. */
  put(key: string, value: Uint8Array, revision: number, events: WatchEvent[]): KeyValue | undefined {
    const sk = toSortKey(key);
    const slot = this.map.get(sk);
    const columns = this.columns;
    // Applied commands' values are views of their entry (KvStore.apply): the store copies them.
    const owned = ownValue(value);
    let kv: KeyValue;
    let prev: KeyValue | undefined;
    if (slot === undefined) {
      kv = { key, value: owned, createRevision: revision, modRevision: revision, version: 1 };
      this.map.set(sk, columns.add(owned, revision, revision, 1));
      this.index.insert(sk);
      this.storedTotal += storedBytes(key, owned.byteLength);
    } else {
      prev = columns.toKeyValue(slot, key);
      if (this.captures.size > 0) this.keepForCaptures(sk, prev);
      kv = {
        key,
        value: owned,
        createRevision: prev.createRevision,
        modRevision: revision,
        version: prev.version + 1,
      };
      columns.set(slot, owned, kv.createRevision, revision, kv.version);
      this.storedTotal += storedBytes(key, owned.byteLength) - storedBytes(key, prev.value.byteLength);
    }
    events.push(prev ? { type: 'put', kv, prevKv: prev, revision } : { type: 'put', kv, revision });
    return prev;
  }

  /** Delete at `revision`; records the event when the key existed. Returns what was deleted. */
  delete(key: string, revision: number, events: WatchEvent[]): KeyValue | undefined {
    const sk = toSortKey(key);
    const slot = this.map.get(sk);
    if (slot === undefined) return undefined;
    const prev = this.columns.toKeyValue(slot, key);
    if (this.captures.size > 0) this.keepForCaptures(sk, prev);
    this.map.delete(sk);
    this.index.delete(sk);
    this.columns.release(slot);
    this.storedTotal -= storedBytes(key, prev.value.byteLength);
    const tombstone: KeyValue = { key, value: EMPTY, createRevision: 0, modRevision: revision, version: 0 };
    events.push({ type: 'delete', kv: tombstone, prevKv: prev, revision });
    return prev;
  }

  /**
   * Up to `limit` KeyValues whose key starts with `prefix`, after `after` (exclusive) when given,
   * in key order, and whether more follow. Under UTF-8 byte order the keys with a prefix are one
   * contiguous run starting at the prefix, so the scan stops at the first key without it. With
   * `maxBytes` the page also stops before the key-value that would take its answer size
   * (kvAnswerBytes) past it, but always holds at least one, so paging always progresses.
   */
  range(q: RangeQuery): { kvs: KeyValue[]; more: boolean } {
    if (!Number.isInteger(q.limit) || q.limit < 1) {
      throw new ConfluxError('INVALID_REQUEST', `range limit must be a positive integer, got ${q.limit}`);
    }
    const prefix = toSortKey(q.prefix);
    const after = q.after === undefined ? undefined : toSortKey(q.after);
    const keys =
      after !== undefined && after >= prefix ? this.index.from(after, true) : this.index.from(prefix);
    const maxBytes = q.maxBytes ?? Number.POSITIVE_INFINITY;
    const kvs: KeyValue[] = [];
    let bytes = 0;
    for (const sk of keys) {
      if (!sk.startsWith(prefix)) break;
      if (kvs.length === q.limit) return { kvs, more: true };
      const kv = this.columns.toKeyValue(this.map.get(sk)!, fromSortKey(sk));
      bytes += kvAnswerBytes(kv);
      if (bytes > maxBytes && kvs.length > 0) return { kvs, more: true };
      kvs.push(kv);
    }
    return { kvs, more: false };
  }
}
