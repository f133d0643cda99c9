// A simulated disk behind the storage's `StorageFs` seam, with the failure model of a real one:
//
// - The page cache: a write lands in memory at once and is readable; only fsync (fdatasync) makes
//   a file's data durable. Directory entries (create, rename, unlink, mkdir) go through an ordered
//   metadata journal that a directory fsync commits; a power loss keeps a prefix of it.
// - A process crash (kill -9, or a fail-stop exit) loses nothing the page cache holds, except
//   pages whose fsync failed (they were marked clean without reaching the disk: "fsyncgate");
//   the next process of the disk never sees those, whether or not the last one exited cleanly.
// - A power loss keeps each unsynced write whole, drops it, or tears it at 4 KiB page boundaries
//   (pages that never reached the disk read as what was there before; the file size covers only
//   pages that did). These are the crashes a correct disk produces: recovery must never call them
//   corruption.
// - Injected faults: ENOSPC or EIO on write (ENOSPC may leave a partial write behind), EIO or
//   ENOSPC on fsync (the pages are then lost), slow fsyncs, and misdirected writes (the data lands
//   at another offset, the intended range holds stale garbage): silent corruption, which the
//   storage's checksums must catch at the next open.
//
// `SimDisk` is the medium and outlives processes; `SimFs` is one process's view of it (its file
// descriptors and pending calls): a crash abandons the view, and calls it had in flight never
// complete.

import * as path from 'node:path';
import type { SeededRng } from '../raft/rng.js';
import type { StorageFileHandle, StorageFs } from '../storage/fs.js';
import { applyOp, type DataOp, Inode, PAGE_BYTES } from './sim-pages.js';

export { PAGE_BYTES } from './sim-pages.js';

type Entry = Inode | 'dir';
type MetaOp =
  | { op: 'set'; path: string; entry: Entry }
  | { op: 'del'; path: string }
  | { op: 'rename'; from: string; to: string };

export type DiskErrno = 'ENOSPC' | 'EIO';

/** Faults armed on one disk by the nemesis. */
export interface DiskFaults {
  write?: { errno: DiskErrno; probability: number };
  fsync?: { errno: DiskErrno; probability: number };
  /** Chance that a write lands at another offset of its file. */
  misdirect?: number;
  /** Extra latency of every fsync. */
  slowMs?: number;
}

export interface DiskStats {
  enospcWrite: number;
  eioWrite: number;
  eioFsync: number;
  enospcFsync: number;
  misdirected: number;
  /** Unsynced writes a power loss tore, dropped, or kept. */
  torn: number;
  dropped: number;
  metadataRolledBack: number;
}

export const emptyDiskStats = (): DiskStats => ({
  enospcWrite: 0,
  eioWrite: 0,
  eioFsync: 0,
  enospcFsync: 0,
  misdirected: 0,
  torn: 0,
  dropped: 0,
  metadataRolledBack: 0,
});

