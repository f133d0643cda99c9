// CRC-32 (IEEE, the zlib/PNG polynomial). Node ≥ 20.15 ships a native `zlib.crc32`; older 20.x
// falls back to a table-driven version with identical output, so files move freely between them.

import * as zlib from 'node:zlib';

type Crc32 = (data: Uint8Array, previous?: number) => number;

let table: Uint32Array | null = null;

function tableCrc32(data: Uint8Array, previous = 0): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) {
    crc = (table[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const native = (zlib as { crc32?: Crc32 }).crc32;

/** CRC-32 of `data`, continuing from `previous` (the CRC of the bytes before it) for streaming. */
export const crc32: Crc32 = native ?? tableCrc32;

/** Exported for the test that pins the fallback to the native implementation. */
export const crc32Fallback: Crc32 = tableCrc32;
