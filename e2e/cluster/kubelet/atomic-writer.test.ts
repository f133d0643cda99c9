import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Payload, validatePath, writeAtomically } from './atomic-writer.js';

const payload = (entries: Record<string, string>, mode = 0o644): Payload =>
  new Map(Object.entries(entries).map(([k, v]) => [k, { data: v, mode }]));

describe('writeAtomically', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'atomic-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const versions = () => readdirSync(dir).filter((n) => n.startsWith('..') && n !== '..data');

  it('lays files out behind ..data with user-visible symlinks', () => {
    expect(writeAtomically(dir, payload({ 'tls.crt': 'cert', 'tls.key': 'key', 'sub/dir/x': 'x' }))).toBe(
      true,
    );
    expect(readlinkSync(join(dir, 'tls.crt'))).toBe('..data/tls.crt');
    expect(readlinkSync(join(dir, 'sub'))).toBe('..data/sub');
    expect(readlinkSync(join(dir, '..data'))).toMatch(/^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.[0-9a-f]+$/);
    expect(readFileSync(join(dir, 'tls.crt'), 'utf8')).toBe('cert');
    expect(readFileSync(join(dir, 'sub/dir/x'), 'utf8')).toBe('x');
    expect(versions()).toHaveLength(1);
  });

  it('updates in place: same user-visible links, a new version, the old one removed', () => {
    writeAtomically(dir, payload({ a: '1', b: '2' }));
    const link = lstatSync(join(dir, 'a')).ino;
    const before = readlinkSync(join(dir, '..data'));
    expect(writeAtomically(dir, payload({ a: '1b', c: '3' }))).toBe(true);
    expect(lstatSync(join(dir, 'a')).ino).toBe(link);
    expect(readlinkSync(join(dir, '..data'))).not.toBe(before);
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('1b');
    expect(readFileSync(join(dir, 'c'), 'utf8')).toBe('3');
    expect(() => lstatSync(join(dir, 'b'))).toThrow();
    expect(versions()).toEqual([readlinkSync(join(dir, '..data'))]);
  });

  it('writes nothing when the payload is unchanged', () => {
    writeAtomically(dir, payload({ a: '1' }));
    const version = readlinkSync(join(dir, '..data'));
    expect(writeAtomically(dir, payload({ a: '1' }))).toBe(false);
    expect(readlinkSync(join(dir, '..data'))).toBe(version);
    // A mode change is a change.
    expect(writeAtomically(dir, payload({ a: '1' }, 0o600))).toBe(true);
  });

  it('applies modes, and fsGroup ownership as the kubelet does', () => {
    writeAtomically(dir, payload({ key: 'k' }, 0o400), { fsGroup: 4242, readOnly: true });
    const st = statSync(join(dir, 'key'));
    expect(st.mode & 0o777).toBe(0o440);
    if (process.getuid?.() === 0) expect(st.gid).toBe(4242);
    writeAtomically(dir, payload({ key: 'k2' }, 0o600));
    expect(statSync(join(dir, 'key')).mode & 0o777).toBe(0o600);
  });

  it('rejects paths the kubelet rejects', () => {
    for (const bad of ['/abs', '..x', 'a/../b', '']) expect(() => validatePath(bad)).toThrow();
    expect(() => validatePath('ok/fine.txt')).not.toThrow();
    expect(() => writeAtomically(dir, payload({ '../escape': 'x' }))).toThrow();
  });
});