/** An error shaped like the one node:fs gives. */
export function fsError(code: string, syscall: string, file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated, ${syscall} '${file}'`), { code, syscall, path: file });
}

export class SimDisk {
  private entries = new Map<string, Entry>([['/', 'dir']]);
  private durable = new Map<string, Entry>([['/', 'dir']]);
  private journal: MetaOp[] = [];
  /** Metadata ops ever committed or discarded: journal[i] is op number `journalBase + i`. */
  private journalBase = 0;
  private nextInode = 1;
  faults: DiskFaults = {};
  /** Injected faults that fired (and silent corruption), for the coverage summary and checks. */
  injected = 0;
  corrupted = false;

  constructor(
    readonly rng: SeededRng,
    readonly stats: DiskStats,
    /** Base fsync latency bound (ms). */
    readonly fsyncMsMax: number,
  ) {}

  // -- namespace ---------------------------------------------------------------------------------

  lookup(p: string): Entry | undefined {
    return this.entries.get(p);
  }

  private meta(op: MetaOp): void {
    this.journal.push(op);
    applyMeta(this.entries, op);
  }

  create(p: string): Inode {
    this.requireParent(p, 'open');
    const inode = new Inode(this.nextInode++);
    this.meta({ op: 'set', path: p, entry: inode });
    return inode;
  }

  mkdir(p: string): void {
    this.requireParent(p, 'mkdir');
    this.meta({ op: 'set', path: p, entry: 'dir' });
  }

  unlink(p: string): void {
    this.meta({ op: 'del', path: p });
  }

  rename(from: string, to: string): void {
    this.meta({ op: 'rename', from, to });
  }

  list(dir: string): string[] {
    const prefix = dir === '/' ? '/' : `${dir}/`;
    const names: string[] = [];
    for (const p of this.entries.keys()) {
      if (p !== '/' && p.startsWith(prefix) && !p.slice(prefix.length).includes('/'))
        names.push(p.slice(prefix.length));
    }
    return names.sort();
  }

  private requireParent(p: string, syscall: string): void {
    if (this.entries.get(path.posix.dirname(p)) !== 'dir') throw fsError('ENOENT', syscall, p);
  }

  /** A directory fsync: metadata ops numbered below `upTo` (taken at the call) are durable. */
  commitJournal(upTo: number): void {
    const n = Math.max(0, Math.min(upTo - this.journalBase, this.journal.length));
    for (const op of this.journal.splice(0, n)) applyMeta(this.durable, op);
    this.journalBase += n;
  }

  /** The number the next metadata op gets. */
  get journalEnd(): number {
    return this.journalBase + this.journal.length;
  }

  // -- crashes -----------------------------------------------------------------------------------

  /** The process died (kill -9, exit): the page cache stays, minus pages whose fsync failed. */
  processExit(): void {
    for (const inode of this.inodes(this.entries)) {
      if (!inode.unsynced.some((op) => op.lost)) continue;
      inode.unsynced = inode.unsynced.filter((op) => !op.lost);
      inode.rebuild();
    }
  }

  /** The machine lost power: only what reached the medium survives, torn as a disk tears. */
  powerLoss(): void {
    const keep = this.journal.length === 0 ? 0 : this.rng.int(this.journal.length + 1);
    this.stats.metadataRolledBack += this.journal.length - keep;
    const all = new Set([...this.inodes(this.entries), ...this.inodes(this.durable)]);
    this.commitJournal(this.journalBase + keep);
    this.journalBase += this.journal.length;
    this.journal = [];
    this.entries = new Map(this.durable);
    for (const inode of all) {
      for (const op of inode.unsynced) this.landOrNot(inode, op);
      inode.unsynced = [];
      inode.data = inode.disk.clone();
    }
  }

  private landOrNot(inode: Inode, op: DataOp): void {
    const roll = this.rng.int(3);
    if (op.lost || roll === 0) {
      this.stats.dropped++;
      return;
    }
    if (op.kind === 'truncate' || roll === 1) {
      applyOp(inode.disk, op);
      return;
    }
    // Torn: each page of the write reached the medium or not; the size covers the last that did.
    this.stats.torn++;
    const { pos, bytes } = op;
    const end = pos + bytes.length;
    let landedEnd = -1;
    for (let page = Math.floor(pos / PAGE_BYTES) * PAGE_BYTES; page < end; page += PAGE_BYTES) {
      if (!this.rng.chance(0.5)) continue;
      const from = Math.max(pos, page);
      const to = Math.min(end, page + PAGE_BYTES);
      // A page beyond the old end leaves a hole before it, which reads as zeros.
      inode.disk.write(from, bytes.subarray(from - pos, to - pos));
      landedEnd = Math.max(landedEnd, to);
    }
    if (landedEnd < 0) this.stats.dropped++;
  }

  private inodes(map: Map<string, Entry>): Inode[] {
    return [...map.values()].filter((e): e is Inode => e !== 'dir');
  }

  /** The fault plan's dice, for the view. */
  roll(probability: number | undefined): boolean {
    return probability !== undefined && probability > 0 && this.rng.chance(probability);
  }
}

function applyMeta(map: Map<string, Entry>, op: MetaOp): void {
  if (op.op === 'set') map.set(op.path, op.entry);
  else if (op.op === 'del') map.delete(op.path);
  else {
    const e = map.get(op.from);
    if (e === undefined) return;
    map.delete(op.from);
    map.set(op.to, e);
  }
}

/** Runs `fn` after `delayMs` of simulated time, unless the process is gone by then. */
export type Post = (delayMs: number, fn: () => void) => void;

interface OpenFile {
  inode: Inode | 'dir';
  file: string;
}

/** One process's view of a SimDisk: what `openStorage` gets as its `fs`. */
export class SimFs implements StorageFs {
  private readonly fds = new Map<number, OpenFile>();
  private nextFd = 3;
  /** Called when an injected fault fires, before the failing call settles. */
  onFault: (kind: keyof DiskStats, file: string) => void = () => {};

  constructor(
    readonly disk: SimDisk,
    private readonly post: Post,
    private readonly alive: () => boolean,
  ) {
    // A new process means the one before it has ended, however it ended (an open that failed is
    // an exit too): its pages whose fsync failed are gone before this one reads anything. Left in
    // the cache, this process would fsync them "successfully" (they stay lost), build on them,
    // and a power loss would leave a hole before durable data, which no real disk of this model
    // produces (stack simulator seed 9408).
    disk.processExit();
  }

  private norm(p: string): string {
    return path.posix.resolve('/', p);
  }

  private openEntry(file: string, flags: string, syscall: string): Inode | 'dir' {
    const p = this.norm(file);
    const found = this.disk.lookup(p);
    if (flags === 'wx' && found !== undefined) throw fsError('EEXIST', syscall, file);
    if (found === undefined) {
      if (flags === 'r' || flags === 'r+') throw fsError('ENOENT', syscall, file);
      return this.disk.create(p);
    }
    if (found === 'dir') {
      if (flags !== 'r') throw fsError('EISDIR', syscall, file);
      return found;
    }
    if (flags === 'w') found.apply({ kind: 'truncate', len: 0, lost: false });
    return found;
  }

  private inodeOf(fd: number, syscall: string): Inode {
    const f = this.fds.get(fd);
    if (!f || f.inode === 'dir') throw fsError('EBADF', syscall, String(fd));
    return f.inode;
  }

  /**
   * A promise settled after `delayMs` of simulated time (at once for 0), never if this process
   * is dead by then: a dead process's calls do not return.
   */
  private later<T>(delayMs: number, fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const run = () => {
        try {
          resolve(fn());
        } catch (err) {
          reject(err);
        }
      };
      if (delayMs > 0) this.post(delayMs, run);
      else if (this.alive()) run();
    });
  }

  // -- sync calls --------------------------------------------------------------------------------

  existsSync(file: string): boolean {
    return this.disk.lookup(this.norm(file)) !== undefined;
  }

  mkdirSync(dir: string, _opts: { recursive: true }): void {
    const p = this.norm(dir);
    const missing: string[] = [];
    for (let d = p; this.disk.lookup(d) === undefined; d = path.posix.dirname(d)) missing.unshift(d);
    for (const d of missing) this.disk.mkdir(d);
  }

  readdirSync(dir: string): string[] {
    const p = this.norm(dir);
    if (this.disk.lookup(p) !== 'dir') throw fsError('ENOENT', 'scandir', dir);
    return this.disk.list(p);
  }

  readFileSync(file: string): Buffer {
    const e = this.disk.lookup(this.norm(file));
    if (e === undefined) throw fsError('ENOENT', 'open', file);
    if (e === 'dir') throw fsError('EISDIR', 'read', file);
    return Buffer.from(e.data.read(0, e.data.size));
  }

  rmSync(file: string, _opts: { force: true }): void {
    const p = this.norm(file);
    if (this.disk.lookup(p) !== undefined) this.disk.unlink(p);
  }

  renameSync(from: string, to: string): void {
    const p = this.norm(from);
    if (this.disk.lookup(p) === undefined) throw fsError('ENOENT', 'rename', from);
    this.disk.rename(p, this.norm(to));
  }

  realpathSync(file: string): string {
    const p = this.norm(file);
    if (this.disk.lookup(p) === undefined) throw fsError('ENOENT', 'realpath', file);
    return p;
  }

  openSync(file: string, flags: string): number {
    const inode = this.openEntry(file, flags, 'open');
    const fd = this.nextFd++;
    this.fds.set(fd, { inode, file });
    return fd;
  }

  closeSync(fd: number): void {
    this.fds.delete(fd);
  }

  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number {
    const got = this.inodeOf(fd, 'read').data.read(position, length);
    buffer.set(got, offset);
    return got.length;
  }

  writeSync(fd: number, text: string): number {
    const inode = this.inodeOf(fd, 'write');
    const bytes = new TextEncoder().encode(text);
    inode.apply({ kind: 'write', pos: inode.data.size, bytes, lost: false });
    return bytes.length;
  }

  fstatSync(fd: number): { size: number } {
    return { size: this.inodeOf(fd, 'fstat').data.size };
  }

  // -- async calls -------------------------------------------------------------------------------

  open(file: string, flags: string): Promise<StorageFileHandle> {
    return this.later(0, () => this.handle(this.openEntry(file, flags, 'open'), file));
  }

  rm(file: string, opts?: { force: true }): Promise<void> {
    return this.later(0, () => {
      const p = this.norm(file);
      if (this.disk.lookup(p) === undefined) {
        if (opts?.force) return;
        throw fsError('ENOENT', 'rm', file);
      }
      this.disk.unlink(p);
    });
  }

  rename(from: string, to: string): Promise<void> {
    return this.later(0, () => this.renameSync(from, to));
  }

  private fsyncDelay(): number {
    const { fsyncMsMax } = this.disk;
    return (fsyncMsMax > 0 ? this.disk.rng.int(fsyncMsMax + 1) : 0) + (this.disk.faults.slowMs ?? 0);
  }

  private fault(kind: keyof DiskStats, errno: string, syscall: string, file: string): NodeJS.ErrnoException {
    this.disk.stats[kind]++;
    this.disk.injected++;
    this.onFault(kind, file);
    return fsError(errno, syscall, file);
  }

  private handle(inode: Inode | 'dir', file: string): StorageFileHandle {
    const disk = this.disk;
    const write = (buffer: Uint8Array, offset: number, length: number, position: number) => {
      if (inode === 'dir') return Promise.reject(fsError('EISDIR', 'write', file));
      const bytes = buffer.slice(offset, offset + length);
      const w = disk.faults.write;
      if (w && disk.roll(w.probability)) {
        // ENOSPC may come after part of the data was accepted; EIO accepts nothing.
        const kind = w.errno === 'ENOSPC' ? 'enospcWrite' : 'eioWrite';
        if (w.errno === 'ENOSPC' && length > 1) {
          const part = disk.rng.int(length);
          if (part > 0)
            inode.apply({ kind: 'write', pos: position, bytes: bytes.slice(0, part), lost: false });
        }
        const err = this.fault(kind, w.errno, 'write', file);
        return this.later(0, () => {
          throw err;
        });
      }
      if (disk.roll(disk.faults.misdirect)) {
        // The data lands elsewhere in the file; the intended range keeps stale garbage.
        disk.stats.misdirected++;
        disk.corrupted = true;
        const garbage = new Uint8Array(length);
        for (let i = 0; i < length; i++) garbage[i] = 1 + disk.rng.int(255);
        const elsewhere = disk.rng.int(Math.max(1, inode.data.size));
        inode.apply({ kind: 'write', pos: position, bytes: garbage, lost: false });
        inode.apply({ kind: 'write', pos: elsewhere, bytes, lost: false });
      } else {
        inode.apply({ kind: 'write', pos: position, bytes, lost: false });
      }
      return this.later(0, () => ({ bytesWritten: length }));
    };
    const datasync = () => {
      if (inode === 'dir') return this.syncDir(file);
      const f = disk.faults.fsync;
      if (f && disk.roll(f.probability)) {
        // The kernel drops the dirty pages' error state: they never reach the disk.
        for (const op of inode.unsynced) op.lost = true;
        const err = this.fault(f.errno === 'EIO' ? 'eioFsync' : 'enospcFsync', f.errno, 'fsync', file);
        return this.later(this.fsyncDelay(), () => {
          throw err;
        });
      }
      const flushing = inode.unsynced.slice();
      return this.later(this.fsyncDelay(), () => {
        for (const op of flushing) {
          if (op.lost) continue;
          applyOp(inode.disk, op);
          const i = inode.unsynced.indexOf(op);
          if (i >= 0) inode.unsynced.splice(i, 1);
        }
      });
    };
    return {
      write,
      datasync,
      sync: datasync,
      stat: () => this.later(0, () => ({ size: inode === 'dir' ? 0 : inode.data.size })),
      truncate: (len: number) =>
        this.later(0, () => {
          if (inode !== 'dir') inode.apply({ kind: 'truncate', len, lost: false });
        }),
      close: () => this.later(0, () => undefined),
    };
  }

  private syncDir(file: string): Promise<void> {
    const f = this.disk.faults.fsync;
    if (f && this.disk.roll(f.probability)) {
      const err = this.fault(f.errno === 'EIO' ? 'eioFsync' : 'enospcFsync', f.errno, 'fsync', file);
      return this.later(this.fsyncDelay(), () => {
        throw err;
      });
    }
    const upTo = this.disk.journalEnd;
    return this.later(this.fsyncDelay(), () => this.disk.commitJournal(upTo));
  }
}
