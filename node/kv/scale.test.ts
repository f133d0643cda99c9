// A quick scale check: 100k writes, a first page, a snapshot and a restore. It asserts correctness
// only; the timings are printed for the record (they depend on the machine), never asserted.

import { describe, expect, it } from 'vitest';
import type { Entry } from '../raft/types.js';
import { encodeCommand } from './commands.js';
import { KvStore } from './store.js';

const N = 100_000;
const ms = (t0: number) => `${(performance.now() - t0).toFixed(0)} ms`;

describe('scale', () => {
  it(`${N} puts, a range page, snapshot and restore`, async () => {
    // Keys in scattered order, shaped like Kubernetes object paths; 100-byte values.
    const keyOf = (i: number) =>
      `/registry/configmaps/ns-${i % 97}/cm-${((i * 2654435761) >>> 0).toString(36)}`;
    const value = new Uint8Array(100).fill(42);
    let t0 = performance.now();
    const entries: Entry[] = [];
    for (let i = 0; i < N; i++) {
      entries.push({
        type: 'normal',
        index: i + 1,
        term: 1,
        data: encodeCommand({ type: 'put', key: keyOf(i), value }),
      });
    }
    const encodeTime = ms(t0);

    const s = new KvStore();
    t0 = performance.now();
    for (const e of entries) s.apply(e);
    const applyMs = performance.now() - t0;
    expect(s.size).toBe(N);
    expect(s.revision).toBe(N);

    t0 = performance.now();
    const page = s.range({ prefix: '/registry/configmaps/ns-5/', limit: 500 });
    const rangeTime = ms(t0);
    expect(page.kvs).toHaveLength(500);
    expect(page.more).toBe(true);
    const keys = page.kvs.map((kv) => kv.key);
    expect(keys).toEqual([...keys].sort());
    expect(keys.every((k) => k.startsWith('/registry/configmaps/ns-5/'))).toBe(true);

    t0 = performance.now();
    const snap = s.snapshot();
    const snapshotTime = ms(t0);

    t0 = performance.now();
    let streamed = 0;
    for await (const chunk of s.snapshotStream()) streamed += chunk.byteLength;
    const streamTime = ms(t0);
    expect(streamed).toBe(snap.data.byteLength);

    t0 = performance.now();
    const r = new KvStore();
    r.restore(
      {
        index: N,
        term: 1,
        membership: { configs: [], learners: [], retired: [], nodes: {}, cluster: null },
        sizeBytes: 0,
        id: 's',
      },
      snap.data,
    );
    const restoreTime = ms(t0);
    expect(r.size).toBe(N);
    expect(r.range({ prefix: '/registry/configmaps/ns-5/', limit: 500 })).toEqual(page);

    console.log(
      [
        `kv scale check, ${N} keys:`,
        `  encode ${N} commands: ${encodeTime}`,
        `  apply: ${applyMs.toFixed(0)} ms (${Math.round(N / (applyMs / 1000))} entries/s)`,
        `  range first page (500): ${rangeTime}`,
        `  snapshot: ${(snap.data.byteLength / 1024 / 1024).toFixed(1)} MiB in ${snapshotTime}`,
        `  snapshotStream (64 KiB chunks): ${streamTime}`,
        `  restore: ${restoreTime}`,
      ].join('\n'),
    );
  });
});
