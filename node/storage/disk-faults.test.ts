// Disk faults at the storage layer: truncated and bit-flipped WAL segments, a failing disk
// (ENOSPC, EIO) through the injectable fault seam, fail-stop, and recovery once the disk is fixed.
// The node must refuse or recover as designed and never come back having forgotten a vote or an
// acknowledged entry.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { STORAGE_ERROR_CODES, StorageCorruptionError, StorageError } from './errors.js';
import { failStop, nodeStorageHooks, reportOpenFailure, STORAGE_FAILED_EXIT_CODE } from './fail-stop.js';
import { faultInjector, faultInjectorFromEnv, parseFaultSpec } from './fault-inject.js';
import { openStorage, type StorageOptions } from './storage.js';
import {
  frameOffsets,
  hs,
  normal,
  range,
  ready,
  recordingLogger,
  refusal,
  reopen,
  walFile as segment,
  show,
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

async function populate(n: number, opts: StorageOptions = {}): Promise<void> {
  const { storage } = await openStorage(dir, opts);
  for (let i = 1; i <= n; i++)
    await storage.save(ready({ entries: [normal(i, 1)], hardState: hs(1, i - 1) }));
  await storage.close();
}

describe('a truncated WAL', () => {
  it('in the last segment, inside its last record, loses only that unacknowledged record', async () => {
    await populate(6);
    const file = walFile(1);
    const last = frameOffsets(file).at(-1) as number;
    fs.truncateSync(file, last + 3); // inside the length field
    const logger = recordingLogger();
    const state = await reopen(dir, { logger });
    expect(show(state.entries)).toEqual(show(range(1, 5, 1)));
    expect(state.hardState).toEqual(hs(1, 4));
    expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      expect.stringMatching(new RegExp(`torn record: truncating ${file} at byte offset ${last}`)),
    ]);
  });

  it('in a segment that is not the last refuses to start, naming the file and offset', async () => {
    await populate(30, { segmentBytes: 300 });
    const file = walFile(2);
    expect(fs.existsSync(walFile(3))).toBe(true);
    const offsets = frameOffsets(file);
    const cut = (offsets[2] as number) + 5;
    fs.truncateSync(file, cut);
    const err = await refusal(dir);
    expect(err).toBeInstanceOf(StorageCorruptionError);
    expect(err).toMatchObject({ code: 'STORAGE_CORRUPTION', file, offset: offsets[2] });
    expect((err as Error).message).toMatch(/not the last one/);
    expect((err as Error).message).toMatch(/wipe its data directory and add it back as a new member/);
    expect(fs.statSync(file).size).toBe(cut); // evidence kept: nothing truncated further
  });

  it('with bytes missing from the middle of the last segment refuses (records follow the hole)', async () => {
    await populate(8);
    const file = walFile(1);
    const offsets = frameOffsets(file);
    const hole = (offsets[3] as number) + 4;
    const buf = fs.readFileSync(file);
    fs.writeFileSync(file, Buffer.concat([buf.subarray(0, hole), buf.subarray(hole + 20)]));
    const err = await refusal(dir);
    expect(err).toMatchObject({ code: 'STORAGE_CORRUPTION', file, offset: offsets[3] });
    expect((err as Error).message).toMatch(/yet a valid record follows/);
  });

  it('whose last record lost its length field to a bit flip refuses (the record is all there)', async () => {
    await populate(4);
    const file = walFile(1);
    const last = frameOffsets(file).at(-1) as number;
    const buf = fs.readFileSync(file);
    buf[last + 2] = (buf[last + 2] as number) ^ 0x01; // length now runs past the end of the file
    fs.writeFileSync(file, buf);
    await expect(refusal(dir)).resolves.toMatchObject({ code: 'STORAGE_CORRUPTION', file, offset: last });
  });
});

