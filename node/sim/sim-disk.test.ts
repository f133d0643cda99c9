// The simulated disk keeps exactly what a real one keeps, and the real storage on it keeps every
// acknowledged write through power losses without ever calling a crash corruption.

import { describe, expect, it } from 'vitest';
import type { StorageFs } from '../storage/fs.js';
import { openStorage } from '../storage/storage.js';
import { hs, normal, ready, snapMeta } from '../storage/test-util.js';
import { emptyDiskStats, fsError, SimDisk, SimFs } from './sim-disk.js';
import { World } from './world.js';

function rig(seed: number, fsyncMsMax = 0) {
  const world = new World(seed);
  const stats = emptyDiskStats();
  const disk = new SimDisk(world.rng, stats, fsyncMsMax);
  const mount = () => {
    const proc = { alive: true };
    const fs = new SimFs(
      disk,
      (d, fn) => world.after(d, () => proc.alive && fn()),
      () => proc.alive,
    );
    return { fs, kill: () => (proc.alive = false) };
  };
  return { world, disk, stats, mount };
}

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe('SimDisk', () => {
  it('keeps fsynced data through a power loss, and the page cache through a process exit', async () => {
    const { disk, mount } = rig(1);
    const { fs } = mount();
    fs.mkdirSync('/d', { recursive: true });
    const fh = await fs.open('/d/f', 'w');
    await fh.write(bytes('synced'), 0, 6, 0);
    await fh.datasync();
    await (await fs.open('/d', 'r')).sync();
    await fh.write(bytes('+more'), 0, 5, 6);
    disk.processExit();
    expect(text(mount().fs.readFileSync('/d/f'))).toBe('synced+more');
    for (let i = 0; i < 20; i++) {
      disk.powerLoss();
      expect(text(mount().fs.readFileSync('/d/f')).startsWith('synced')).toBe(true);
    }
  });

  it('loses pages whose fsync failed, even when the process only exits', async () => {
    const { disk, mount } = rig(2);
    const { fs } = mount();
    fs.mkdirSync('/d', { recursive: true });
    const fh = await fs.open('/d/f', 'w');
    await fh.write(bytes('old'), 0, 3, 0);
    await fh.datasync();
    await (await fs.open('/d', 'r')).sync();
    await fh.write(bytes('new'), 0, 3, 3);
    disk.faults = { fsync: { errno: 'EIO', probability: 1 } };
    await expect(fh.datasync()).rejects.toMatchObject({ code: 'EIO' });
    disk.faults = {};
    expect(text(fs.readFileSync('/d/f'))).toBe('oldnew'); // still in the cache...
    await fh.datasync(); // ...and a second fsync "succeeds" over lost pages (fsyncgate)
    disk.processExit();
    expect(text(mount().fs.readFileSync('/d/f'))).toBe('old');
  });

  it('drops pages whose fsync failed before the next process reads them, however the last one ended', async () => {
    // Seed 9408: a process whose open failed on an fsync is gone without an exit call; the next
    // one must not read (and build on) pages that never reached the disk.
    const { disk, mount } = rig(4);
    const first = mount();
    first.fs.mkdirSync('/d', { recursive: true });
    const fh = await first.fs.open('/d/f', 'w');
    await fh.write(bytes('old'), 0, 3, 0);
    await fh.datasync();
    await (await first.fs.open('/d', 'r')).sync();
    await fh.write(bytes('new'), 0, 3, 3);
    disk.faults = { fsync: { errno: 'EIO', probability: 1 } };
    await expect(fh.datasync()).rejects.toMatchObject({ code: 'EIO' });
    disk.faults = {};
    first.kill(); // no disk.processExit(): the harness may not get to call it
    expect(text(mount().fs.readFileSync('/d/f'))).toBe('old');
  });

  it('rolls back directory operations no directory fsync committed, in order', async () => {
    const { disk, mount } = rig(3);
    const outcomes = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const { fs } = mount();
      fs.mkdirSync('/d', { recursive: true });
      await (await fs.open('/', 'r')).sync();
      for (const name of fs.readdirSync('/d')) fs.rmSync(`/d/${name}`, { force: true });
      await (await fs.open('/d', 'r')).sync();
      (await fs.open('/d/a.tmp', 'w')).close();
      await fs.rename('/d/a.tmp', '/d/a');
      (await fs.open('/d/b', 'w')).close();
      disk.powerLoss();
      const names = mount().fs.readdirSync('/d').join(',');
      outcomes.add(names);
      // A prefix of [create a.tmp, rename to a, create b]: never b without a.
      expect(['', 'a.tmp', 'a', 'a,b']).toContain(names);
    }
    expect(outcomes.size).toBeGreaterThan(1);
  });
});

