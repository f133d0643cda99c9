import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyRetention,
  type BackupEntry,
  listBackups,
  openStore,
  selectExpired,
  uploadBackup,
} from './backup.js';
import type { BackupManifest } from './manifest.js';
import { type S3rverHandle, startS3rver } from './test-s3rver.js';

const NOW = new Date('2025-03-31T12:00:00.000Z');
const DAY = 86_400_000;
const ago = (days: number) => new Date(NOW.getTime() - days * DAY).toISOString();

function entry(ageDays: number, lastIndex: number): BackupEntry {
  const manifest: BackupManifest = {
    kind: 'conflux-backup',
    manifestVersion: 1,
    clusterId: 'c',
    nodeId: 'n1',
    createdAt: ago(ageDays),
    lastIndex,
    lastTerm: 1,
    revision: lastIndex,
    keyCount: 1,
    formatVersion: 1,
    dataName: `x-${lastIndex}.snap`,
    bytes: 0,
    sha256: '0'.repeat(64),
  };
  return { uri: manifest.dataName, manifestUri: `${manifest.dataName}.manifest.json`, manifest };
}

// Ages in days, newest first once sorted; given shuffled to check the sort.
const ENTRIES = [entry(10, 30), entry(0, 50), entry(40, 10), entry(1, 40), entry(5, 35)];
const idx = (es: BackupEntry[]) => es.map((e) => e.manifest.lastIndex);

describe('selectExpired (retention policy)', () => {
  it('keeps the newest N with keepLast alone', () => {
    expect(idx(selectExpired(ENTRIES, { keepLast: 2 }, NOW))).toEqual([35, 30, 10]);
  });
  it('keeps everything younger than maxAgeDays alone', () => {
    expect(idx(selectExpired(ENTRIES, { maxAgeDays: 7 }, NOW))).toEqual([30, 10]);
  });
  it('deletes only what is beyond both limits', () => {
    expect(idx(selectExpired(ENTRIES, { keepLast: 1, maxAgeDays: 7 }, NOW))).toEqual([30, 10]);
    expect(idx(selectExpired(ENTRIES, { keepLast: 4, maxAgeDays: 7 }, NOW))).toEqual([10]);
    expect(idx(selectExpired(ENTRIES, { keepLast: 2, maxAgeDays: 30 }, NOW))).toEqual([10]);
  });
  it('never deletes the newest backup', () => {
    expect(idx(selectExpired(ENTRIES, { keepLast: 0 }, NOW))).toEqual([40, 35, 30, 10]);
    expect(idx(selectExpired([entry(400, 1)], { keepLast: 0, maxAgeDays: 0 }, NOW))).toEqual([]);
  });
  it('deletes nothing without limits, and refuses nonsense limits', () => {
    expect(selectExpired(ENTRIES, {}, NOW)).toEqual([]);
    expect(() => selectExpired(ENTRIES, { keepLast: -1 }, NOW)).toThrow(/keepLast/);
    expect(() => selectExpired(ENTRIES, { maxAgeDays: Number.NaN }, NOW)).toThrow(/maxAgeDays/);
  });
});

let s3: S3rverHandle;
let dir: string;
beforeAll(async () => {
  [s3, dir] = await Promise.all([startS3rver(), mkdtemp(join(tmpdir(), 'conflux-retention-'))]);
});
afterAll(async () => {
  await Promise.all([s3?.stop(), dir && rm(dir, { recursive: true, force: true })]);
});

async function* bytes(n: number): AsyncGenerator<Uint8Array> {
  yield new Uint8Array(n).fill(n % 251);
}

describe.each(['file', 's3'] as const)('applyRetention on %s', (kind) => {
  const uri = () => (kind === 'file' ? `file://${dir}/r` : `s3://${s3.bucket}/ret`);
  const opts = () => ({ connection: s3.connection });

  it('deletes data and manifest of expired backups, by count and by age', async () => {
    for (const [age, index] of [
      [40, 10],
      [10, 30],
      [5, 35],
      [1, 40],
      [0, 50],
    ] as const) {
      await uploadBackup(
        uri(),
        {
          stream: bytes(index),
          metadata: {
            clusterId: 'c',
            nodeId: 'n1',
            createdAt: ago(age),
            lastIndex: index,
            lastTerm: 2,
            revision: index,
            keyCount: 3,
            formatVersion: 1,
          },
        },
        opts(),
      );
    }
    expect(idx(await listBackups(uri(), opts()))).toEqual([50, 40, 35, 30, 10]);

    // By age: older than 7 days, and beyond the newest 1.
    const byAge = await applyRetention(uri(), { keepLast: 1, maxAgeDays: 7 }, NOW, opts());
    expect(idx(byAge)).toEqual([30, 10]);
    expect(idx(await listBackups(uri(), opts()))).toEqual([50, 40, 35]);

    // By count.
    expect(idx(await applyRetention(uri(), { keepLast: 2 }, NOW, opts()))).toEqual([35]);
    const remaining = await listBackups(uri(), opts());
    expect(idx(remaining)).toEqual([50, 40]);
    // Both objects of each deleted backup are gone; nothing else is left.
    const names = (await openStore(uri(), opts()).list()).sort();
    expect(names).toEqual(
      remaining.flatMap((e) => [e.manifest.dataName, `${e.manifest.dataName}.manifest.json`]).sort(),
    );

    // The newest survives even a policy that would drop everything.
    expect(idx(await applyRetention(uri(), { keepLast: 0, maxAgeDays: 0 }, NOW, opts()))).toEqual([40]);
    expect(idx(await listBackups(uri(), opts()))).toEqual([50]);
  });
});
