// npx tsx bench/apply-replay.ts [--keys 1000000] [--txn 128]: the state machine's share of a
// restart that replays its log: the keys arrive as transactions of `--txn` puts of 100-byte
// values (what the growth bench's bulk load writes), and each entry is decoded and applied by a
// fresh KvStore, as a restarted node does with the entries of its WAL after its snapshot. Prints
// the CPU time of decoding alone (msgpack + structural check) and of decode + apply, and the
// store's RSS and heap per key afterwards. In-process: no disk, network or Raft.

import { parseArgs } from 'node:util';
import { encodeCommand, tryDecodeCommand } from '../node/kv/commands.js';
import { KvStore } from '../node/kv/store.js';
import type { Entry } from '../node/raft/types.js';

const { values } = parseArgs({
  options: { keys: { type: 'string', default: '1000000' }, txn: { type: 'string', default: '128' } },
});
const n = Number(values.keys);
const perTxn = Number(values.txn);
if (!Number.isInteger(n) || n < 1) throw new Error(`--keys must be a positive integer, got ${values.keys}`);
if (!Number.isInteger(perTxn) || perTxn < 1)
  throw new Error(`--txn must be a positive integer, got ${values.txn}`);

const value = new Uint8Array(100).fill(0x61);
const entries: Entry[] = [];
for (let i = 0; i < n; i += perTxn) {
  const success = [];
  for (let j = i; j < Math.min(n, i + perTxn); j++) {
    success.push({
      type: 'put' as const,
      key: `/registry/configmaps/default/key-${String(j).padStart(8, '0')}`,
      value,
    });
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
const rssBefore = process.memoryUsage().rss;
const store = new KvStore();
const applyMs = cpuMs(() => {
  for (const e of entries) store.apply(e);
});
entries.length = 0;
globalThis.gc?.();
const mem = process.memoryUsage();
const raw = n * (value.byteLength + 38);
console.log(
  `${n.toLocaleString('en-US')} keys in ${Math.ceil(n / perTxn)} entries: decode ${decodeMs.toFixed(0)} ms CPU, ` +
    `decode + apply ${applyMs.toFixed(0)} ms CPU; RSS +${((mem.rss - rssBefore) / 2 ** 20).toFixed(0)} MiB, ` +
    `heap ${(mem.heapUsed / 2 ** 20).toFixed(0)} MiB, external ${((mem.external + mem.arrayBuffers) / 2 ** 20).toFixed(0)} MiB, ` +
    `raw ${(raw / 2 ** 20).toFixed(0)} MiB (${store.size} keys)`,
);