describe('a bit-flipped WAL', () => {
  it.each([
    ['the vote of the last record', (offsets: number[], size: number) => [offsets.at(-1) as number, size]],
    ['a record in the middle', (offsets: number[]) => [offsets[2] as number, offsets[3] as number]],
    ['the first entry record', (offsets: number[]) => [offsets[1] as number, offsets[2] as number]],
  ])('in %s refuses to start with STORAGE_CORRUPTION and the offset', async (_, span) => {
    await populate(5);
    const file = walFile(1);
    const size = fs.statSync(file).size;
    const [start, end] = span(frameOffsets(file), size) as [number, number];
    // Flip a payload byte (past the 8-byte prefix and the type byte).
    const at = start + 9 + Math.floor((end - start - 9) / 2);
    const buf = fs.readFileSync(file);
    buf[at] = (buf[at] as number) ^ 0x10;
    fs.writeFileSync(file, buf);
    const err = await refusal(dir);
    expect(err).toMatchObject({ code: 'STORAGE_CORRUPTION', file, offset: start });
    expect(fs.statSync(file).size).toBe(size);
  });

  it('never recovers a state that lost an acknowledged vote', async () => {
    const { storage } = await openStorage(dir);
    await storage.save(ready({ entries: range(1, 3, 1), hardState: hs(1, 3, 'n1') }));
    // The vote for n2 in term 2 was fsynced, so it may have been granted.
    await storage.save(ready({ hardState: hs(2, 3, 'n2') }));
    await storage.close();
    const file = walFile(1);
    const buf = fs.readFileSync(file);
    buf[buf.length - 3] = (buf[buf.length - 3] as number) ^ 0x04;
    fs.writeFileSync(file, buf);
    // Dropping the record would bring back term 1 and let this node vote again in term 2.
    await expect(refusal(dir)).resolves.toMatchObject({ code: 'STORAGE_CORRUPTION' });
  });
});

describe('the fault seam (CONFLUX_FAULT_INJECT)', () => {
  it('parses write and fsync faults with an optional trigger file', () => {
    expect(parseFaultSpec('write=ENOSPC')).toEqual({ write: 'ENOSPC' });
    expect(parseFaultSpec('fsync=EIO, when=/tmp/x')).toEqual({ fsync: 'EIO', when: '/tmp/x' });
    expect(faultInjectorFromEnv({})).toBeUndefined();
    expect(faultInjectorFromEnv({ CONFLUX_FAULT_INJECT: '' })).toBeUndefined();
  });

  it.each(['write=ENOMEM', 'when=/tmp/x', 'fsync', 'read=EIO', 'write=ENOSPC,fsync=EIO,extra=1'])(
    'refuses %j with FAULT_INJECTION_INVALID',
    (text) => {
      expect(() => parseFaultSpec(text)).toThrow(
        expect.objectContaining({ code: 'FAULT_INJECTION_INVALID', message: expect.stringContaining(text) }),
      );
    },
  );

  it('fails like the system does, only while the trigger file exists', () => {
    const trigger = path.join(dir, 'disk-full');
    const faults = faultInjector({ write: 'ENOSPC', when: trigger });
    expect(faults.beforeFsync).toBeUndefined();
    faults.beforeWrite?.('/d/wal/1.wal', new Uint8Array(1));
    fs.writeFileSync(trigger, '');
    let thrown: unknown;
    try {
      faults.beforeWrite?.('/d/wal/1.wal', new Uint8Array(1));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: 'ENOSPC', syscall: 'write', path: '/d/wal/1.wal' });
  });

  it('adds nothing to the storage options when unset, and warns loudly when set', () => {
    const logger = recordingLogger();
    expect(Object.keys(nodeStorageHooks({}, logger))).toEqual(['onFailure']);
    expect(logger.lines).toEqual([]);
    const hooks = nodeStorageHooks({ CONFLUX_FAULT_INJECT: 'fsync=EIO' }, logger);
    expect(hooks.faults?.beforeFsync).toBeTypeOf('function');
    expect(logger.lines[0]).toMatchObject({
      level: 'warn',
      msg: expect.stringMatching(/never use this in production/),
    });
  });
});

