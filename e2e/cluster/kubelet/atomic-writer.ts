// Writes a volume's files the way the kubelet's AtomicWriter does, so that a process reading a
// mounted Secret, ConfigMap or projected volume sees either the old set of files or the new one,
// never a mix:
//
//   <dir>/..2026_01_02_15_04_05.123456789/<files>   one directory per version of the payload
//   <dir>/..data -> ..2026_01_02_15_04_05.123456789 swapped by renaming a fresh symlink over it
//   <dir>/<name> -> ..data/<name>                    what a user sees, stable across updates
//
// Invariants: every user-visible top-level entry is a symlink through `..data`; `..data` always
// names a complete directory; an update that changes nothing touches nothing.

import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, normalize, sep } from 'node:path';

export interface FileProjection {
  data: Buffer | string;
  /** Permission bits (e.g. 0o644, 0o440). */
  mode: number;
  /** Owner to set (root only), e.g. the pod's runAsUser for a service account token. */
  uid?: number;
}

/** Relative path -> content and mode. */
export type Payload = Map<string, FileProjection>;

export interface Ownership {
  /** fsGroup: files and directories get this group, group read (and write unless readOnly). */
  fsGroup?: number;
  readOnly?: boolean;
}

const DATA = '..data';
const DATA_TMP = '..data_tmp';

/** Rejects paths the kubelet rejects: absolute, containing `..` elements, or starting with `..`. */
export function validatePath(path: string): void {
  if (!path) throw new Error('empty path in volume payload');
  if (path.startsWith('/')) throw new Error(`absolute path in volume payload: ${path}`);
  if (path.startsWith('..')) throw new Error(`path starts with '..': ${path}`);
  if (path.split('/').includes('..')) throw new Error(`path contains '..': ${path}`);
  if (path.length > 4096) throw new Error(`path too long: ${path.slice(0, 40)}...`);
}

/** The kubelet's timestamped directory name, `..2006_01_02_15_04_05.<random>`. */
function versionDirName(now = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const ts =
    `${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_` +
    `${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}`;
  return `..${ts}.${randomBytes(5).toString('hex')}`;
}

/** The version directory `..data` points at, if any. */
function currentVersion(dir: string): string | undefined {
  try {
    return readlinkSync(join(dir, DATA));
  } catch {
    return undefined;
  }
}

function sameContent(versionDir: string, payload: Payload, own: Ownership): boolean {
  const listed = new Set<string>();
  const walk = (rel: string): boolean => {
    for (const entry of readdirSync(join(versionDir, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!walk(path)) return false;
      } else listed.add(path);
    }
    return true;
  };
  if (!walk('') || listed.size !== payload.size) return false;
  for (const [path, file] of payload) {
    if (!listed.has(path)) return false;
    const full = join(versionDir, path);
    const st = lstatSync(full);
    if ((st.mode & 0o7777) !== effectiveMode(file.mode, own)) return false;
    if (file.uid !== undefined && st.uid !== file.uid) return false;
    const want = typeof file.data === 'string' ? Buffer.from(file.data) : file.data;
    if (!readFileSync(full).equals(want)) return false;
  }
  return true;
}

/** The kubelet's SetVolumeOwnership: group read (and write unless read-only) for the fsGroup. */
function effectiveMode(mode: number, own: Ownership): number {
  if (own.fsGroup === undefined) return mode;
  return mode | (own.readOnly ? 0o440 : 0o660);
}

function applyOwnership(path: string, isDir: boolean, own: Ownership, uid?: number): void {
  if (own.fsGroup !== undefined || uid !== undefined) {
    lchownSync(path, uid ?? -1, own.fsGroup ?? -1);
  }
  if (isDir && own.fsGroup !== undefined) chmodSync(path, 0o2755);
}

/**
 * Makes `dir` hold exactly `payload`. Returns false when the payload was already there (nothing
 * written), true when a new version was swapped in.
 */
export function writeAtomically(dir: string, payload: Payload, own: Ownership = {}): boolean {
  for (const path of payload.keys()) validatePath(normalize(path).split(sep).join('/'));
  mkdirSync(dir, { recursive: true });
  if (own.fsGroup !== undefined) applyOwnership(dir, true, own);
  const old = currentVersion(dir);
  if (old && existsSync(join(dir, old)) && sameContent(join(dir, old), payload, own)) return false;

  // 1. The new version, complete, beside the old one.
  const version = versionDirName();
  const versionDir = join(dir, version);
  mkdirSync(versionDir, { mode: 0o755 });
  applyOwnership(versionDir, true, own);
  for (const [path, file] of payload) {
    const full = join(versionDir, path);
    const parent = dirname(full);
    if (!existsSync(parent)) {
      mkdirSync(parent, { recursive: true, mode: 0o755 });
      for (let d = parent; d !== versionDir; d = dirname(d)) applyOwnership(d, true, own);
    }
    writeFileSync(full, file.data);
    chmodSync(full, effectiveMode(file.mode, own));
    if (file.uid !== undefined || own.fsGroup !== undefined)
      chownSync(full, file.uid ?? -1, own.fsGroup ?? -1);
  }
  chmodSync(versionDir, own.fsGroup !== undefined ? 0o2755 : 0o755);

  // 2. Swap `..data` atomically: a rename replaces the old symlink in one step.
  rmSync(join(dir, DATA_TMP), { force: true });
  symlinkSync(version, join(dir, DATA_TMP));
  if (own.fsGroup !== undefined) lchownSync(join(dir, DATA_TMP), -1, own.fsGroup);
  renameSync(join(dir, DATA_TMP), join(dir, DATA));

  // 3. User-visible names: one symlink per top-level entry, stale ones removed.
  const top = new Set([...payload.keys()].map((p) => p.split('/')[0]!));
  for (const name of top) {
    const link = join(dir, name);
    let ok = false;
    try {
      ok = readlinkSync(link) === join(DATA, name);
    } catch {
      rmSync(link, { recursive: true, force: true });
    }
    if (!ok) {
      rmSync(link, { force: true });
      symlinkSync(join(DATA, name), link);
      if (own.fsGroup !== undefined) lchownSync(link, -1, own.fsGroup);
    }
  }
  for (const name of readdirSync(dir)) {
    if (name.startsWith('..') || top.has(name)) continue;
    if (lstatSync(join(dir, name)).isSymbolicLink()) rmSync(join(dir, name), { force: true });
  }

  // 4. The old version goes last: a reader holding a path through it finishes first.
  for (const name of readdirSync(dir)) {
    if (name.startsWith('..') && name !== DATA && name !== version) {
      rmSync(join(dir, name), { recursive: true, force: true });
    }
  }
  return true;
}
