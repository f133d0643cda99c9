// The data directory holds every key and value of the cluster: only the node's own user may read
// it. New directories are created 0700 and new files 0600 (fs.ts, identity.ts); at every start,
// before the storage trusts anything in it, `tightenDataDir` narrows what is wider (a directory
// made by an older version, restored by hand, or a volume's root) and says so in a warn line per
// path, so an operator learns that the data was readable. A mode it cannot narrow (a volume root
// owned by another user) is an error line, not a refusal: the node still starts, and the line
// names the path and what to change. Symlinks are never followed or changed.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { StorageLogger } from './io.js';

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

/** What `tightenDataDir` found wider than allowed, narrowed or not. */
export interface ModeRepair {
  path: string;
  /** The permission bits found, as octal text (`0755`). */
  was: string;
  narrowed: boolean;
}

const octal = (mode: number) => `0${(mode & 0o777).toString(8)}`;

/**
 * Narrow `dir` and the directories and files under it (two levels: wal/, snap/ and their files)
 * to 0700 / 0600. Returns what it found wider; logs each as warn (narrowed) or error (not).
 */
export function tightenDataDir(dir: string, logger: StorageLogger): ModeRepair[] {
  const repairs: ModeRepair[] = [];
  const visit = (p: string, depth: number) => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return; // gone meanwhile (a temp file): nothing to protect
    }
    if (st.isSymbolicLink()) return;
    const allowed = st.isDirectory() ? DIR_MODE : FILE_MODE;
    if ((st.mode & 0o777 & ~allowed) !== 0) {
      const repair = { path: p, was: octal(st.mode), narrowed: false };
      try {
        fs.chmodSync(p, allowed & st.mode);
        repair.narrowed = true;
        logger.warn(
          { path: p, was: repair.was, now: octal(allowed & st.mode) },
          'data directory entry was readable by other users; narrowed its mode',
        );
      } catch (err) {
        logger.error(
          { path: p, was: repair.was, err: (err as Error).message },
          `cannot narrow the mode of ${p} (${repair.was}): other users may read Conflux data; make it ${octal(allowed)}`,
        );
      }
      repairs.push(repair);
    }
    if (st.isDirectory() && depth < 2) {
      let names: string[];
      try {
        names = fs.readdirSync(p);
      } catch {
        return;
      }
      for (const name of names) visit(path.join(p, name), depth + 1);
    }
  };
  visit(dir, 0);
  return repairs;
}
