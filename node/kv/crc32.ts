// CRC-32 (IEEE 802.3, the zlib/gzip polynomial), incremental: crc32(b, crc32(a)) === crc32(a ++ b).
// Node has zlib.crc32 from 20.15 / 22.2; the package allows 20.11, so a table fallback stays.

import * as zlib from 'node:zlib';

let table: Uint32Array | null = null;

function makeTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

/** The portable implementation (exported so a test can check it against zlib's). */
export function crc32Portable(data: Uint8Array, previous = 0): number {
  table ??= makeTable();
  let c = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const native: ((data: Uint8Array, previous?: number) => number) | null =
  typeof zlib.crc32 === 'function' ? zlib.crc32 : null;

export const crc32 = (data: Uint8Array, previous = 0): number =>
  native ? native(data, previous) : crc32Portable(data, previous);
