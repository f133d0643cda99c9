import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nodeFs } from './fs.js';
import { DurableIo } from './io.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conflux-io-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('appends made durable one by one', () => {
  it('use O_DSYNC on the real file system when fsync is on: no separate fdatasync', async () => {
    const file = path.join(dir, 'a.wal');
    fs.writeFileSync(file, '');
    const calls: string[] = [];
    const fsWithoutDatasync = {
      ...nodeFs,
      openDsync: async (f: string) => {
        const fh = await nodeFs.openDsync?.(f);
        if (!fh) throw new Error('nodeFs has no openDsync');
        return Object.assign(Object.create(fh), {
          datasync: () => {
            calls.push('datasync');
            return fh.datasync();
          },
          write: fh.write.bind(fh),
          close: fh.close.bind(fh),
        });
      },
    };
    const durations: number[] = [];
    const io = new DurableIo({
      fs: fsWithoutDatasync,
      faults: { beforeFsync: (f) => calls.push(`hook ${path.basename(f)}`) },
      onFsync: (ms) => durations.push(ms),
    });
    const { fh, dsync } = await io.openForAppends(file);
    expect(dsync).toBe(true);
    const start = performance.now();
    await io.write(fh, file, new Uint8Array([1, 2, 3]), 0);
    await io.syncWritten(fh, file, dsync, start);
    await fh.close();
    // The fault hook and the fsync report still run once per append; fdatasync is not called.
    expect(calls).toEqual(['hook a.wal']);
    expect(durations).toHaveLength(1);
    expect(fs.readFileSync(file)).toEqual(Buffer.from([1, 2, 3]));
  });

  it.each([
    ['fsync is off', { fsync: false }, false],
    ['the file system has no O_DSYNC (the simulator)', { fs: { ...nodeFs, openDsync: undefined } }, false],
    ['fsync is on', {}, true],
  ])('open with O_DSYNC only when it makes each write durable: %s', async (_, opts, expected) => {
    const file = path.join(dir, 'b.wal');
    fs.writeFileSync(file, '');
    const { fh, dsync } = await new DurableIo(opts).openForAppends(file);
    // What the kernel holds for the descriptor (Linux): O_DSYNC is 0o10000 of the octal flags.
    const fd = (fh as unknown as { fd: number }).fd;
    const flags = /flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
    await fh.close();
    expect(dsync).toBe(expected);
    expect((Number.parseInt(flags ?? 'x', 8) & fs.constants.O_DSYNC) !== 0).toBe(expected);
  });

  it('without O_DSYNC, fdatasync after the write, reported once', async () => {
    const file = path.join(dir, 'c.wal');
    fs.writeFileSync(file, '');
    const durations: number[] = [];
    const io = new DurableIo({
      fs: { ...nodeFs, openDsync: undefined },
      onFsync: (ms) => durations.push(ms),
    });
    const { fh, dsync } = await io.openForAppends(file);
    await io.write(fh, file, new Uint8Array([4]), 0);
    await io.syncWritten(fh, file, dsync, performance.now());
    await fh.close();
    expect(durations).toHaveLength(1);
  });
});
