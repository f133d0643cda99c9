// The key-value data itself: a Map for point lookups plus a SortedKeys index for ordered ranges,
// both keyed by sort keys (keys.ts: native order = UTF-8 byte order).
// Invariant: the index holds exactly the Map's keys. Only `put` and `delete` change either, and
// both record a WatchEvent, so every change of data is visible to watchers.
//
// Memory: the Map holds one compact, immutable StoredValue per key, not a KeyValue. A KeyValue
// costs an object plus a Uint8Array view of its value (about 96 bytes on its own in V8, more than
// a small value itself); a StoredValue is one object of five fields that names its bytes by
// (buffer, offset and length packed into one small integer). The key is the Map's key itself (the
// sort key, mapped back by fromSortKey: the same string for keys without high code units), so no
// key string is duplicated. KeyValues are made when asked for (get, range, snapshots, events);
// they are equal field by field whenever they describe the same StoredValue.

import { ConfluxError } from '../errors.js';
import { kvAnswerBytes } from './answer-size.js';
import { fromSortKey, toSortKey, utf8Bytes } from './keys.js';
import { SortedKeys } from './sorted-index.js';
import type { KeyValue, RangeQuery, WatchEvent } from './types.js';
import { ownValue } from './value-slab.js';

const EMPTY = new Uint8Array(0);

/** Bits of `at` that hold the length of a value packed as (offset, length). */
const LENGTH_BITS = 11;
const MAX_PACKED_LENGTH = (1 << LENGTH_BITS) - 1;
/** Offsets up to 2^19 keep `at` below 2^30: a small integer in V8 on every platform. */
const MAX_PACKED_OFFSET = (1 << 19) - 1;

/**
 * One key's current value and revisions. `at` ≥ 0: the value is `length` bytes at `offset` of the
 * ArrayBuffer `bytes`, with at = offset << LENGTH_BITS | length (small values in slabs). `at` < 0:
 * `bytes` is the value's Uint8Array itself (large or empty values, or unusual views).
 */
class StoredValue {
  constructor(
    readonly bytes: ArrayBufferLike | Uint8Array,
    readonly at: number,
    readonly createRevision: number,
    readonly modRevision: number,
    readonly version: number,
  ) {}

  static of(value: Uint8Array, createRevision: number, modRevision: number, version: number): StoredValue {
    const n = value.byteLength;
    const offset = value.byteOffset;
    if (n > 0 && n <= MAX_PACKED_LENGTH && offset <= MAX_PACKED_OFFSET) {
      return new StoredValue(value.buffer, (offset << LENGTH_BITS) | n, createRevision, modRevision, version);
    }
    return new StoredValue(value, -1, createRevision, modRevision, version);
  }

  value(): Uint8Array {
    const at = this.at;
    if (at < 0) return this.bytes as Uint8Array;
    return new Uint8Array(this.bytes as ArrayBufferLike, at >>> LENGTH_BITS, at & MAX_PACKED_LENGTH);
  }

  /** The KeyValue of this value under `sortKey` (a new object, equal to any other made from it). */
  toKeyValue(sortKey: string): KeyValue {
    return {
      key: fromSortKey(sortKey),
      value: this.value(),
      createRevision: this.createRevision,
      modRevision: this.modRevision,
      version: this.version,
    };
  }
}

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
 * A capture of the whole state in key order: iterable any number of times, each time giving the
 * same KeyValues (made one by one, so a capture of a million keys costs two arrays of references).
 */
class Capture implements Iterable<KeyValue> {
  constructor(
    private readonly sortKeys: readonly string[],
    private readonly values: readonly StoredValue[],
  ) {}

  *[Symbol.iterator](): Iterator<KeyValue> {
    const { sortKeys, values } = this;
    for (let i = 0; i < sortKeys.length; i++) yield values[i]!.toKeyValue(sortKeys[i]!);
  }
}

/**
 * A capture that costs a copy of the key index, not a pass over a million values: values are read
 * as iteration reaches them, and a write to a key the capture holds first hands it the value it
 * replaces (`keep`), so iteration sees the state of the moment of capture however long it takes
 * (the snapshot encoder yields to the event loop between slices, docs/ARCHITECTURE.md §5). Until
 * `close`, every write pays one lookup per open capture, and replaced values stay alive.
 */
export class LiveCapture implements Iterable<KeyValue> {
  private readonly kept = new Map<string, StoredValue>();

  constructor(
    private readonly chunks: readonly (readonly string[])[],
    private readonly map: ReadonlyMap<string, StoredValue>,
    readonly size: number,
    private readonly onClose: (c: LiveCapture) => void,
  ) {}

  /** `sk` is about to change: remember what it held at the moment of capture (the first time only). */
  keep(sk: string, old: StoredValue): void {
    if (!this.kept.has(sk)) this.kept.set(sk, old);
  }

