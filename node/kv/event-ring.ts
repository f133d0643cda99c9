// The events of the watch history as columns in a ring, not as objects: each event an absolute
// sequence number, its fields in typed arrays at seq & mask (history.ts keeps which revision owns
// which run of sequence numbers).
//
// Why: a WatchEvent kept as objects costs an event, a KeyValue and a Uint8Array view of its value
// (about 215 bytes of heap measured, three objects for every major GC to visit), and at its 64 MiB
// budget the history holds about 240k of them (docs/performance.md, "Store layout"). Here an event
// costs its key reference, 48 bytes of revisions, 8 of packed value locations and two references
// to the values' buffers. The value bytes themselves are shared with the store, as before.
//
// Events are made again when read (history reads are page-sized); they are equal field by field to
// the ones appended, not the same objects.

import { packedAt, packedRef, unpackValue } from './key-columns.js';
import type { KeyValue, WatchEvent } from './types.js';

const DELETE = 1;
const HAS_PREV = 2;
/** Float64 fields per event: kv's createRevision, modRevision, version, then prevKv's. */
const REVS = 6;
const MIN_CAPACITY = 64;

type Ref = ArrayBufferLike | Uint8Array;

export class EventRing {
  private mask = MIN_CAPACITY - 1;
  private keys: (string | undefined)[] = new Array(MIN_CAPACITY);
  private kinds = new Uint8Array(MIN_CAPACITY);
  private revs = new Float64Array(MIN_CAPACITY * REVS);
  /** kv's value location at 2i, prevKv's at 2i + 1 (packedAt). */
  private at = new Int32Array(MIN_CAPACITY * 2);
  private refs: (Ref | undefined)[] = new Array(MIN_CAPACITY * 2);
  /** Sequence numbers [head, tail) are held. */
  private head = 0;
  private tail = 0;

  /** The sequence number the next push gets. */
  get end(): number {
    return this.tail;
  }

  push(e: WatchEvent): void {
    if (this.tail - this.head > this.mask) this.grow();
    const i = this.tail++ & this.mask;
    const { kv, prevKv } = e;
    this.keys[i] = kv.key;
    this.kinds[i] = (e.type === 'delete' ? DELETE : 0) | (prevKv ? HAS_PREV : 0);
    this.put(i, 0, kv);
    if (prevKv) this.put(i, 1, prevKv);
    else this.refs[2 * i + 1] = undefined;
  }

  /** Let go of every event before `seq`. */
  dropBefore(seq: number): void {
    for (; this.head < seq; this.head++) {
      const i = this.head & this.mask;
      this.keys[i] = undefined;
      this.refs[2 * i] = undefined;
      this.refs[2 * i + 1] = undefined;
    }
  }

  clear(): void {
    this.dropBefore(this.tail);
  }

  key(seq: number): string {
    return this.keys[seq & this.mask]!;
  }

  /** The event at `seq` (held: head ≤ seq < tail), made anew, at `revision`. */
  event(seq: number, revision: number): WatchEvent {
    const i = seq & this.mask;
    const key = this.keys[i]!;
    const kind = this.kinds[i]!;
    const kv = this.kv(i, 0, key);
    const type = kind & DELETE ? 'delete' : 'put';
    return kind & HAS_PREV ? { type, kv, prevKv: this.kv(i, 1, key), revision } : { type, kv, revision };
  }

  private put(i: number, which: 0 | 1, kv: KeyValue): void {
    const r = i * REVS + which * 3;
    this.revs[r] = kv.createRevision;
    this.revs[r + 1] = kv.modRevision;
    this.revs[r + 2] = kv.version;
    const at = packedAt(kv.value);
    this.at[2 * i + which] = at;
    this.refs[2 * i + which] = packedRef(kv.value, at);
  }

  private kv(i: number, which: 0 | 1, key: string): KeyValue {
    const r = i * REVS + which * 3;
    return {
      key,
      value: unpackValue(this.refs[2 * i + which]!, this.at[2 * i + which]!),
      createRevision: this.revs[r]!,
      modRevision: this.revs[r + 1]!,
      version: this.revs[r + 2]!,
    };
  }

  /** Twice the room; every held event moves to its place under the new mask. */
  private grow(): void {
    const capacity = (this.mask + 1) * 2;
    const mask = capacity - 1;
    const keys: (string | undefined)[] = new Array(capacity);
    const kinds = new Uint8Array(capacity);
    const revs = new Float64Array(capacity * REVS);
    const at = new Int32Array(capacity * 2);
    const refs: (Ref | undefined)[] = new Array(capacity * 2);
    for (let seq = this.head; seq < this.tail; seq++) {
      const from = seq & this.mask;
      const to = seq & mask;
      keys[to] = this.keys[from];
      kinds[to] = this.kinds[from]!;
      revs.set(this.revs.subarray(from * REVS, from * REVS + REVS), to * REVS);
      at[2 * to] = this.at[2 * from]!;
      at[2 * to + 1] = this.at[2 * from + 1]!;
      refs[2 * to] = this.refs[2 * from];
      refs[2 * to + 1] = this.refs[2 * from + 1];
    }
    this.mask = mask;
    this.keys = keys;
    this.kinds = kinds;
    this.revs = revs;
    this.at = at;
    this.refs = refs;
  }
}
