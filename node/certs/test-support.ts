// Test support: a directory updated the way the kubelet updates a mounted Secret (its
// AtomicWriter): each version is written to a fresh hidden directory, `..data` is switched to it
// by renaming a symlink over it, and every visible file is a symlink through `..data`. A reader
// sees either the old set of files or the new one, never a mix.

import { randomBytes } from 'node:crypto';
import { mkdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export async function writeSecretDir(dir: string, files: Record<string, string | Buffer>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const version = `..${Date.now()}_${randomBytes(4).toString('hex')}`;
  await mkdir(join(dir, version));
  for (const [name, data] of Object.entries(files)) {
    await writeFile(join(dir, version, name), data, { mode: 0o600 });
  }
  let previous: string | null = null;
  try {
    previous = await readlink(join(dir, '..data'));
  } catch {
    previous = null;
  }
  await rm(join(dir, '..data_tmp'), { force: true });
  await symlink(version, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const name of Object.keys(files)) {
    try {
      await symlink(join('..data', name), join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  if (previous) await rm(join(dir, previous), { recursive: true, force: true });
}
