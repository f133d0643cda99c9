// Every file system call the storage makes goes through a `StorageFs`. Production uses `nodeFs`
// (node:fs); a test may hand `openStorage` another implementation, such as the simulator's
// in-memory disk that loses unsynced writes on a crash, tears writes and fails with ENOSPC or EIO.
// The interface is exactly the subset of node:fs the storage uses, with node:fs's semantics.

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { DIR_MODE, FILE_MODE } from './permissions.js';

/** The subset of node:fs/promises' FileHandle the storage uses. */
export interface StorageFileHandle {
  write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }>;
  /** fdatasync(2). */
  datasync(): Promise<void>;
  /** fsync(2); the storage uses it on directories. */
  sync(): Promise<void>;
  stat(): Promise<{ size: number }>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export interface StorageFs {
  existsSync(file: string): boolean;
  mkdirSync(dir: string, opts: { recursive: true }): void;
  readdirSync(dir: string): string[];
  readFileSync(file: string): Buffer;
  rmSync(file: string, opts: { force: true }): void;
  renameSync(from: string, to: string): void;
  realpathSync(file: string): string;
  /** `flags` as node:fs: 'r', 'w', 'wx'. */
  openSync(file: string, flags: string): number;
  closeSync(fd: number): void;
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  writeSync(fd: number, text: string): number;
  fstatSync(fd: number): { size: number };
  /** `flags` as node:fs: 'r', 'r+', 'w'. */
  open(file: string, flags: string): Promise<StorageFileHandle>;
  /**
   * Optional: open for reading and writing with O_DSYNC, so that a write returns only once its
   * bytes (and the size that reaches them) are durable, as a write followed by fdatasync would.
   * Without it the storage writes, then calls `datasync`.
   */
  openDsync?(file: string): Promise<StorageFileHandle>;
  /** Without `force`, a missing file rejects with ENOENT. */
  rm(file: string, opts?: { force: true }): Promise<void>;
  rename(from: string, to: string): Promise<void>;
}

/**
 * The real file system. What it creates only the node's user may read: directories 0700, files
 * 0600 (permissions.ts narrows what an older start left wider).
 */
export const nodeFs: StorageFs = {
  existsSync: (file) => fs.existsSync(file),
  mkdirSync: (dir, opts) => {
    fs.mkdirSync(dir, { ...opts, mode: DIR_MODE });
  },
  readdirSync: (dir) => fs.readdirSync(dir),
  readFileSync: (file) => fs.readFileSync(file),
  rmSync: (file, opts) => fs.rmSync(file, opts),
  renameSync: (from, to) => fs.renameSync(from, to),
  realpathSync: (file) => fs.realpathSync(file),
  openSync: (file, flags) => fs.openSync(file, flags, FILE_MODE),
  closeSync: (fd) => fs.closeSync(fd),
  readSync: (fd, buffer, offset, length, position) => fs.readSync(fd, buffer, offset, length, position),
  writeSync: (fd, text) => fs.writeSync(fd, text),
  fstatSync: (fd) => fs.fstatSync(fd),
  open: (file, flags) => fsp.open(file, flags, FILE_MODE),
  openDsync: (file) => fsp.open(file, fs.constants.O_RDWR | fs.constants.O_DSYNC, FILE_MODE),
  rm: (file, opts) => fsp.rm(file, opts),
  rename: (from, to) => fsp.rename(from, to),
};
