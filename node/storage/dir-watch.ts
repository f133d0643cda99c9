// Notices a data directory deleted or replaced under a running node. The node keeps its files
// open, so on Linux it would go on appending to unlinked files and serving from memory, and the
// loss would show only at its next start (as an empty node under a new id). Every few seconds the
// watcher compares the directory's identity (device and inode) and its LOCK file's with what they
// were at start; once they differ it logs an error and the node reports itself not ready
// (`/readyz`: `dataDir`), so the operator and the Service stop counting on it (README "Runbooks",
// "A member is lost"; docs/ARCHITECTURE.md §3).

import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { StorageLogger } from './io.js';

export interface DataDirWatch {
  /** Why the data directory can no longer be trusted, or null while it is the one the node opened. */
  problem(): string | null;
  stop(): void;
}

interface Identity {
  dev: number;
  ino: number;
}

function identityOf(path: string): Identity | null {
  try {
    const s = statSync(path);
    return { dev: s.dev, ino: s.ino };
  } catch {
    return null;
  }
}

/** Starts watching `dir` (already opened and locked by this node): checks every `intervalMs`. */
export function watchDataDir(dir: string, logger: StorageLogger, intervalMs = 5_000): DataDirWatch {
  const lockFile = join(dir, 'LOCK');
  const dirAtStart = identityOf(dir);
  const lockAtStart = identityOf(lockFile);
  let problem: string | null = null;
  const check = () => {
    if (problem || !dirAtStart) return;
    const now = identityOf(dir);
    const lock = identityOf(lockFile);
    if (!now) problem = `data directory ${dir} was deleted while the node ran`;
    else if (now.dev !== dirAtStart.dev || now.ino !== dirAtStart.ino)
      problem = `data directory ${dir} was replaced by another directory while the node ran`;
    else if (lockAtStart && !lock)
      problem = `the contents of data directory ${dir} were deleted while the node ran`;
    else if (lockAtStart && lock && (lock.dev !== lockAtStart.dev || lock.ino !== lockAtStart.ino))
      problem = `data directory ${dir} was wiped and its LOCK written again while the node ran`;
    if (problem)
      logger.error(
        { code: 'DATA_DIR_LOST', dataDir: dir },
        `${problem}: what this node holds is no longer on disk, so it reports itself not ready; restart it to come back as a new, empty member (the operator replaces it)`,
      );
  };
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return {
    problem: () => {
      check();
      return problem;
    },
    stop: () => clearInterval(timer),
  };
}