  *[Symbol.iterator](): Iterator<KeyValue> {
    const { kept, map } = this;
    for (const chunk of this.chunks) {
      for (let j = 0; j < chunk.length; j++) {
        const sk = chunk[j]!;
        const stored = kept.get(sk) ?? map.get(sk);
        // A captured key is in the map or was replaced or deleted after keep() saw its value.
        if (!stored) throw new Error(`capture lost the value of a key it holds`);
        yield stored.toKeyValue(sk);
      }
    }
  }

  close(): void {
    this.kept.clear();
    this.onClose(this);
  }
}

export class KvState {
  private readonly captures = new Set<LiveCapture>();

  private constructor(
    private readonly map: Map<string, StoredValue>,
    private readonly index: SortedKeys,
    /** Invariant: the sum of storedBytes over every key, kept by put, delete and the builder. */
    private storedTotal: number,
  ) {}

  static empty(): KvState {
    return new KvState(new Map(), new SortedKeys(), 0);
  }

  /**
   * A state built one KeyValue at a time, in strictly increasing key order (checked by `build`):
   * a snapshot being decoded goes straight into the compact form, without an array of KeyValues.
   */
  static builder(): { add(kv: KeyValue): void; build(): KvState } {
    const map = new Map<string, StoredValue>();
    const sortKeys: string[] = [];
    let bytes = 0;
    return {
      add(kv: KeyValue): void {
        const sk = toSortKey(kv.key);
        map.set(sk, StoredValue.of(kv.value, kv.createRevision, kv.modRevision, kv.version));
        sortKeys.push(sk);
        bytes += storedBytes(kv.key, kv.value.byteLength);
      },
      build: () => new KvState(map, SortedKeys.fromSorted(sortKeys), bytes),
    };
  }

  get size(): number {
    return this.map.size;
  }

  /** Stored bytes of every key (see storedBytes): what the storage quota measures. */
  get bytes(): number {
    return this.storedTotal;
  }

  /** Byte length of the value stored under `key`, or undefined: no KeyValue is made. */
  valueBytes(key: string): number | undefined {
    const stored = this.map.get(toSortKey(key));
    if (!stored) return undefined;
    return stored.at < 0 ? (stored.bytes as Uint8Array).byteLength : stored.at & MAX_PACKED_LENGTH;
  }

  get(key: string): KeyValue | undefined {
    const sk = toSortKey(key);
    return this.map.get(sk)?.toKeyValue(sk);
  }

  /**
   * Every KeyValue in key order: a consistent capture (stored values are immutable, a write
   * replaces them), iterable more than once; later writes do not change it.
   */
  capture(): Iterable<KeyValue> {
    const sortKeys: string[] = new Array(this.map.size);
    const values: StoredValue[] = new Array(this.map.size);
    let i = 0;
    this.index.forEach((sk) => {
      sortKeys[i] = sk;
      values[i++] = this.map.get(sk)!;
    });
    return new Capture(sortKeys, values);
  }

  /** See LiveCapture: close it when done, or every later write keeps feeding it. */
  captureLive(): LiveCapture {
    const capture = new LiveCapture(this.index.copyChunks(), this.map, this.map.size, (c) =>
      this.captures.delete(c),
    );
    this.captures.add(capture);
    return capture;
  }

  private keepForCaptures(sk: string, old: StoredValue | undefined): void {
    if (old) for (const c of this.captures) c.keep(sk, old);
  }

  /** Write `value` at `revision`; records the event. Returns the previous KeyValue. */
  put(key: string, value: Uint8Array, revision: number, events: WatchEvent[]): KeyValue | undefined {
    const sk = toSortKey(key);
    const stored = this.map.get(sk);
    const prev = stored?.toKeyValue(sk);
    const kv: KeyValue = {
      key,
      // Applied commands' values are views of their entry (KvStore.apply): the store copies them.
      value: ownValue(value),
      createRevision: prev ? prev.createRevision : revision,
      modRevision: revision,
      version: prev ? prev.version + 1 : 1,
    };
    if (this.captures.size > 0) this.keepForCaptures(sk, stored);
    this.map.set(sk, StoredValue.of(kv.value, kv.createRevision, kv.modRevision, kv.version));
    if (!prev) this.index.insert(sk);
    this.storedTotal +=
      storedBytes(key, kv.value.byteLength) - (prev ? storedBytes(key, prev.value.byteLength) : 0);
    events.push(prev ? { type: 'put', kv, prevKv: prev, revision } : { type: 'put', kv, revision });
    return prev;
  }

  /** Delete at `revision`; records the event when the key existed. Returns what was deleted. */
  delete(key: string, revision: number, events: WatchEvent[]): KeyValue | undefined {
    const sk = toSortKey(key);
    const stored = this.map.get(sk);
    const prev = stored?.toKeyValue(sk);
    if (!prev) return undefined;
    if (this.captures.size > 0) this.keepForCaptures(sk, stored);
    this.map.delete(sk);
    this.index.delete(sk);
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
      const kv = this.map.get(sk)!.toKeyValue(sk);
      bytes += kvAnswerBytes(kv);
      if (bytes > maxBytes && kvs.length > 0) return { kvs, more: true };
      kvs.push(kv);
    }
    return { kvs, more: false };
  }
}
