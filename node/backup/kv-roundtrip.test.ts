// The real producer and consumer: KvStore.snapshotStream -> uploadBackup -> downloadBackup ->
// KvStore.restoreFromStream, and a corrupt backup never reaches the store.

import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SNAPSHOT_FORMAT_VERSION } from '../kv/snapshot-format.js';
import { KvStore } from '../kv/store.js';
import { put, text } from '../kv/test-helpers.js';
import { downloadBackup, uploadBackup } from './backup.js';
import { BackupError } from './errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'conflux-kvbackup-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('backs up a KvStore and restores it, refusing a corrupted copy', async () => {
  const source = new KvStore({ snapshotChunkBytes: 4096 });
  for (let i = 0; i < 500; i++) put(source, `/k/${String(i).padStart(4, '0')}`, `value-${i}`.repeat(10));
  const snap = source.snapshotStream();
  const res = await uploadBackup(`file://${dir}`, {
    stream: snap,
    metadata: {
      clusterId: 'c1',
      nodeId: 'n1',
      createdAt: new Date().toISOString(),
      lastIndex: snap.applied,
      lastTerm: 1,
      revision: snap.revision,
      keyCount: snap.keyCount,
      formatVersion: SNAPSHOT_FORMAT_VERSION,
    },
  });

  const target = new KvStore();
  const header = await target.restoreFromStream((await downloadBackup(res.uri)).stream);
  expect(header).toEqual({ applied: 500, revision: 500, keyCount: 500 });
  expect(text(target.get('/k/0123')?.value)).toBe('value-123'.repeat(10));

  // Flip one byte. Whichever check fires first (the snapshot's own checksum or the backup's
  // sha256), the restore fails and installs nothing; the backup stream alone reports it too.
  const fh = await open(join(dir, res.key), 'r+');
  await fh.write(Buffer.from('X'), 0, 1, res.bytes - 100);
  await fh.close();
  const fresh = new KvStore();
  await expect(fresh.restoreFromStream((await downloadBackup(res.uri)).stream)).rejects.toThrow();
  expect(fresh.applied).toBe(0); // nothing installed
  const drain = async () => {
    for await (const _ of (await downloadBackup(res.uri)).stream);
  };
  await expect(drain()).rejects.toBeInstanceOf(BackupError);
});