describe('DiskStorage on a SimDisk', () => {
  it('recovers every acknowledged save after power losses, and never calls a torn tail corrupt', async () => {
    let torn = 0;
    for (let seed = 0; seed < 12; seed++) {
      const { world, disk, stats, mount } = rig(seed, 4);
      let acked = 0;
      let ackedTerm = 0;
      for (let round = 0; round < 5; round++) {
        const { fs, kill } = mount();
        const opening = openStorage('/data', { fs, segmentBytes: 512 });
        let opened: Awaited<typeof opening> | null = null;
        void opening.then((o) => (opened = o));
        await world.run(world.now + 1_000, () => opened !== null);
        const { storage, state } = opened as unknown as Awaited<typeof opening>;
        const last = state.entries.at(-1)?.index ?? state.snapshot?.index ?? 0;
        expect(last, `seed ${seed} round ${round}`).toBeGreaterThanOrEqual(acked);
        expect(state.hardState.term).toBeGreaterThanOrEqual(ackedTerm);
        const term = state.hardState.term + 1;
        for (let i = last + 1; i < last + 12; i++) {
          storage
            .save(ready({ entries: [normal(i, term)], hardState: hs(term, i - 1) }))
            .then(() => {
              acked = Math.max(acked, i);
              ackedTerm = term;
            })
            .catch(() => undefined);
          if (i % 5 === 0) {
            const data = bytes(`state@${i}`);
            storage
              .saveSnapshot(snapMeta(i, term, data.length, `s${seed}-${i}`), data)
              .catch(() => undefined);
          }
        }
        // The power goes out part of the way through.
        await world.run(world.now + world.rng.int(40));
        kill();
        disk.powerLoss();
      }
      torn += stats.torn;
    }
    expect(torn).toBeGreaterThan(0);
  });

  it('a run whose open fails on an fsync leaves the next run a log a power loss cannot hole', async () => {
    // Seed 9408: run 1 dies with a record written but not fsynced; run 2's open fsyncs it, the
    // fsync fails (the page never reaches the disk) and the open fails; run 3 must not append
    // after that record, or a power loss leaves zeros before a durable record (called corrupt).
    for (let seed = 0; seed < 8; seed++) {
      const { world, disk, mount } = rig(seed);
      const first = mount();
      const a = await openStorage('/data', { fs: first.fs });
      await a.storage.save(ready({ entries: [normal(1, 1)], hardState: hs(1, 0) }));
      void a.storage.save(ready({ entries: [normal(2, 1)], hardState: hs(1, 1) })).catch(() => undefined);
      first.kill(); // its fsync never returns
      disk.processExit();

      const second = mount();
      disk.faults = { fsync: { errno: 'EIO', probability: 1 } };
      await expect(openStorage('/data', { fs: second.fs })).rejects.toMatchObject({ code: 'EIO' });
      disk.faults = {};
      second.kill(); // as the stack simulator ends a process whose open failed

      const third = mount();
      const b = await openStorage('/data', { fs: third.fs });
      const last = b.state.entries.at(-1)?.index ?? 0;
      await b.storage.save(ready({ entries: [normal(last + 1, 2)], hardState: hs(2, last) }));
      third.kill();
      disk.powerLoss();

      const c = await openStorage('/data', { fs: mount().fs });
      expect(c.state.entries.at(-1)?.index, `seed ${seed}`).toBe(last + 1);
      await world.run(world.now + 10);
    }
  });

  it('a restart after a failed directory fsync makes what it finds durable before acknowledging more', async () => {
    // The run that failed renamed a new segment into place, but its directory fsync failed: the
    // name exists in the page cache only. The next run must not append to it until it is durable.
    for (let seed = 0; seed < 8; seed++) {
      const { disk, mount } = rig(seed);
      const first = mount();
      const failDirSync = { on: false };
      const fs: StorageFs = Object.create(first.fs);
      fs.open = async (file, flags) => {
        const fh = await first.fs.open(file, flags);
        if (!failDirSync.on || first.fs.disk.lookup(file) !== 'dir') return fh;
        return { ...fh, sync: () => Promise.reject(fsError('EIO', 'fsync', file)) };
      };
      let failed = false;
      const a = await openStorage('/data', { fs, segmentBytes: 200, onFailure: () => (failed = true) });
      await a.storage.save(ready({ entries: [normal(1, 1)], hardState: hs(1, 0) }));
      failDirSync.on = true;
      for (let i = 2; !failed && i < 40; i++)
        await a.storage
          .save(ready({ entries: [normal(i, 1)], hardState: hs(1, i - 1) }))
          .catch(() => undefined);
      expect(failed).toBe(true);
      first.kill();
      disk.processExit();

      const second = mount();
      // No rotation in this run: nothing else would fsync the directory for it.
      const b = await openStorage('/data', { fs: second.fs, segmentBytes: 1 << 20 });
      const last = b.state.entries.at(-1)?.index ?? 0;
      for (let i = last + 1; i <= last + 3; i++)
        await b.storage.save(ready({ entries: [normal(i, 2)], hardState: hs(2, i - 1) }));
      second.kill();
      disk.powerLoss();

      const c = await openStorage('/data', { fs: mount().fs });
      expect(c.state.entries.at(-1)?.index, `seed ${seed}`).toBe(last + 3);
    }
  });
});
