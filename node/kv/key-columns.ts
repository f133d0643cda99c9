// Per-key metadata of the store as columns, not objects: each key owns a slot number, and the
// slot indexes typed arrays that hold its revisions and where its value lies.
//
// Why: a record object per key (five fields) cost about 64 bytes of heap, and a million of them
// were a million objects for every major GC to visit: a full GC at 1M keys took 230-250 ms with
// them and about 100 ms without (docs/performance.md, "Store layout"). Here a key costs 24 bytes of revisions,
// 4 of packed value location and one reference (8 bytes) to its value's buffer, in a few large
// arrays that the GC sees as a handful of objects; typed arrays are not scanned at all.
//
// Slots of deleted keys go to a free list (linked through `at`) and are reused by the next new
// key; the columns grow by doubling and never shrink (a restore builds new ones, sized from the
// snapshot's key count).
//
// A slot's fields change in place on every write: readers that must see an older state (LiveCapture
// in state.ts) copy what they need before the write, as KeyValues.

import type { KeyValue } from './types.js';

/** Bits of `at` that hold the length of a value packed as (offset, length). */
const LENGTH_BITS = 11;
const MAX_PACKED_LENGTH = (1 << LENGTH_BITS) - 1;
/** Offsets up to 2^19 keep `at` below 2^30, a non-negative Int32. */
const MAX_PACKED_OFFSET = (1 << 19) - 1;
/** `at` of a value held by reference: refs[slot] is its Uint8Array itself. */
const WHOLE = -1;
/** Where a value lies, as one Int32: (offset, length) in its ArrayBuffer, or WHOLE. */
export function packedAt(value: Uint8Array): number {
  const n = value.byteLength;
  return n > 0 && n <= MAX_PACKED_LENGTH && value.byteOffset <= MAX_PACKED_OFFSET
    ? (value.byteOffset << LENGTH_BITS) | n
    : WHOLE;
}

/** What to keep a reference to beside `packedAt(value)`: the ArrayBuffer, or the view itself. */
export const packedRef = (value: Uint8Array, at: number): ArrayBufferLike | Uint8Array =>
  at === WHOLE ? value : value.buffer;

/** The value kept as (ref, at) by packedAt and packedRef: a view over the same memory. */
export const unpackValue = (ref: ArrayBufferLike | Uint8Array, at: number): Uint8Array =>
  at === WHOLE
    ? (ref as Uint8Array)
    : new Uint8Array(ref as ArrayBufferLike, at >>> LENGTH_BITS, at & MAX_PACKED_LENGTH);

/** Float64 revisions per slot: createRevision, modRevision, version. */
const REVS = 3;
const MIN_CAPACITY = 1024;

export class KeyColumns {
  /** createRevision, modRevision and version of slot s at 3s, 3s+1, 3s+2 (exact up to 2^53). */
  private revs: Float64Array;
  /** Live slot: packed offset << LENGTH_BITS | length in refs[s] (an ArrayBuffer), or WHOLE.
   *  Free slot: the next free slot, or -1. */
  private at: Int32Array;
  /** Live slot: the value's ArrayBuffer (slab) or, when at = WHOLE, its Uint8Array. Free: undefined. */
  private readonly refs: (ArrayBufferLike | Uint8Array | undefined)[] = [];
  /** Slots ever handed out; slots ≥ used are unused. */
  private used = 0;
  private freeHead = -1;
  private live = 0;

  constructor(capacity = MIN_CAPACITY) {
    const cap = Math.max(1, capacity);
    this.revs = new Float64Array(cap * REVS);
    this.at = new Int32Array(cap);
  }

  /** Slots in use. */
  get size(): number {
    return this.live;
  }

  /** Bytes of the typed-array columns (capacity, not use): for the layout's accounting. */
  get columnBytes(): number {
    return this.revs.byteLength + this.at.byteLength;
  }

  /** A slot for a new key, holding `value` and the revisions. */
  add(value: Uint8Array, createRevision: number, modRevision: number, version: number): number {
    let slot = this.freeHead;
    if (slot >= 0) {
      this.freeHead = this.at[slot]!;
    } else {
      if (this.used === this.at.length) this.grow(this.used * 2);
      slot = this.used++;
      this.refs.push(undefined);
    }
    this.live++;
    this.set(slot, value, createRevision, modRevision, version);
    return slot;
  }

  /** Overwrite a live slot. */
  set(slot: number, value: Uint8Array, createRevision: number, modRevision: number, version: number): void {
    const r = slot * REVS;
    this.revs[r] = createRevision;
    this.revs[r + 1] = modRevision;
    this.revs[r + 2] = version;
    const at = packedAt(value);
    this.refs[slot] = packedRef(value, at);
    this.at[slot] = at;
  }

  /** Free a live slot (its value's buffer is no longer referenced from here). */
  release(slot: number): void {
    this.refs[slot] = undefined;
    this.at[slot] = this.freeHead;
    this.freeHead = slot;
    this.live--;
  }

  createRevision(slot: number): number {
    return this.revs[slot * REVS]!;
  }

  modRevision(slot: number): number {
    return this.revs[slot * REVS + 1]!;
  }

  version(slot: number): number {
    return this.revs[slot * REVS + 2]!;
  }

  /** A view of the value's bytes (a new Uint8Array over the same memory). */
  value(slot: number): Uint8Array {
    return unpackValue(this.refs[slot]!, this.at[slot]!);
  }

  valueBytes(slot: number): number {
    const at = this.at[slot]!;
    return at === WHOLE ? (this.refs[slot] as Uint8Array).byteLength : at & MAX_PACKED_LENGTH;
  }

  /** The KeyValue of a slot under `key` (a new object, equal to any other made from it). */
  toKeyValue(slot: number, key: string): KeyValue {
    const r = slot * REVS;
    return {
      key,
      value: this.value(slot),
      createRevision: this.revs[r]!,
      modRevision: this.revs[r + 1]!,
      version: this.revs[r + 2]!,
    };
  }

  /** Room for `capacity` slots without growing (a restore that knows its key count). */
  reserve(capacity: number): void {
    if (capacity > this.at.length) this.grow(capacity);
  }

  /** Drop the capacity above the slots used (after a bulk load: a restore). */
  trim(): void {
    if (this.used < this.at.length && this.used >= MIN_CAPACITY) this.grow(this.used);
  }

  private grow(capacity: number): void {
    const revs = new Float64Array(capacity * REVS);
    revs.set(this.revs.subarray(0, this.used * REVS));
    const at = new Int32Array(capacity);
    at.set(this.at.subarray(0, this.used));
    this.revs = revs;
    this.at = at;
  }
}
