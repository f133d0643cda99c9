// DiskStorage against real files: what `save` and `saveSnapshot` make durable is exactly what a
// reopen recovers (the semantics of SimDisk), plus locking, rotation, compaction and failures.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError } from './errors.js';
import { type DiskStorage, openStorage, type StorageOptions } from './storage.js';
import { hs, normal, range, ready, recordingLogger, show, snapMeta, tempDir } from './test-util.js';

let dir: string;
let cleanup: () => Promise<void>;
const open: DiskStorage[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  await cleanup();
});

async function start(opts: StorageOptions = {}) {
  const r = await openStorage(dir, opts);
  open.push(r.storage);
  return r;
}

async function restart(storage: DiskStorage, opts: StorageOptions = {}) {
  await storage.close();
  return start(opts);
}

const segmentFiles = () => fs.readdirSync(path.join(dir, 'wal')).sort();
const snapFiles = () => fs.readdirSync(path.join(dir, 'snap')).sort();
const bytes = (n: number, seed = 7) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe('a new data directory', () => {
  it('is created with wal/, snap/, a lock and one segment, and recovers the empty state', async () => {
    const { storage, state } = await start();
    expect(state).toEqual({ hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [] });
    expect(segmentFiles()).toEqual(['0000000000000001.wal']);
    expect(snapFiles()).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'LOCK'))).toBe(true);
    await storage.close();
    expect(fs.existsSync(path.join(dir, 'LOCK'))).toBe(false);
  });

  it('accepts a pino logger', async () => {
    const { storage } = await start({ logger: pino({ level: 'silent' }).child({ nodeId: 'n1' }) });
    await storage.save(ready({ hardState: hs(1, 0) }));
  });
});

describe('save then reopen', () => {
  it('recovers entries and the hard state of every save', async () => {
    const { storage } = await start();
    await storage.save(ready({ entries: range(1, 3, 1), hardState: hs(1, 0) }));
    await storage.save(ready({ entries: range(4, 5, 1), hardState: hs(1, 3) }));
    const { state } = await restart(storage);
    expect(show(state.entries)).toEqual(show(range(1, 5, 1)));
    expect(state.hardState).toEqual(hs(1, 3));
    expect(state.snapshot).toBeNull();
  });

  it('writing entry i replaces every durable entry ≥ i', async () => {
    const { storage } = await start();
    await storage.save(ready({ entries: range(1, 6, 1), hardState: hs(1, 2) }));
    await storage.save(ready({ entries: [normal(4, 2, 'new')], hardState: hs(2, 2) }));
    const { state, storage: s2 } = await restart(storage);
    expect(show(state.entries)).toEqual([...show(range(1, 3, 1)), '4/2/new']);
    // ... and it keeps doing so after a restart, on top of the recovered log.
    await s2.save(ready({ entries: [normal(2, 3, 'newer'), normal(3, 3, 'newest')] }));
    const again = await restart(s2);
    expect(show(again.state.entries)).toEqual(['1/1/v1@1', '2/3/newer', '3/3/newest']);
  });

  it('keeps the latest hard state, also from saves without entries', async () => {
    const { storage } = await start();
    await storage.save(ready({ entries: range(1, 2, 1), hardState: hs(1, 0, 'n2') }));
    await storage.save(ready({ hardState: hs(2, 0, null) }));
    await storage.save(ready({ hardState: hs(3, 1, 'n3') }));
    await storage.save(ready({ entries: [normal(3, 3)] }));
    const { state } = await restart(storage);
    expect(state.hardState).toEqual(hs(3, 1, 'n3'));
    expect(state.entries.map((e) => e.index)).toEqual([1, 2, 3]);
  });

  it('round-trips blank and membership entries', async () => {
    const { storage } = await start();
    const membership = {
      configs: [['a'], ['a', 'b']],
      learners: ['c'],
      retired: ['z'],
      nodes: {},
      cluster: null,
    };
    await storage.save(
      ready({
        entries: [
          { index: 1, term: 1, type: 'membership', membership },
          { index: 2, term: 1, type: 'blank' },
        ],
      }),
    );
    const { state } = await restart(storage);
    expect(state.entries).toEqual([
      { index: 1, term: 1, type: 'membership', membership },
      { index: 2, term: 1, type: 'blank' },
    ]);
  });
});

