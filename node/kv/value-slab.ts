// Where the store keeps the bytes of small values: copied into shared 16 KiB slabs, each value a
// Uint8Array view of its slab, as Node's Buffer pool does for small buffers.
//
// Why: a value that owns its ArrayBuffer costs V8 an ArrayBuffer object, a backing store and its
// tracking on top of the view and the bytes, about 270 bytes per value measured, and every major
// GC visits each ArrayBuffer. At a million 100-byte values that doubled the memory of the data
// and made applying and restoring it superlinear (GC time grew with the number of buffers).
//
// The price: a slab stays alive while any value in it does, so overwritten or deleted values can
// keep up to one slab each alive when a single neighbour survives (at most 16 KiB per live value,
// in practice far less: a snapshot install refills every slab). Values above MAX_SLAB_VALUE keep
// their own buffer, so a slab never holds more than a few large-ish values.
//
// Values are immutable once stored (KeyValue is), so sharing a slab is safe.

export const SLAB_BYTES = 16 * 1024;
/** Larger values get their own buffer. */
export const MAX_SLAB_VALUE = 1024;

const EMPTY = new Uint8Array(0);

let slab = new ArrayBuffer(SLAB_BYTES);
let slabBytes = new Uint8Array(slab);
let used = 0;

/** Room for n bytes in the current slab (a new slab when they do not fit); returns their offset. */
function reserve(n: number): number {
  if (used + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabBytes = new Uint8Array(slab);
    used = 0;
  }
  const at = used;
  used += n;
  return at;
}

/**
 * The bytes of `bytes` as the store keeps them: a view into a shared slab for small values; for
 * larger ones `bytes` itself when the caller says it is `owned` (nothing else holds or reuses it),
 * else a copy in its own buffer.
 */
export function ownValue(bytes: Uint8Array, owned = false): Uint8Array {
  const n = bytes.byteLength;
  if (n === 0) return EMPTY;
  if (n > MAX_SLAB_VALUE) {
    if (owned) return bytes;
    const copy = new Uint8Array(n);
    copy.set(bytes);
    return copy;
  }
  const at = reserve(n);
  slabBytes.set(bytes, at);
  return new Uint8Array(slab, at, n);
}

/** `ownValue` of the bytes [start, end) of `src`, without making a view of them first. */
export function ownValueOf(src: Buffer, start: number, end: number): Uint8Array {
  const n = end - start;
  if (n === 0) return EMPTY;
  if (n > MAX_SLAB_VALUE) {
    const copy = new Uint8Array(n);
    src.copy(copy, 0, start, end);
    return copy;
  }
  const at = reserve(n);
  src.copy(slabBytes, at, start, end);
  return new Uint8Array(slab, at, n);
}
