// What a backup destination must not be, and what a manifest read must not do: backups inside the
// node's data directory are refused, files are only the owner's, and a manifest is read from a
// regular file of bounded size (a symlink to /dev/zero is an error, not unbounded memory).

import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadBackup, openStore, refuseProtected } from './backup.js';
import { BackupError } from './errors.js';
import { MAX_SMALL_OBJECT_BYTES } from './object-store.js';
import { type S3rverHandle, startS3rver } from './test-s3rver.js';

describe('backup guards', () => {
  const root = mkdtempSync(join(tmpdir(), 'conflux-backup-guards-'));
  const data = join(root, 'data');
  mkdirSync(data);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('refuses the data directory, a directory inside it, and a symlink into it', () => {
    symlinkSync(join(data, 'snap'), join(root, 'sneaky'));
    for (const dir of [data, join(data, 'backups'), join(data, 'a', 'b'), join(root, 'sneaky')]) {
      expect(() => openStore(`file://${dir}`, { protectedDirs: [data] })).toThrow(
        /the data directory .*: backups must be kept elsewhere/,
      );
    }
    expect(() => refuseProtected(join(root, 'data-backups'), [data])).not.toThrow();
    expect(() => openStore(`file://${join(root, 'elsewhere')}`, { protectedDirs: [data] })).not.toThrow();
  });

  it('writes backup directories 0700 and files 0600', async () => {
    const dir = join(root, 'out');
    await openStore(`file://${dir}`).putBytes('x.snap', new Uint8Array([1, 2, 3]));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
  });

  it('refuses a manifest that is a symlink to /dev/zero, or larger than the limit, with a clear error', async () => {
    const dir = join(root, 'evil');
    mkdirSync(dir);
    const name = 'conflux-c1-20260101T000000Z-5.snap';
    symlinkSync('/dev/zero', join(dir, `${name}.manifest.json`));
    const store = openStore(`file://${dir}`);
    const before = process.memoryUsage().rss;
    await expect(store.getBytes(`${name}.manifest.json`)).rejects.toThrow(/is not a regular file/);
    await expect(downloadBackup(`file://${dir}/${name}`)).rejects.toBeInstanceOf(BackupError);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
    writeFileSync(join(dir, 'big.manifest.json'), Buffer.alloc(MAX_SMALL_OBJECT_BYTES + 1, 0x20));
    await expect(store.getBytes('big.manifest.json')).rejects.toMatchObject({
      code: 'BACKUP_CORRUPT',
      message: expect.stringMatching(/holds more than 1048576 bytes/),
    });
  });
});

describe('an S3 manifest', () => {
  let s3: S3rverHandle;
  beforeAll(async () => {
    s3 = await startS3rver();
  }, 30_000);
  afterAll(async () => {
    await s3?.stop();
  });

  it('is read up to the limit only: a larger object is BACKUP_CORRUPT', async () => {
    const store = openStore(`s3://${s3.bucket}/guards`, { connection: s3.connection });
    await store.putBytes('ok.manifest.json', Buffer.from('{}'));
    expect(Buffer.from((await store.getBytes('ok.manifest.json')) as Uint8Array).toString()).toBe('{}');
    await store.putBytes('big.manifest.json', Buffer.alloc(MAX_SMALL_OBJECT_BYTES + 1, 0x20));
    await expect(store.getBytes('big.manifest.json')).rejects.toMatchObject({ code: 'BACKUP_CORRUPT' });
  });
});