describe('segments', () => {
  it('rotate past segmentBytes; each new segment carries the hard state forward', async () => {
    const { storage } = await start({ segmentBytes: 512 });
    await storage.save(ready({ hardState: hs(4, 0, 'n2') }));
    for (let i = 1; i <= 40; i++) await storage.save(ready({ entries: [normal(i, 4, 'x'.repeat(50))] }));
    expect(segmentFiles().length).toBeGreaterThan(3);
    // Overwrite across a segment boundary.
    await storage.save(ready({ entries: [normal(3, 5, 'late')], hardState: hs(5, 2, 'n1') }));
    const { state } = await restart(storage, { segmentBytes: 512 });
    expect(state.hardState).toEqual(hs(5, 2, 'n1'));
    expect(state.entries.map((e) => `${e.index}/${e.term}`)).toEqual(['1/4', '2/4', '3/5']);
  });

  it('saveSnapshot deletes the segments it covers, never the active one', async () => {
    const { storage } = await start({ segmentBytes: 400 });
    for (let i = 1; i <= 30; i++)
      await storage.save(ready({ entries: [normal(i, 1, 'y'.repeat(40))], hardState: hs(1, i) }));
    const before = segmentFiles();
    await storage.saveSnapshot(snapMeta(20, 1, 3), bytes(3));
    const after = segmentFiles();
    expect(after.length).toBeLessThan(before.length);
    expect(after).toContain(before.at(-1));
    const { state, storage: s2 } = await restart(storage, { segmentBytes: 400 });
    expect(state.snapshot).toEqual(snapMeta(20, 1, 3));
    expect(state.entries.map((e) => e.index)).toEqual(range(21, 30, 1).map((e) => e.index));
    expect(state.hardState).toEqual(hs(1, 30));
    expect(s2.readSnapshotChunk(snapMeta(20, 1, 3), 0, 3)).toEqual(Buffer.from(bytes(3)));

    // A newer snapshot keeps the one it replaces as the fallback, and the log after that one.
    await s2.saveSnapshot(snapMeta(30, 1, 5, 's-30'), bytes(5));
    expect(snapFiles()).toHaveLength(2);
    // The replaced one is still served to transfers that started from it.
    expect(s2.readSnapshotChunk(snapMeta(20, 1, 3), 0, 3)).toEqual(Buffer.from(bytes(3)));
    const { state: next, storage: s3 } = await restart(s2, { segmentBytes: 400 });
    expect(next.snapshot?.id).toBe('s-30');
    expect(next.entries).toEqual([]);
    expect(snapFiles()).toHaveLength(2); // the fallback survives a restart
    const kept = segmentFiles();
    expect(kept.length).toBeGreaterThan(1);

    // Everything covered by the fallback too: all but the active segment go, and the oldest file.
    await s3.save(ready({ entries: [normal(31, 1)], hardState: hs(1, 31) }));
    await s3.saveSnapshot(snapMeta(31, 1, 2, 's-31'), bytes(2));
    expect(segmentFiles()).toHaveLength(1);
    expect(snapFiles()).toHaveLength(2);
    expect(snapFiles().some((f) => f.startsWith('0000000000000020-'))).toBe(false);
    const { state: last } = await restart(s3);
    expect(last.snapshot?.id).toBe('s-31');
    expect(last.entries).toEqual([]);
  });
});

