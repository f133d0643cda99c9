// npx tsx bench/snapshot-stall.ts [--keys 1000000]: how long the KvStore's snapshot encode and
// restore take at N keys of 100-byte values, in one piece (snapshot, restore) and in slices
// (snapshotAsync, restoreAsync, what the Raft node uses), wall and CPU time (the process's, GC
// threads included: steadier than wall time on a shared machine), with the longest event-loop stall seen by
// a 5 ms timer and the longest GC pause during each. In-process, no cluster: it isolates the
// state machine's part of a snapshot or an install from network and Raft. Then the same snapshot
// through the storage (its write, a restart's open and whole-file read, a transfer's 1 MiB chunks as the
// leader reads them) and through a backup to a file:// destination and back (upload, download and
// restore).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { downloadBackup, readBackupData, uploadBackup } from '../node/backup/index.js';
import { SnapshotDecoder } from '../node/kv/snapshot-decoder.js';
import { encodeSnapshotBuffer, SNAPSHOT_FORMAT_VERSION } from '../node/kv/snapshot-format.js';
import { KvStore } from '../node/kv/store.js';
import type { SnapshotMeta } from '../node/raft/types.js';
import { openStorage } from '../node/storage/index.js';

const { values } = parseArgs({ options: { keys: { type: 'string', default: '1000000' } } });
const n = Number(values.keys);
if (!Number.isInteger(n) || n < 1) throw new Error(`--keys must be a positive integer, got ${values.keys}`);

const value = new Uint8Array(100).fill(0x61);
const kvs = Array.from({ length: n }, (_, i) => ({
  key: `/registry/configmaps/default/key-${String(i).padStart(8, '0')}`,
  value,
  createRevision: i + 1,
  modRevision: i + 1,
  version: 1,
}));
const data = encodeSnapshotBuffer({ applied: n, revision: n, keyCount: n }, kvs);
kvs.length = 0;
const meta: SnapshotMeta = {
  index: n,
  term: 1,
  id: 'bench',
  sizeBytes: data.byteLength,
  membership: { configs: [['n1']], learners: [], retired: [], nodes: {}, cluster: null },
};

let gcMaxMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMaxMs = Math.max(gcMaxMs, e.duration);
}).observe({ entryTypes: ['gc'] });

async function measure(what: string, fn: () => unknown): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 200));
  gcMaxMs = 0;
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last - 5);
    last = now;
  }, 5);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  last = t0;
  await fn();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 10)); // let the timer see a stall at the end
  clearInterval(timer);
  const line = `${what.padEnd(14)} ${ms.toFixed(0).padStart(6)} ms (${cpuMs.toFixed(0).padStart(5)} ms CPU)   longest stall ${stallMs.toFixed(0).padStart(5)} ms   longest GC pause ${gcMaxMs.toFixed(0).padStart(4)} ms`;
  console.log(line);
}

console.log(`${n.toLocaleString('en-US')} keys, snapshot ${(data.byteLength / 2 ** 20).toFixed(1)} MiB`);
const store = new KvStore();
await measure('restore', () => store.restore(meta, data));
await measure('restoreAsync', () => store.restoreAsync(meta, data));
await measure('snapshot', () => store.snapshot());
await measure('snapshotAsync', () => store.snapshotAsync());

const dir = mkdtempSync(join(tmpdir(), 'conflux-stall-'));
try {
  const first = await openStorage(join(dir, 'data'));
  await measure('storage write', () => first.storage.saveSnapshot(meta, data));
  await first.storage.close();
  let storage = first.storage;
  await measure('storage open', async () => {
    storage = (await openStorage(join(dir, 'data'))).storage;
  });
  // What a restarting node (and a follower after an install) reads: the whole file, in slices.
  await measure('restart read', () => storage.readSnapshot(meta));
  await measure('transfer read', async () => {
    const chunk = 1 << 20;
    for (let offset = 0; offset < meta.sizeBytes; offset += chunk) {
      if (!storage.readSnapshotChunk(meta, offset, chunk)) throw new Error(`no chunk at ${offset}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  });
  await storage.close();
  const backupDir = `file://${join(dir, 'backups')}`;
  let uri = '';
  await measure('backup', async () => {
    const stream = store.snapshotStream();
    const res = await uploadBackup(backupDir, {
      stream,
      metadata: {
        clusterId: 'bench',
        nodeId: 'n1',
        createdAt: new Date().toISOString(),
        lastIndex: stream.applied,
        lastTerm: 1,
        revision: stream.revision,
        keyCount: stream.keyCount,
        formatVersion: SNAPSHOT_FORMAT_VERSION,
      },
    });
    uri = res.uri;
  });
  // What POST /_cluster/restore does before it installs (node/ops/restore-service.ts): download,
  // verify against the manifest and check every record; then the install, as restoreAsync above.
  await measure('backup download', async () => {
    const dl = await downloadBackup(uri);
    const decoder = new SnapshotDecoder({ verifyOnly: true });
    const got = await readBackupData(dl, (chunk) => decoder.push(chunk));
    if (decoder.finish().header.keyCount !== n || got.byteLength !== dl.manifest.bytes) {
      throw new Error('the backup does not hold what was backed up');
    }
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
