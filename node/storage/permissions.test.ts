// The data directory's modes: what the storage creates is 0700 / 0600, and a start narrows what
// an older start, a restore by hand or a volume left wider, saying so in one log line per path.

import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrCreateNodeId } from './identity.js';
import { tightenDataDir } from './permissions.js';
import { openStorage } from './storage.js';

const mode = (p: string) => statSync(p).mode & 0o777;

describe('data directory permissions', () => {
  const dirs: string[] = [];
  const fresh = () => {
    const d = mkdtempSync(join(tmpdir(), 'conflux-perm-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('creates the data directory 0700 and the WAL, snapshot and id files 0600', async () => {
    const dir = join(fresh(), 'data');
    loadOrCreateNodeId(dir, 'n1');
    const { storage } = await openStorage(dir);
    await storage.close();
    expect(mode(dir)).toBe(0o700);
    expect(mode(join(dir, 'wal'))).toBe(0o700);
    expect(mode(join(dir, 'snap'))).toBe(0o700);
    expect(mode(join(dir, 'node-id'))).toBe(0o600);
    const segments = readdirSync(join(dir, 'wal'));
    expect(segments.length).toBeGreaterThan(0);
    for (const f of segments) expect(mode(join(dir, 'wal', f))).toBe(0o600);
  });

  it('narrows wider modes at start and logs each path with the mode it had', async () => {
    const dir = join(fresh(), 'data');
    mkdirSync(join(dir, 'wal'), { recursive: true });
    writeFileSync(join(dir, 'wal', 'leftover'), 'x');
    chmodSync(dir, 0o755);
    chmodSync(join(dir, 'wal'), 0o775);
    chmodSync(join(dir, 'wal', 'leftover'), 0o644);
    const outside = join(fresh(), 'not-ours');
    writeFileSync(outside, 'x');
    chmodSync(outside, 0o644);
    symlinkSync(outside, join(dir, 'link'));
    const warnings: object[] = [];
    const logger = { info() {}, warn: (o: object) => warnings.push(o), error() {} };
    const repairs = tightenDataDir(dir, logger);
    expect(repairs.map((r) => [r.path, r.was, r.narrowed])).toEqual([
      [dir, '0755', true],
      [join(dir, 'wal'), '0775', true],
      [join(dir, 'wal', 'leftover'), '0644', true],
    ]);
    expect(warnings).toHaveLength(3);
    expect([mode(dir), mode(join(dir, 'wal')), mode(join(dir, 'wal', 'leftover'))]).toEqual([
      0o700, 0o700, 0o600,
    ]);
    // A symlink is neither followed nor changed.
    expect(mode(outside)).toBe(0o644);
    expect(tightenDataDir(dir, logger)).toEqual([]);
  });
});
