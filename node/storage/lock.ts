// An exclusive lock on a data directory: `<dir>/LOCK` holds the owner's pid.
//
// Node has no flock(2), so ownership is judged by the pid: a lock whose process is alive is
// refused; a lock left by a dead process (kill -9) is taken over. A lock holding our own pid that
// this process did not take is from an earlier life of a container whose entrypoint always gets
// the same pid (often 1), so it is stale too. Two processes taking over one stale lock at the
// same instant could both win; the StatefulSet runs one pod per volume, so that race is accepted.

import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { errnoCode, StorageError } from './errors.js';
import { nodeFs, type StorageFs } from './fs.js';
import type { StorageLogger } from './io.js';

const LOCK_NAME = 'LOCK';
const lockContentSchema = z.object({ pid: z.number().int().positive() });
/** Directories locked by this process (real paths), per file system (a simulated disk is its own). */
const heldBy = new WeakMap<StorageFs, Set<string>>();

export interface DirLock {
  readonly file: string;
  release(): void;
}

export function acquireLock(dir: string, logger: StorageLogger, fs: StorageFs = nodeFs): DirLock {
  const held = heldBy.get(fs) ?? new Set<string>();
  heldBy.set(fs, held);
  const real = fs.realpathSync(dir);
  const file = path.join(real, LOCK_NAME);
  if (held.has(real)) {
    throw new StorageError('STORAGE_LOCKED', `data directory ${dir} is already open in this process`);
  }
  if (!tryCreate(fs, file)) {
    const owner = readOwner(fs, file);
    if (owner !== null && owner !== process.pid && isAlive(owner)) {
      throw new StorageError(
        'STORAGE_LOCKED',
        `data directory ${dir} is locked by running process ${owner} (${file}); is another node using it?`,
      );
    }
    logger.warn({ file, stalePid: owner }, 'taking over a stale data directory lock');
    fs.rmSync(file, { force: true });
    if (!tryCreate(fs, file)) {
      throw new StorageError(
        'STORAGE_LOCKED',
        `data directory ${dir} was locked by another process just now`,
      );
    }
  }
  held.add(real);
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      held.delete(real);
      fs.rmSync(file, { force: true });
    },
  };
}

function tryCreate(fs: StorageFs, file: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx');
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  }
  try {
    fs.writeSync(fd, JSON.stringify({ pid: process.pid, host: os.hostname() }));
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** The pid in the lock file, or null when it is unreadable (a crash while writing it). */
function readOwner(fs: StorageFs, file: string): number | null {
  try {
    return lockContentSchema.parse(JSON.parse(fs.readFileSync(file).toString('utf8'))).pid;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return errnoCode(err) === 'EPERM';
  }
}