describe('snapshots', () => {
  it('a replaced snapshot is still served after its file is gone, the last two of them', async () => {
    const { storage } = await start();
    for (let i = 1; i <= 4; i++) {
      await storage.save(ready({ entries: [normal(i, 1)], hardState: hs(1, i) }));
      await storage.saveSnapshot(snapMeta(i, 1, 100 + i), bytes(100 + i, i));
    }
    // s-4 current, s-3 the fallback on disk, s-2 deleted from disk but still open, s-1 closed.
    expect(snapFiles()).toHaveLength(2);
    expect(storage.readSnapshotChunk(snapMeta(2, 1, 102), 50, 10)).toEqual(
      Buffer.from(bytes(102, 2).subarray(50, 60)),
    );
    expect(storage.readSnapshotChunk(snapMeta(2, 1, 102), 0, 102)).toEqual(Buffer.from(bytes(102, 2)));
    expect(storage.readSnapshotChunk(snapMeta(3, 1, 103), 0, 103)).toEqual(Buffer.from(bytes(103, 3)));
    expect(storage.readSnapshotChunk(snapMeta(1, 1, 101), 0, 101)).toBeNull();
    const { storage: s2 } = await restart(storage);
    expect(s2.readSnapshotChunk(snapMeta(2, 1, 102), 0, 102)).toBeNull(); // not across a restart
  });

  it('installs a snapshot received in chunks, dropping the whole log', async () => {
    const { storage } = await start({ segmentBytes: 300 });
    for (let i = 1; i <= 10; i++)
      await storage.save(ready({ entries: [normal(i, 1, 'z'.repeat(40))], hardState: hs(1, 2) }));
    const data = bytes(1000);
    const meta = snapMeta(50, 3, data.length);
    // A transfer that starts over at offset 0 midway (the leader switched snapshots).
    await storage.save(
      ready({ snapshotChunks: [{ meta: snapMeta(40, 2, 9, 'old'), offset: 0, data: bytes(4) }] }),
    );
    await storage.save(ready({ snapshotChunks: [{ meta, offset: 0, data: data.subarray(0, 400) }] }));
    await storage.save(ready({ snapshotChunks: [{ meta, offset: 400, data: data.subarray(400, 800) }] }));
    await storage.save(
      ready({
        snapshotChunks: [{ meta, offset: 800, data: data.subarray(800) }],
        snapshot: meta,
        entries: [normal(51, 3)],
        hardState: hs(3, 50, 'n2'),
      }),
    );
    expect(storage.readSnapshotChunk(meta, 0, meta.sizeBytes)).toEqual(Buffer.from(data));
    expect(storage.readSnapshotChunk(meta, 990, 100)).toEqual(Buffer.from(data.subarray(990)));
    expect(storage.readSnapshotChunk(snapMeta(50, 3, 1000, 'other'), 0, 10)).toBeNull();
    expect(segmentFiles()).toHaveLength(1);
    expect(snapFiles()).toHaveLength(1);

    const { state, storage: s2 } = await restart(storage);
    expect(state.snapshot).toEqual(meta);
    expect(show(state.entries)).toEqual(['51/3/v51@3']);
    expect(state.hardState).toEqual(hs(3, 50, 'n2'));
    expect(s2.readSnapshotChunk(meta, 100, 200)).toEqual(Buffer.from(data.subarray(100, 300)));
  });

  it('refuses to install a snapshot that is not fully staged', async () => {
    const { storage } = await start();
    const meta = snapMeta(5, 1, 10);
    await expect(
      storage.save(ready({ snapshotChunks: [{ meta, offset: 0, data: bytes(4) }], snapshot: meta })),
    ).rejects.toThrow(/not fully staged/);
  });

  it('ignores a snapshot that is not newer than the current one', async () => {
    const { storage } = await start();
    await storage.save(ready({ entries: range(1, 20, 1) }));
    await storage.saveSnapshot(snapMeta(10, 1, 2, 'ten'), bytes(2));
    await storage.saveSnapshot(snapMeta(8, 1, 2, 'eight'), bytes(2));
    await storage.saveSnapshot(snapMeta(10, 1, 2, 'ten-again'), bytes(2));
    expect(storage.stats().snapshot?.id).toBe('ten');
    expect(snapFiles()).toHaveLength(1);
  });

  it('a snapshot saved while an install of a newer one is in flight loses', async () => {
    const { storage } = await start();
    await storage.save(ready({ entries: range(1, 20, 1), hardState: hs(1, 20) }));
    const received = snapMeta(100, 2, 50, 'received');
    const own = storage.saveSnapshot(snapMeta(15, 1, 4000, 'own'), bytes(4000));
    const install = storage.save(
      ready({ snapshotChunks: [{ meta: received, offset: 0, data: bytes(50) }], snapshot: received }),
    );
    await Promise.all([own, install]);
    expect(storage.stats().snapshot?.id).toBe('received');
    expect(snapFiles()).toHaveLength(1);
    const { state } = await restart(storage);
    expect(state.snapshot?.id).toBe('received');
    expect(state.entries).toEqual([]);
  });

  it('saveSnapshot may overlap saves; both are durable afterwards', async () => {
    const { storage } = await start({ segmentBytes: 256 });
    await storage.save(ready({ entries: range(1, 10, 1), hardState: hs(1, 10) }));
    const snap = storage.saveSnapshot(snapMeta(10, 1, 1 << 20), bytes(1 << 20));
    for (let i = 11; i <= 20; i++)
      await storage.save(ready({ entries: [normal(i, 1)], hardState: hs(1, i) }));
    await snap;
    const { state } = await restart(storage);
    expect(state.snapshot?.index).toBe(10);
    expect(state.entries.map((e) => e.index)).toEqual(range(11, 20, 1).map((e) => e.index));
    expect(state.hardState.commit).toBe(20);
  });
});

