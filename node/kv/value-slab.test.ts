import { describe, expect, it } from 'vitest';
import { SnapshotDecoder } from './snapshot-decoder.js';
import { encodeSnapshotBuffer } from './snapshot-format.js';
import type { KeyValue } from './types.js';
import { MAX_SLAB_VALUE, ownValue, SLAB_BYTES } from './value-slab.js';

describe('ownValue', () => {
  it('copies small values into a shared slab, independent of the source buffer', () => {
    const src = Buffer.from('hello world');
    const a = ownValue(src);
    const b = ownValue(Buffer.from('second'));
    src.fill(0);
    expect(Buffer.from(a).toString()).toBe('hello world');
    expect(Buffer.from(b).toString()).toBe('second');
    expect(a.constructor).toBe(Uint8Array);
    expect(a.buffer.byteLength).toBe(SLAB_BYTES);
    // Two views of one slab never overlap.
    if (a.buffer === b.buffer) expect(b.byteOffset).toBeGreaterThanOrEqual(a.byteOffset + a.byteLength);
  });

  it('starts a new slab when a value does not fit in the rest of the current one', () => {
    const views = Array.from({ length: 40 }, (_, i) => ownValue(new Uint8Array(MAX_SLAB_VALUE).fill(i)));
    for (const [i, v] of views.entries()) expect(v.every((x) => x === i)).toBe(true);
    expect(new Set(views.map((v) => v.buffer)).size).toBeGreaterThan(1);
  });

  it('gives a large value its own buffer: a copy unless the caller owns it', () => {
    const big = new Uint8Array(MAX_SLAB_VALUE + 1).fill(7);
    const copy = ownValue(big);
    expect(copy).not.toBe(big);
    expect(copy.buffer).not.toBe(big.buffer);
    expect(copy).toEqual(big);
    big.fill(1);
    expect(copy[0]).toBe(7);
    expect(ownValue(big, true)).toBe(big);
  });

  it('keeps an empty value empty', () => {
    expect(ownValue(new Uint8Array(0)).byteLength).toBe(0);
  });
});

describe('SnapshotDecoder verifyOnly', () => {
  const kvs: KeyValue[] = ['a', 'b', 'c'].map((key, i) => ({
    key,
    value: Buffer.from(`v${i}`),
    createRevision: i + 1,
    modRevision: i + 1,
    version: 1,
  }));
  const data = encodeSnapshotBuffer({ applied: 5, revision: 3, keyCount: 3 }, kvs);

  it('checks everything and returns the header without keeping records', () => {
    const d = new SnapshotDecoder({ verifyOnly: true });
    d.push(data);
    expect(d.finish()).toEqual({ header: { applied: 5, revision: 3, keyCount: 3 }, kvs: [] });
  });

  it('still refuses a corrupt snapshot', () => {
    const bad = Uint8Array.from(data);
    bad[40] = (bad[40] ?? 0) ^ 0xff;
    const d = new SnapshotDecoder({ verifyOnly: true });
    expect(() => {
      d.push(bad);
      d.finish();
    }).toThrow(/invalid kv snapshot/);
  });

  it('still refuses keys out of order', () => {
    const swapped = encodeSnapshotBuffer({ applied: 5, revision: 3, keyCount: 2 }, [
      kvs[1],
      kvs[0],
    ] as KeyValue[]);
    const d = new SnapshotDecoder({ verifyOnly: true });
    expect(() => d.push(swapped)).toThrow(/out of order/);
  });
});
