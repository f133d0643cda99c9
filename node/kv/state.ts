// The key-value data itself: a Map for point lookups plus a SortedKeys index for ordered ranges,
// both keyed by sort keys (keys.ts: native order = UTF-8 byte order); KeyValue.key is the key.
// Invariant: the index holds exactly the Map's keys. Only `put` and `delete` change either, and
// both record a WatchEvent, so every change of data is visible to watchers.

import { ConfluxError } from '../errors.js';
import { toSortKey } from './keys.js';
import { SortedKeys } from './sorted-index.js';
import type { KeyValue, RangeQuery, WatchEvent } from './types.js';
import { ownValue } from './value-slab.js';

const EMPTY = new Uint8Array(0);

export class KvState {
  private constructor(
    private readonly map: Map<string, KeyValue>,
    private readonly index: SortedKeys,
  ) {}

  static empty(): KvState {
    return new KvState(new Map(), new SortedKeys());
  }

  /** From KeyValues already in strictly increasing key order (a decoded snapshot). */
  static fromSorted(kvs: readonly KeyValue[]): KvState {
    const map = new Map<string, KeyValue>();
    const sortKeys = kvs.map((kv) => toSortKey(kv.key));
    for (let i = 0; i < kvs.length; i++) map.set(sortKeys[i]!, kvs[i]!);
    return new KvState(map, SortedKeys.fromSorted(sortKeys));
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): KeyValue | undefined {
    return this.map.get(toSortKey(key));
  }

  /** Every KeyValue in key order, as an array: a consistent capture, since KeyValues are immutable. */
  toArray(): KeyValue[] {
    const out: KeyValue[] = new Array(this.map.size);
    let i = 0;
    this.index.forEach((sk) => {
      out[i++] = this.map.get(sk)!;
    });
    return out;
  }

  /** Write `value` at `revision`; records the event. Returns the previous KeyValue. */
  put(key: string, value: Uint8Array, revision: number, events: WatchEvent[]): KeyValue | undefined {
    const sk = toSortKey(key);
    const prev = this.map.get(sk);
    const kv: KeyValue = {
      key,
      // Decoded commands own their values (commands.ts copies them out of the entry).
      value: ownValue(value, true),
      createRevision: prev ? prev.createRevision : revision,
      modRevision: revision,
      version: prev ? prev.version + 1 : 1,
    };
    this.map.set(sk, kv);
    if (!prev) this.index.insert(sk);
    events.push(prev ? { type: 'put', kv, prevKv: prev, revision } : { type: 'put', kv, revision });
    return prev;
  }

  /** Delete at `revision`; records the event when the key existed. Returns what was deleted. */
  delete(key: string, revision: number, events: WatchEvent[]): KeyValue | undefined {
    const sk = toSortKey(key);
    const prev = this.map.get(sk);
    if (!prev) return undefined;
    this.map.delete(sk);
    this.index.delete(sk);
    const tombstone: KeyValue = { key, value: EMPTY, createRevision: 0, modRevision: revision, version: 0 };
    events.push({ type: 'delete', kv: tombstone, prevKv: prev, revision });
    return prev;
  }

  /**
   * Up to `limit` KeyValues whose key starts with `prefix`, after `after` (exclusive) when given,
   * in key order, and whether more follow. Under UTF-8 byte order the keys with a prefix are one
   * contiguous run starting at the prefix, so the scan stops at the first key without it.
   */
  range(q: RangeQuery): { kvs: KeyValue[]; more: boolean } {
    if (!Number.isInteger(q.limit) || q.limit < 1) {
      throw new ConfluxError('INVALID_REQUEST', `range limit must be a positive integer, got ${q.limit}`);
    }
    const prefix = toSortKey(q.prefix);
    const after = q.after === undefined ? undefined : toSortKey(q.after);
    const keys =
      after !== undefined && after >= prefix ? this.index.from(after, true) : this.index.from(prefix);
    const kvs: KeyValue[] = [];
    for (const sk of keys) {
      if (!sk.startsWith(prefix)) break;
      if (kvs.length === q.limit) return { kvs, more: true };
      kvs.push(this.map.get(sk)!);
    }
    return { kvs, more: false };
  }
}
