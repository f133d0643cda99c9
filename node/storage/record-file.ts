// Small JSON records beside the log (for example what initialized this node): written to a temp
// file, fsynced and renamed, so a reader sees the old record or the new one, never a torn one.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { z } from 'zod';
import { StorageError } from './errors.js';

export function writeRecord(dir: string, name: string, value: unknown): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, name);
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeFileSync(fd, `${JSON.stringify(value, null, 2)}\n`);
    fs.fsyncSync(fd);
  } catch (err) {
    // ENOSPC, EIO: the old record (if any) is untouched; leave no half-written temp file behind.
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  const dirFd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}

/** The record, or null when there is none; a record that does not parse stops the node. */
export function readRecord<S extends z.ZodType>(dir: string, name: string, schema: S): z.output<S> | null {
  const file = path.join(dir, name);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new StorageError('CORRUPT_RECORD', `${file} is not valid JSON; move it aside to continue`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new StorageError('CORRUPT_RECORD', `${file} does not hold a valid record`);
  return parsed.data;
}
