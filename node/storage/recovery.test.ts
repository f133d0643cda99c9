// Recovery from damaged data directories: a torn tail is cut off with a warning; anything else
// that fails a check stops the open with an error naming the file and the byte offset.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageCorruptionError } from './errors.js';
import { openStorage, type StorageOptions } from './storage.js';
import {
  frameOffsets,
  hs,
  normal,
  range,
  ready,
  recordingLogger,
  reopen,
  walFile as segment,
  show,
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

const walFile = (seq: number) => segment(dir, seq);

/** Flip one byte of `file` at `offset`. */
function flip(file: string, offset: number): void {
  const buf = fs.readFileSync(file);
  buf[offset] = (buf[offset] as number) ^ 0x5a;
  fs.writeFileSync(file, buf);
}

/** A closed data directory with entries 1..n, one save (one record) per entry after the header. */
async function populate(n: number, opts: StorageOptions = {}): Promise<void> {
  const { storage } = await openStorage(dir, opts);
  for (let i = 1; i <= n; i++)
    await storage.save(ready({ entries: [normal(i, 1)], hardState: hs(1, i - 1) }));
  await storage.close();
}

describe('a torn tail', () => {
  it('(the last record cut mid-way) is truncated to the last good record, with a warning', async () => {
    await populate(5);
    const file = walFile(1);
    const size = fs.statSync(file).size;
    const lastRecord = frameOffsets(file).at(-1) as number;
    fs.truncateSync(file, lastRecord + 7);
    const logger = recordingLogger();
    const state = await reopen(dir, { logger });
    expect(show(state.entries)).toEqual(show(range(1, 4, 1)));
    expect(state.hardState).toEqual(hs(1, 3));
    const warn = logger.lines.find((l) => l.level === 'warn');
    expect(warn?.msg).toContain(file);
    expect(warn?.msg).toContain(`byte offset ${lastRecord}`);
    expect(warn?.obj).toMatchObject({ file, offset: lastRecord, droppedBytes: 7 });
    expect(fs.statSync(file).size).toBe(lastRecord);
    expect(size).toBeGreaterThan(lastRecord);

    // The log continues cleanly from there.
    const { storage } = await openStorage(dir);
    await storage.save(ready({ entries: [normal(5, 2)] }));
    await storage.close();
    expect(show((await reopen(dir)).entries)).toEqual([...show(range(1, 4, 1)), '5/2/v5@2']);
  });

  it('(the last record full length, a sector of it never written) is truncated too', async () => {
    const { storage } = await openStorage(dir);
    await storage.save(ready({ entries: [normal(1, 1)], hardState: hs(1, 0) }));
    await storage.save(ready({ entries: [normal(2, 1, 'x'.repeat(2000))], hardState: hs(1, 1) }));
    await storage.close();
    const file = walFile(1);
    const last = frameOffsets(file).at(-1) as number;
    // The file has its final size, but one sector of the record still reads as zeros.
    const buf = fs.readFileSync(file);
    const sector = Math.ceil((last + 16) / 512) * 512;
    buf.fill(0, sector, sector + 512);
    fs.writeFileSync(file, buf);
    const logger = recordingLogger();
    expect((await reopen(dir, { logger })).entries.map((e) => e.index)).toEqual([1]);
    expect(logger.lines.find((l) => l.level === 'warn')?.obj).toMatchObject({ offset: last });
  });

  it('(zeroes the file system appended after a crash) is truncated', async () => {
    await populate(3);
    const file = walFile(1);
    const size = fs.statSync(file).size;
    fs.appendFileSync(file, Buffer.alloc(4096));
    expect((await reopen(dir)).entries.map((e) => e.index)).toEqual([1, 2, 3]);
    expect(fs.statSync(file).size).toBe(size);
  });
});

describe('corruption', () => {
  it('in the middle of the last segment, with valid records after it, names the file and offset', async () => {
    await populate(6);
    const file = walFile(1);
    const third = frameOffsets(file)[3] as number;
    flip(file, third + 12);
    const err = await openStorage(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageCorruptionError);
    expect(err).toMatchObject({ file, offset: third, code: 'STORAGE_CORRUPTION' });
    expect((err as Error).message).toContain(`${file} is corrupt at byte offset ${third}`);
    expect(fs.readFileSync(file).length).toBeGreaterThan(third); // nothing was truncated
  });

  it('in the last record, whole but failing its checksum, stops the open (it may have been acknowledged)', async () => {
    await populate(3);
    const file = walFile(1);
    const last = frameOffsets(file).at(-1) as number;
    const before = fs.readFileSync(file);
    flip(file, fs.statSync(file).size - 2);
    const err = await openStorage(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageCorruptionError);
    expect(err).toMatchObject({ file, offset: last, code: 'STORAGE_CORRUPTION' });
    expect((err as Error).message).toMatch(/not a torn write/);
    expect(fs.readFileSync(file).length).toBe(before.length); // nothing was truncated
  });

  it('in the length field of a middle record is found too (the scan resynchronises)', async () => {
    await populate(6);
    const file = walFile(1);
    const second = frameOffsets(file)[2] as number;
    flip(file, second + 1);
    await expect(openStorage(dir)).rejects.toMatchObject({ file, offset: second });
  });

  it('in an earlier segment stops the open, even in its last record', async () => {
    await populate(30, { segmentBytes: 300 });
    const file = walFile(2);
    expect(fs.existsSync(walFile(3))).toBe(true);
    const last = frameOffsets(file).at(-1) as number;
    flip(file, fs.statSync(file).size - 1);
    await expect(openStorage(dir)).rejects.toMatchObject({ file, offset: last });
  });

  it('in a segment header stops the open', async () => {
    await populate(2);
    flip(walFile(1), 20);
    await expect(openStorage(dir)).rejects.toThrow(/unreadable segment header/);
  });

  it('a missing segment in the middle stops the open', async () => {
    await populate(30, { segmentBytes: 300 });
    fs.rmSync(walFile(2));
    await expect(openStorage(dir)).rejects.toThrow(/segment 2 between 1 and 3 is missing/);
  });

  it('a swapped segment is caught by its header', async () => {
    await populate(30, { segmentBytes: 300 });
    fs.copyFileSync(walFile(2), walFile(3));
    await expect(openStorage(dir)).rejects.toMatchObject({ file: walFile(3), offset: 0 });
  });

  it('a failed open releases the lock', async () => {
    await populate(3);
    flip(walFile(1), 20);
    await expect(openStorage(dir)).rejects.toThrow();
    fs.rmSync(path.join(dir, 'wal'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'wal'));
    const { storage } = await openStorage(dir);
    await storage.close();
  });
});

describe('snapshot files', () => {
  async function withSnapshot(): Promise<string> {
    const { storage } = await openStorage(dir);
    await storage.save(ready({ entries: range(1, 10, 1), hardState: hs(1, 10) }));
    await storage.saveSnapshot(snapMeta(8, 1, 100), new Uint8Array(100).fill(3));
    await storage.close();
    const [name] = fs.readdirSync(path.join(dir, 'snap'));
    return path.join(dir, 'snap', name as string);
  }

  it('a flipped data byte stops the open, naming the file', async () => {
    const file = await withSnapshot();
    flip(file, 50);
    const err = await openStorage(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageCorruptionError);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toMatch(/data checksum mismatch/);
  });

  it('a flipped footer byte stops the open at the footer offset', async () => {
    const file = await withSnapshot();
    flip(file, 105);
    await expect(openStorage(dir)).rejects.toMatchObject({ file, offset: 100 });
  });

  it('a snapshot the WAL refers to that is missing stops the open, naming it', async () => {
    const file = await withSnapshot();
    fs.rmSync(file);
    await expect(openStorage(dir)).rejects.toThrow(new RegExp(`${file}.*referenced by the WAL is missing`));
  });

  it('a log lost while snapshots remain stops the open', async () => {
    await withSnapshot();
    for (const f of fs.readdirSync(path.join(dir, 'wal'))) fs.rmSync(path.join(dir, 'wal', f));
    await expect(openStorage(dir)).rejects.toThrow(/log .* was lost/);
  });

  it('a commit index beyond the log stops the open: committed entries were lost', async () => {
    const { storage } = await openStorage(dir);
    await storage.save(ready({ entries: range(1, 3, 1), hardState: hs(1, 3) }));
    await storage.save(ready({ hardState: hs(1, 5) }));
    await storage.close();
    await expect(openStorage(dir)).rejects.toMatchObject({
      code: 'STORAGE_CORRUPTION',
      message: expect.stringMatching(/commit index 5 but its log ends at 3/),
    });
  });

  it('orphan temp files and unreferenced snapshot files are removed', async () => {
    const file = await withSnapshot();
    const orphans = [
      path.join(dir, 'snap', 'staging.tmp'),
      path.join(dir, 'snap', '0000000000000009-deadbeef.snap.tmp'),
      path.join(dir, 'snap', '0000000000000009-deadbeef.snap'),
      path.join(dir, 'wal', '0000000000000002.wal.tmp'),
    ];
    for (const f of orphans) fs.writeFileSync(f, 'x');
    const state = await reopen(dir);
    expect(state.snapshot?.index).toBe(8);
    for (const f of orphans) expect(fs.existsSync(f)).toBe(false);
    expect(fs.existsSync(file)).toBe(true);
  });
});
