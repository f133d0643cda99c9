// node --expose-gc --import tsx bench/apply-replay.ts [--keys 1000000] [--txn 128] [--history N]:
// the state machine's share of a restart that replays its log: the keys arrive as transactions of `--txn` puts of 100-byte
// values (what the growth bench's bulk load writes), and each entry is decoded and applied by a
// fresh KvStore, as a restarted node does with the entries of its WAL after its snapshot. Prints
// the CPU time of decoding alone (msgpack + structural check) and of decode + apply, and what the
// store holds afterwards: V8 heap and ArrayBuffer bytes per key (after a full GC when run with
// --expose-gc), with the watch history's share (`--history 1` keeps one revision), and how long one
// more full GC takes with the store live (a major GC's pause at this size). In-process: no disk,
// network or Raft.

import { parseArgs } from 'node:util';
import { encodeCommand, tryDecodeCommand } from '../node/kv/commands.js';
import { KvStore } from '../node/kv/store.js';
import type { Entry } from '../node/raft/types.js';

const { values } = parseArgs({
  options: {
    keys: { type: 'string', default: '1000000' },
    txn: { type: 'string', default: '128' },
    history: { type: 'string', default: '10000' },
  },
});
const n = Number(values.keys);
const perTxn = Number(values.txn);
if (!Number.isInteger(n) || n < 1) throw new Error(`--keys must be a positive integer, got ${values.keys}`);
if (!Number.isInteger(perTxn) || perTxn < 1)
  throw new Error(`--txn must be a positive integer, got ${values.txn}`);
const historyRevisions = Number(values.history);
if (!Number.isInteger(historyRevisions) || historyRevisions < 1)
  throw new Error(`--history must be a positive integer, got ${values.history}`);

const settle = (): NodeJS.MemoryUsage => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  return process.memoryUsage();
};
const before = settle();
const value = new Uint8Array(100).fill(0x61);
const keyAt = (i: number) => `g/k${String(i).padStart(8, '0')}`;
const entries: Entry[] = [];
for (let i = 0; i < n; i += perTxn) {
  const success = [];
  for (let j = i; j < Math.min(n, i + perTxn); j++) {
    success.push({ type: 'put' as const, key: keyAt(j), value });
  }
  const data = encodeCommand({ type: 'txn', compare: [], success, failure: [], requestId: `r${i}` });
  entries.push({ index: entries.length + 1, term: 1, type: 'normal', data });
}

const cpuMs = (fn: () => void): number => {
  const t0 = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000;
};

const decodeMs = cpuMs(() => {
  for (const e of entries)
    if (e.type === 'normal' && !tryDecodeCommand(e.data, { viewValues: true }).ok)
      throw new Error('undecodable');
});
const store = new KvStore({ historyRevisions });
const applyMs = cpuMs(() => {
  for (const e of entries) store.apply(e);
});
entries.length = 0;
const after = settle();
const raw = n * (Buffer.byteLength(keyAt(0)) + value.byteLength);
const perKey = (bytes: number) => `${(bytes / n).toFixed(0)} B/key`;
const heap = after.heapUsed - before.heapUsed;
const buffers = after.arrayBuffers - before.arrayBuffers;
const gcFn = (globalThis as { gc?: () => void }).gc;
const settled = gcFn ? '' : ' (no --expose-gc: not settled)';
// One more full GC with the store live: how long a major GC stops the event loop at this size.
const gcStart = performance.now();
gcFn?.();
const fullGcMs = performance.now() - gcStart;
console.log(
  `${n.toLocaleString('en-US')} keys in ${Math.ceil(n / perTxn)} entries: decode ${decodeMs.toFixed(0)} ms CPU, ` +
    `decode + apply ${applyMs.toFixed(0)} ms CPU; heap +${perKey(heap)}, ArrayBuffers +${perKey(buffers)}, ` +
    `RSS +${perKey(after.rss - before.rss)}, raw ${perKey(raw)} (${((heap + buffers) / raw).toFixed(2)}× raw live); ` +
    `history ${store.historySize.revisions} revisions; a full GC ${gcFn ? `${fullGcMs.toFixed(0)} ms` : 'not run'}${settled}`,
);