describe('the lock', () => {
  it('refuses a second opener, naming the directory, until the first one closes', async () => {
    const { storage } = await start();
    await expect(openStorage(dir)).rejects.toThrow(dir);
    await expect(openStorage(dir)).rejects.toMatchObject({ code: 'STORAGE_LOCKED' });
    await storage.close();
    await start();
  });

  it('refuses a lock held by another live process', async () => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'LOCK'), JSON.stringify({ pid: process.ppid }));
    await expect(openStorage(dir)).rejects.toThrow(new RegExp(`locked by running process ${process.ppid}`));
  });

  it('takes over the lock of a dead process (kill -9 leaves it behind)', async () => {
    fs.writeFileSync(path.join(dir, 'LOCK'), JSON.stringify({ pid: 2 ** 22 + 12345 }));
    const logger = recordingLogger();
    await start({ logger });
    expect(logger.lines.some((l) => l.level === 'warn' && /stale/.test(l.msg))).toBe(true);
  });
});

describe('failures', () => {
  it('a failed fsync rejects the save, refuses later writes, and reopening recovers a prefix', async () => {
    let failFsync = false;
    const logger = recordingLogger();
    const { storage } = await start({
      logger,
      faults: {
        beforeFsync: () => {
          if (failFsync) throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
        },
      },
    });
    await storage.save(ready({ entries: range(1, 3, 1), hardState: hs(1, 1) }));
    failFsync = true;
    await expect(storage.save(ready({ entries: range(4, 6, 2), hardState: hs(2, 3) }))).rejects.toThrow(
      /EIO/,
    );
    await expect(storage.save(ready({ hardState: hs(3, 3) }))).rejects.toMatchObject({
      code: 'STORAGE_FAILED',
    });
    await expect(storage.saveSnapshot(snapMeta(2, 1, 1), bytes(1))).rejects.toBeInstanceOf(StorageError);
    expect(logger.lines.some((l) => l.level === 'error')).toBe(true);
    const { state } = await restart(storage);
    // The failed write may or may not have reached the disk, but never partially or out of order.
    const recovered = show(state.entries);
    if (recovered.length === 3) expect(state.hardState).toEqual(hs(1, 1));
    else
      expect({ recovered, hardState: state.hardState }).toEqual({
        recovered: [...show(range(1, 3, 1)), ...show(range(4, 6, 2))],
        hardState: hs(2, 3),
      });
  });

  it('a failed write (ENOSPC) rejects the save and the old state recovers', async () => {
    let full = false;
    const { storage } = await start({
      faults: {
        beforeWrite: () => {
          if (full) throw Object.assign(new Error('ENOSPC: injected'), { code: 'ENOSPC' });
        },
      },
    });
    await storage.save(ready({ entries: range(1, 2, 1), hardState: hs(1, 1) }));
    full = true;
    await expect(storage.save(ready({ entries: range(3, 4, 1) }))).rejects.toThrow(/ENOSPC/);
    const { state } = await restart(storage);
    expect(show(state.entries)).toEqual(show(range(1, 2, 1)));
    expect(state.hardState).toEqual(hs(1, 1));
  });

  it.each([
    ['the staged snapshot fsync', (file: string) => file.endsWith('staging.tmp')],
    ['the new segment fsync', (file: string) => file.endsWith('0000000000000002.wal.tmp')],
  ])('a failure of %s while installing a snapshot recovers the log from before it', async (_, failing) => {
    const meta = snapMeta(9, 2, 20);
    const { storage } = await start({
      faults: {
        beforeFsync: (file) => {
          if (failing(file)) throw new Error('EIO: injected');
        },
      },
    });
    await storage.save(ready({ entries: range(1, 3, 1), hardState: hs(1, 2) }));
    await expect(
      storage.save(ready({ snapshotChunks: [{ meta, offset: 0, data: bytes(20) }], snapshot: meta })),
    ).rejects.toThrow(/EIO/);
    const { state } = await restart(storage);
    expect(state.snapshot).toBeNull();
    expect(show(state.entries)).toEqual(show(range(1, 3, 1)));
    expect(snapFiles()).toEqual([]);
  });

  it('a failed fsync of the install record recovers either the old log or the whole install', async () => {
    const meta = snapMeta(9, 2, 20);
    const { storage } = await start({
      faults: {
        beforeFsync: (file) => {
          if (file.endsWith('0000000000000002.wal')) throw new Error('EIO: injected');
        },
      },
    });
    await storage.save(ready({ entries: range(1, 3, 1), hardState: hs(1, 2) }));
    await expect(
      storage.save(
        ready({
          snapshotChunks: [{ meta, offset: 0, data: bytes(20) }],
          snapshot: meta,
          entries: [normal(10, 2)],
        }),
      ),
    ).rejects.toThrow(/EIO/);
    const { state, storage: s2 } = await restart(storage);
    // The record reached the page cache before the fsync failed, so here it survives whole.
    expect(state.snapshot).toEqual(meta);
    expect(show(state.entries)).toEqual(['10/2/v10@2']);
    expect(s2.readSnapshotChunk(meta, 0, 20)).toEqual(Buffer.from(bytes(20)));
  });

  it('reports every fsync to onFsync', async () => {
    const durations: number[] = [];
    const { storage } = await start({ onFsync: (ms) => durations.push(ms) });
    const base = durations.length;
    await storage.save(ready({ entries: range(1, 100, 1), hardState: hs(1, 0) }));
    expect(durations.length - base).toBe(1); // group commit: one fsync per save
    expect(durations.every((d) => d >= 0)).toBe(true);
  });

  it('refuses calls after close', async () => {
    const { storage } = await start();
    await storage.close();
    await expect(storage.save(ready({ hardState: hs(1, 0) }))).rejects.toMatchObject({
      code: 'STORAGE_CLOSED',
    });
    expect(storage.readSnapshotChunk(snapMeta(1, 1, 1), 0, 1)).toBeNull();
  });
});
