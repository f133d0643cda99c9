// A damaged snapshot file: the node falls back to the older snapshot it keeps plus the WAL
// after it, or refuses to start naming the file when no older state can stand in (none kept, it
// is damaged too, or the bad snapshot was installed from the leader).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageCorruptionError, type StorageError } from './errors.js';
import { openStorage } from './storage.js';
import {
  hs,
  normal,
  range,
  ready,
  recordingLogger,
  refusal,
  reopen,
  snapMeta,
  tempDir,
} from './test-util.js';

let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});

afterEach(async () => {
  await cleanup();
});

describe('a damaged snapshot file', () => {
  const snapDir = () => path.join(dir, 'snap');
  const snapFile = (index: number) =>
    path.join(
      snapDir(),
      fs
        .readdirSync(snapDir())
        .find((n) => n.startsWith(`${String(index).padStart(16, '0')}-`) && n.endsWith('.snap')) as string,
    );
  const data = (n: number, fill: number) => new Uint8Array(n).fill(fill);

  /** Entries 1..25 in small segments, snapshots at 10 and at 20 (the current one). */
  async function twoSnapshots(): Promise<void> {
    const { storage } = await openStorage(dir, { segmentBytes: 400 });
    for (let i = 1; i <= 25; i++)
      await storage.save(ready({ entries: [normal(i, 1, 'w'.repeat(30))], hardState: hs(1, i) }));
    await storage.saveSnapshot(snapMeta(10, 1, 64), data(64, 1));
    await storage.saveSnapshot(snapMeta(20, 1, 64), data(64, 2));
    await storage.close();
  }

  it.each([
    [
      'bit-flipped',
      (file: string) => {
        const buf = fs.readFileSync(file);
        buf[30] = (buf[30] as number) ^ 0x01;
        fs.writeFileSync(file, buf);
      },
    ],
    ['truncated', (file: string) => fs.truncateSync(file, 40)],
    ['missing', (file: string) => fs.rmSync(file)],
  ])('(%s) is replaced by the older snapshot plus the WAL, with a warning', async (_, damage) => {
    await twoSnapshots();
    const bad = snapFile(20);
    damage(bad);
    const logger = recordingLogger();
    const { storage, state } = await openStorage(dir, { logger, segmentBytes: 400 });
    expect(state.snapshot?.id).toBe('s-10');
    expect(state.entries.map((e) => e.index)).toEqual(range(11, 25, 1).map((e) => e.index));
    expect(state.hardState).toEqual(hs(1, 25));
    expect(storage.readSnapshotChunk(snapMeta(10, 1, 64), 0, 64)).toEqual(Buffer.from(data(64, 1)));
    const warn = logger.lines.find((l) => l.level === 'warn');
    expect(warn?.msg).toContain(bad);
    expect(warn?.msg).toMatch(/recovered from the older snapshot at index 10 and the WAL/);
    if (fs.existsSync(`${bad}.corrupt`)) expect(fs.existsSync(bad)).toBe(false);

    // The WAL records the fallback: later opens start from it without any warning, and newer
    // snapshots (even one below the bad one's index) work as usual.
    await storage.saveSnapshot(snapMeta(15, 1, 8, 's-15'), data(8, 3));
    await storage.close();
    const quiet = recordingLogger();
    const again = await reopen(dir, { logger: quiet, segmentBytes: 400 });
    expect(again.snapshot?.id).toBe('s-15');
    expect(again.entries.map((e) => e.index)).toEqual(range(16, 25, 1).map((e) => e.index));
    expect(quiet.lines.filter((l) => l.level !== 'info')).toEqual([]);
  });

  it('damaged while the node runs is never served: the storage fails and the restart falls back', async () => {
    await twoSnapshots();
    const failures: StorageError[] = [];
    const { storage } = await openStorage(dir, { segmentBytes: 400, onFailure: (e) => failures.push(e) });
    const meta = snapMeta(20, 1, 64);
    expect(storage.readSnapshotChunk(meta, 0, 64)).toEqual(Buffer.from(data(64, 2)));
    // A misdirected write lands in the current snapshot's data while it is open and served.
    const bad = snapFile(20);
    const buf = fs.readFileSync(bad);
    buf[5] = (buf[5] as number) ^ 0xff;
    fs.writeFileSync(bad, buf);
    // A transfer (or an install, or a restart) starts at offset 0: the damage is found there,
    // before any byte reaches a follower that would install it under a checksum of its own.
    expect(storage.readSnapshotChunk(meta, 0, 64)).toBeNull();
    expect(failures.map((e) => e.code)).toEqual(['STORAGE_FAILED']);
    await expect(storage.save(ready({ entries: [normal(26, 1)] }))).rejects.toMatchObject({
      code: 'STORAGE_FAILED',
    });
    await storage.close();
    const state = await reopen(dir, { segmentBytes: 400 });
    expect(state.snapshot?.id).toBe('s-10');
    expect(state.entries.map((e) => e.index)).toEqual(range(11, 25, 1).map((e) => e.index));
  });

  it('damaged while a transfer reads it in chunks: the last chunk is refused, so no follower completes it', async () => {
    await twoSnapshots();
    const failures: StorageError[] = [];
    const { storage } = await openStorage(dir, { segmentBytes: 400, onFailure: (e) => failures.push(e) });
    const meta = snapMeta(20, 1, 64);
    // An intact transfer in 16-byte chunks, one retried, goes through.
    for (const offset of [0, 16, 16, 32, 48]) {
      expect(storage.readSnapshotChunk(meta, offset, 16)).toEqual(Buffer.from(data(16, 2)));
    }
    const bad = snapFile(20);
    const buf = fs.readFileSync(bad);
    buf[40] = (buf[40] as number) ^ 0x01;
    fs.writeFileSync(bad, buf);
    // The next transfer gets the chunks before the end (damaged bytes included)...
    expect(storage.readSnapshotChunk(meta, 0, 32)).toEqual(Buffer.from(data(32, 2)));
    expect(storage.readSnapshotChunk(meta, 32, 16)).not.toBeNull();
    expect(failures).toEqual([]);
    // ...but never the last one: the running checksum does not match the footer's.
    expect(storage.readSnapshotChunk(meta, 48, 16)).toBeNull();
    expect(failures.map((e) => e.code)).toEqual(['STORAGE_FAILED']);
    expect(String(failures[0]?.cause ?? failures[0]?.message)).toMatch(/checksum mismatch/);
    await storage.close();
  });

  it('a last chunk with no running checksum behind it checks the whole file', async () => {
    await twoSnapshots();
    const failures: StorageError[] = [];
    const { storage } = await openStorage(dir, { segmentBytes: 400, onFailure: (e) => failures.push(e) });
    const meta = snapMeta(20, 1, 64);
    expect(storage.readSnapshotChunk(meta, 48, 16)).toEqual(Buffer.from(data(16, 2)));
    const bad = snapFile(20);
    const buf = fs.readFileSync(bad);
    buf[3] = (buf[3] as number) ^ 0x80;
    fs.writeFileSync(bad, buf);
    expect(storage.readSnapshotChunk(meta, 48, 16)).toBeNull();
    expect(failures.map((e) => e.code)).toEqual(['STORAGE_FAILED']);
    await storage.close();
  });

  it('a whole read in slices gives the snapshot back, and refuses it once damaged', async () => {
    const size = 20 * 2 ** 20 + 123; // three 8 MiB slices, the last one short
    const big = new Uint8Array(size);
    for (let i = 0; i < size; i++) big[i] = (i * 7) & 0xff;
    const first = await openStorage(dir);
    await first.storage.save(ready({ entries: range(1, 5, 1), hardState: hs(1, 5) }));
    await first.storage.saveSnapshot(snapMeta(5, 1, size), big);
    await first.storage.close();
    const failures: StorageError[] = [];
    const { storage } = await openStorage(dir, { onFailure: (e) => failures.push(e) });
    const meta = snapMeta(5, 1, size);
    expect(Buffer.from((await storage.readSnapshot(meta)) as Uint8Array).equals(Buffer.from(big))).toBe(true);
    const bad = snapFile(5);
    const fd = fs.openSync(bad, 'r+');
    fs.writeSync(fd, Buffer.from([big[9 * 2 ** 20]! ^ 0x10]), 0, 1, 9 * 2 ** 20);
    fs.closeSync(fd);
    expect(await storage.readSnapshot(meta)).toBeNull();
    expect(failures.map((e) => e.code)).toEqual(['STORAGE_FAILED']);
    await storage.close();
  });

  it('without an older snapshot refuses to start, naming the file', async () => {
    const { storage } = await openStorage(dir);
    await storage.save(ready({ entries: range(1, 12, 1), hardState: hs(1, 12) }));
    await storage.saveSnapshot(snapMeta(10, 1, 64), data(64, 1));
    await storage.close();
    const bad = snapFile(10);
    fs.truncateSync(bad, 70);
    const err = await refusal(dir);
    expect(err).toBeInstanceOf(StorageCorruptionError);
    expect(err).toMatchObject({ code: 'STORAGE_CORRUPTION', file: bad });
    expect((err as Error).message).toMatch(
      /no older snapshot can stand in for it \(the WAL names no older snapshot\)/,
    );
    expect(fs.existsSync(bad)).toBe(true); // evidence kept where it was
  });

  it('refuses when the older snapshot is damaged too', async () => {
    await twoSnapshots();
    fs.truncateSync(snapFile(20), 10);
    fs.truncateSync(snapFile(10), 10);
    const bad = snapFile(20);
    const err = await refusal(dir, { segmentBytes: 400 });
    expect(err).toMatchObject({ code: 'STORAGE_CORRUPTION', file: bad });
    expect((err as Error).message).toMatch(/no older snapshot can stand in/);
    expect(fs.existsSync(bad)).toBe(true);
  });

  it('refuses when the snapshot was installed from the leader (the log before it is not ours)', async () => {
    const meta = snapMeta(50, 3, 32);
    const { storage } = await openStorage(dir);
    await storage.save(ready({ entries: range(1, 5, 1), hardState: hs(1, 5) }));
    await storage.saveSnapshot(snapMeta(4, 1, 8), data(8, 1));
    await storage.save(
      ready({
        snapshotChunks: [{ meta, offset: 0, data: data(32, 9) }],
        snapshot: meta,
        hardState: hs(3, 50),
      }),
    );
    await storage.close();
    const bad = snapFile(50);
    fs.truncateSync(bad, 5);
    await expect(refusal(dir)).resolves.toMatchObject({ code: 'STORAGE_CORRUPTION', file: bad });
  });
});