describe('a failing disk', () => {
  it.each([
    ['write', 'ENOSPC'],
    ['write', 'EIO'],
    ['fsync', 'EIO'],
    ['fsync', 'ENOSPC'],
  ] as const)(
    'a failed %s (%s) fail-stops before the save is acknowledged; a restart recovers',
    async (op, errno) => {
      const trigger = path.join(dir, 'fault');
      const failures: StorageError[] = [];
      const order: string[] = [];
      const { storage } = await openStorage(path.join(dir, 'data'), {
        faults: faultInjector({ [op]: errno, when: trigger }),
        onFailure: (err) => {
          failures.push(err);
          order.push('fail-stop');
        },
      });
      await storage.save(ready({ entries: range(1, 3, 1), hardState: hs(1, 2) }));
      fs.writeFileSync(trigger, '');
      const saving = storage.save(ready({ entries: range(4, 5, 1), hardState: hs(1, 3) })).then(
        () => order.push('acknowledged'),
        (err: unknown) => {
          order.push('rejected');
          return err;
        },
      );
      await expect(saving).resolves.toMatchObject({ code: errno });
      expect(order).toEqual(['fail-stop', 'rejected']);
      expect(failures).toEqual([expect.objectContaining({ code: 'STORAGE_FAILED' })]);
      expect(failures[0]?.message).toMatch(new RegExp(`${errno}.*restart the node`));
      // Poisoned: no retry of the failed fsync, nothing else is written either.
      fs.rmSync(trigger);
      await expect(storage.save(ready({ hardState: hs(2, 3) }))).rejects.toMatchObject({
        code: 'STORAGE_FAILED',
      });
      expect(failures).toHaveLength(1);
      await storage.close();

      // The disk is healthy again: the acknowledged prefix is there, and the failed save is there
      // whole or not at all.
      const { storage: again, state } = await openStorage(path.join(dir, 'data'));
      const got = show(state.entries);
      if (got.length === 3) expect(state.hardState).toEqual(hs(1, 2));
      else expect({ got, hs: state.hardState }).toEqual({ got: show(range(1, 5, 1)), hs: hs(1, 3) });
      await again.save(ready({ entries: [normal(got.length + 1, 2)], hardState: hs(2, 3) }));
      await again.close();
      expect(
        await openStorage(path.join(dir, 'data')).then(async (r) => {
          await r.storage.close();
          return r.state.entries.length;
        }),
      ).toBe(got.length + 1);
    },
  );

  it('a write that stopped half-way (ENOSPC after some bytes) leaves a torn tail that restarts fine', async () => {
    await populate(3);
    const file = walFile(1);
    const size = fs.statSync(file).size;
    // What a short write leaves: the first bytes of a record that never completed.
    const { storage } = await openStorage(path.join(dir, 'scratch'));
    await storage.save(ready({ entries: [normal(4, 1)], hardState: hs(1, 3) }));
    await storage.close();
    const scratch = path.join(dir, 'scratch', 'wal', '0000000000000001.wal');
    const record = fs.readFileSync(scratch).subarray(frameOffsets(scratch).at(-1) as number);
    fs.appendFileSync(file, record.subarray(0, Math.floor(record.length / 2)));
    const state = await reopen(dir);
    expect(show(state.entries)).toEqual(show(range(1, 3, 1)));
    expect(fs.statSync(file).size).toBe(size);
  });

  it('a failed snapshot write fail-stops too', async () => {
    const failures: StorageError[] = [];
    let broken = false;
    const { storage: s } = await openStorage(dir, {
      faults: {
        beforeFsync: (file) => {
          if (broken && file.includes(`${path.sep}snap${path.sep}`)) throw new Error('EIO: injected');
        },
      },
      onFailure: (err) => failures.push(err),
    });
    await s.save(ready({ entries: range(1, 4, 1), hardState: hs(1, 4) }));
    broken = true;
    const meta = {
      index: 4,
      term: 1,
      membership: { configs: [['n1']], learners: [], retired: [], nodes: {}, cluster: null },
      sizeBytes: 3,
      id: 's-4',
    };
    await expect(s.saveSnapshot(meta, new Uint8Array([1, 2, 3]))).rejects.toThrow(/EIO/);
    expect(failures.map((f) => f.code)).toEqual(['STORAGE_FAILED']);
    await expect(s.save(ready({ hardState: hs(2, 4) }))).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    await s.close();
    expect((await reopen(dir)).snapshot).toBeNull();
  });
});

describe('fail-stop and start-up refusals in the node', () => {
  it.each(STORAGE_ERROR_CODES)('%s is documented in the README section "Disk faults"', (code) => {
    const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### Disk faults'), readme.indexOf('## Other scripts'));
    expect(section).toContain(`\`${code}`);
  });

  it('failStop logs the code and the errno, then exits with EX_IOERR', () => {
    const logger = recordingLogger();
    const exits: number[] = [];
    const cause = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    failStop(new StorageError('STORAGE_FAILED', 'storage in /d failed', { cause }), logger, (c) =>
      exits.push(c),
    );
    expect(exits).toEqual([STORAGE_FAILED_EXIT_CODE]);
    expect(STORAGE_FAILED_EXIT_CODE).toBe(74);
    expect(logger.lines).toEqual([
      expect.objectContaining({
        level: 'error',
        obj: expect.objectContaining({ code: 'STORAGE_FAILED', errno: 'ENOSPC' }),
        msg: expect.stringMatching(/^STORAGE_FAILED: .*fail-stop/),
      }),
    ]);
  });

  it('reportOpenFailure logs a corruption with its file and offset and rethrows it', () => {
    const logger = recordingLogger();
    const err = new StorageCorruptionError('/d/wal/1.wal', 42, 'checksum mismatch');
    expect(() => reportOpenFailure(err, logger)).toThrow(err);
    expect(logger.lines[0]).toMatchObject({
      level: 'error',
      obj: { code: 'STORAGE_CORRUPTION', file: '/d/wal/1.wal', offset: 42 },
    });
  });
});
