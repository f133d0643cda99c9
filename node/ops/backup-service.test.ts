// BackupService on a real single-node cluster (RaftNode over DiskStorage, KvStore) backing up to
// file:// destinations (and s3rver for a failed upload): metadata, skip/force, retention scoped to
// the cluster, failed uploads, refusals and metrics.

import { readdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { backupResponseSchema } from '../api/admin-contract.js';
import { downloadBackup, listBackups, openStore, uploadBackup } from '../backup/index.js';
import { type S3rverHandle, startS3rver } from '../backup/test-s3rver.js';
import { ConfluxError } from '../errors.js';
import { SNAPSHOT_FORMAT_VERSION } from '../kv/snapshot-format.js';
import { KvStore, type SnapshotStream } from '../kv/store.js';
import { NodeMetrics } from '../metrics.js';
import { RaftError } from '../raft/errors.js';
import {
  type BackupKv,
  type BackupResponse,
  BackupService,
  type BackupServiceDeps,
} from './backup-service.js';
import { put, type TestNode, TestNodes } from './test-node.js';

// A real pino logger: the services take the node's logger as is.
const silent = pino({ level: 'silent' });
const DAY = 24 * 60 * 60 * 1000;

const nodes = new TestNodes('conflux-ops-backup-');
let s3: S3rverHandle;
let seq = 0;
const opts = () => ({ connection: s3.connection });

beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(async () => {
  await s3?.stop();
});

beforeEach(() => nodes.setUp());
afterEach(() => nodes.reset());

function service(node: TestNode, over: Partial<BackupServiceDeps> = {}): BackupService {
  return new BackupService({
    raft: node.raft,
    kv: node.kv,
    nodeId: node.id,
    logger: silent,
    backupOptions: opts(),
    ...over,
  });
}

/** A clock that moves one second per call, from `start`. */
function steppingClock(start: Date): () => Date {
  let t = start.getTime();
  return () => {
    t += 1000;
    return new Date(t);
  };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ConfluxError || err instanceof RaftError) return err.code;
    throw err;
  }
  throw new Error('did not reject');
}

async function counter(metrics: NodeMetrics, outcome: string): Promise<number> {
  const m = await metrics.backups.get();
  return m.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

describe('BackupService', () => {
  it('backs up every acknowledged write with its metadata, in the contract shape', async () => {
    const node = await nodes.cluster('cluster-a');
    for (let i = 0; i < 50; i++) await put(node, `/cfg/${i}`, `value-${i}`.repeat(20));
    const lastWrite = await put(node, '/cfg/last', 'final');
    const metrics = new NodeMetrics(false);
    const dest = `file://${nodes.root}/backups`;

    const res = await service(node, { metrics }).run({ destination: dest });
    expect(backupResponseSchema.strict().parse(res)).toEqual(res);
    expect(res).toMatchObject({
      skipped: false,
      cluster_id: 'cluster-a',
      revision: lastWrite,
      deleted: [],
    });
    expect(res.last_index).toBe(node.kv.applied);
    expect(res.uri.startsWith(`${dest}/conflux-cluster-a-`)).toBe(true);
    expect(res.manifest_uri).toBe(`${res.uri}.manifest.json`);

    const [entry] = await listBackups(dest);
    expect(entry?.manifest).toMatchObject({
      clusterId: 'cluster-a',
      nodeId: 'n1',
      lastIndex: res.last_index,
      lastTerm: node.raft.metrics().currentTerm,
      revision: lastWrite,
      keyCount: 51,
      formatVersion: SNAPSHOT_FORMAT_VERSION,
      bytes: res.bytes,
      sha256: res.sha256,
      createdAt: res.created_at,
    });
    // The data is exactly the store's snapshot at that point.
    const chunks: Uint8Array[] = [];
    for await (const c of (await downloadBackup(res.uri)).stream) chunks.push(c);
    expect(Buffer.concat(chunks).equals(Buffer.from(node.kv.snapshot().data))).toBe(true);

    expect(await counter(metrics, 'succeeded')).toBe(1);
    expect((await metrics.backupBytes.get()).values[0]?.value).toBe(res.bytes);
    expect((await metrics.lastBackupTimestamp.get()).values[0]?.value).toBe(
      Date.parse(res.created_at) / 1000,
    );
  });

  it('uses the configured destination when the request names none', async () => {
    const node = await nodes.cluster('cluster-a');
    await put(node, '/k', 'v');
    const res = await service(node, { defaultDestination: `file://${nodes.root}/default` }).run();
    expect(res.uri.startsWith(`file://${nodes.root}/default/`)).toBe(true);
  });

  it('skips when nothing changed since the newest backup, unless forced', async () => {
    const node = await nodes.cluster('cluster-a');
    await put(node, '/k', 'v1');
    const metrics = new NodeMetrics(false);
    const svc = service(node, { metrics, now: steppingClock(new Date('2025-01-01T00:00:00Z')) });
    const dest = `file://${nodes.root}/b`;

    const first = await svc.run({ destination: dest });
    const again = await svc.run({ destination: dest });
    expect(again).toEqual({ ...first, skipped: true });
    expect(await listBackups(dest)).toHaveLength(1);
    expect(await counter(metrics, 'skipped')).toBe(1);

    const forced = await svc.run({ destination: dest, force: true });
    expect(forced.skipped).toBe(false);
    expect(forced.uri).not.toBe(first.uri);
    expect(forced.revision).toBe(first.revision);

    await put(node, '/k', 'v2');
    const changed = await svc.run({ destination: dest });
    expect(changed.skipped).toBe(false);
    expect(changed.revision).toBeGreaterThan(first.revision);
    expect(await listBackups(dest)).toHaveLength(3);
  });

  it('does not skip because of another cluster’s backup with the same revision', async () => {
    const node = await nodes.cluster('cluster-a');
    await put(node, '/k', 'v1');
    const dest = `file://${nodes.root}/shared`;
    await uploadForeign(dest, 'cluster-other', node.kv.revision, new Date().toISOString());
    const res = await service(node).run({ destination: dest });
    expect(res.skipped).toBe(false);
    expect(res.cluster_id).toBe('cluster-a');
  });

  it('applies keep-last retention to this cluster’s backups only', async () => {
    const node = await nodes.cluster('cluster-a');
    const dest = `file://${nodes.root}/r`;
    // An older backup of another cluster in the same destination is never touched.
    const foreign = await uploadForeign(dest, 'cluster-other', 1, '2024-01-01T00:00:00.000Z');
    const svc = service(node, {
      retention: { keepLast: 2 },
      now: steppingClock(new Date('2025-01-01T00:00:00Z')),
    });
    const runs: BackupResponse[] = [];
    for (let i = 0; i < 4; i++) {
      await put(node, '/k', `v${i}`);
      runs.push(await svc.run({ destination: dest }));
    }
    expect(runs.map((r) => r.deleted)).toEqual([[], [], [runs[0]?.uri], [runs[1]?.uri]]);
    const left = (await listBackups(dest)).map((e) => e.uri);
    expect(left).toEqual([runs[3]?.uri, runs[2]?.uri, foreign]);
    // Manifest and data are both gone.
    const files = await readdir(join(nodes.root, 'r'));
    for (const gone of [runs[0], runs[1]]) {
      const name = basename(new URL(gone?.uri ?? '').pathname);
      expect(files).not.toContain(name);
      expect(files).not.toContain(`${name}.manifest.json`);
    }
    expect(files.filter((f) => !f.startsWith('.'))).toHaveLength(6);
  });

  it('applies max-age retention, also when the backup itself is skipped', async () => {
    const node = await nodes.cluster('cluster-a');
    await put(node, '/k', 'v');
    const dest = `file://${nodes.root}/age`;
    let now = new Date('2025-01-01T00:00:00Z').getTime();
    const clock = () => {
      now += 1000;
      return new Date(now);
    };
    const svc = service(node, { retention: { maxAgeDays: 7 }, now: clock });

    const old1 = await svc.run({ destination: dest, force: true });
    const old2 = await svc.run({ destination: dest, force: true });
    now += 10 * DAY;
    // Nothing changed: skipped, yet the policy still runs. The newest backup is never deleted.
    const skipped = await svc.run({ destination: dest });
    expect(skipped).toMatchObject({ skipped: true, uri: old2.uri, deleted: [old1.uri] });
    const fresh = await svc.run({ destination: dest, force: true });
    expect(fresh.deleted).toEqual([old2.uri]);
    expect((await listBackups(dest)).map((e) => e.uri)).toEqual([fresh.uri]);
  });

  it.each([
    { backend: 'file', dest: () => `file://${nodes.root}/fail` },
    { backend: 's3', dest: () => `s3://${s3.bucket}/fail-${++seq}` },
  ])(
    'leaves nothing that looks like a backup when the snapshot stream fails mid-way ($backend)',
    async ({ backend, dest: destOf }) => {
      const node = await nodes.cluster('cluster-a');
      for (let i = 0; i < 100; i++) await put(node, `/k/${i}`, 'x'.repeat(100));
      const failing: BackupKv = {
        get revision() {
          return node.kv.revision;
        },
        snapshotStream(): SnapshotStream {
          const real = node.kv.snapshotStream();
          return {
            applied: real.applied,
            revision: real.revision,
            keyCount: real.keyCount,
            async *[Symbol.asyncIterator]() {
              let n = 0;
              for await (const chunk of real) {
                if (++n === 3) throw new Error('disk read failed');
                yield chunk;
              }
            },
          };
        },
      };
      const metrics = new NodeMetrics(false);
      const dest = destOf();
      const svc = service(node, { kv: failing, metrics });
      // The source's own error, not blamed on the destination.
      const err = await svc.run({ destination: dest }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ConfluxError);
      expect((err as Error).message).toBe('disk read failed');
      expect(await listBackups(dest, opts())).toEqual([]);
      if (backend === 'file')
        expect(await readdir(join(nodes.root, 'fail'))).toEqual([]); // no data, no temp file
      else expect(await openStore(dest, opts()).list()).toEqual([]);
      expect(await counter(metrics, 'failed')).toBe(1);
      expect((await metrics.lastBackupTimestamp.get()).values[0]?.value ?? 0).toBe(0);
      // The service is free again, and a good stream succeeds.
      expect((await service(node).run({ destination: dest })).skipped).toBe(false);
    },
  );

  it('runs one backup at a time', async () => {
    const node = await nodes.cluster('cluster-a');
    for (let i = 0; i < 20; i++) await put(node, `/k/${i}`, 'v');
    const svc = service(node);
    const dest = `file://${nodes.root}/c`;
    const first = svc.run({ destination: dest });
    expect(svc.busy).toBe(true);
    expect(await codeOf(svc.run({ destination: dest, force: true }))).toBe('OPERATION_IN_PROGRESS');
    expect((await first).skipped).toBe(false);
    expect(svc.busy).toBe(false);
    expect((await svc.run({ destination: dest, force: true })).skipped).toBe(false);
  });

  it('refuses on a node that belongs to no cluster', async () => {
    const node = await nodes.open('pristine');
    const metrics = new NodeMetrics(false);
    expect(await codeOf(service(node, { metrics }).run({ destination: `file://${nodes.root}/x` }))).toBe(
      'NOT_INITIALIZED',
    );
    expect(await counter(metrics, 'failed')).toBe(1);
  });

  it('refuses without a destination, naming --backup-destination, and refuses bad URIs', async () => {
    const node = await nodes.cluster('cluster-a');
    const svc = service(node);
    await expect(svc.run()).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
      message: expect.stringContaining('--backup-destination'),
    });
    expect(await codeOf(svc.run({ destination: 'ftp://host/dir' }))).toBe('INVALID_REQUEST');
    expect(await codeOf(svc.run({ destination: 'file:///' }))).toBe('INVALID_REQUEST');
  });

  it('reports a destination that cannot be written as BACKUP_DESTINATION_ERROR', async () => {
    const node = await nodes.cluster('cluster-a');
    await put(node, '/k', 'v');
    // A regular file where the destination directory should be.
    await writeFile(join(nodes.root, 'blocked'), 'not a directory');
    expect(await codeOf(service(node).run({ destination: `file://${nodes.root}/blocked/sub` }))).toBe(
      'BACKUP_DESTINATION_ERROR',
    );
  });
});

/** A complete backup of another cluster in `dest`; returns its data URI. */
async function uploadForeign(dest: string, clusterId: string, revision: number, createdAt: string) {
  const kv = new KvStore();
  const stream = kv.snapshotStream();
  const res = await uploadBackup(dest, {
    stream,
    metadata: {
      clusterId,
      nodeId: 'other',
      createdAt,
      lastIndex: revision,
      lastTerm: 1,
      revision,
      keyCount: 0,
      formatVersion: SNAPSHOT_FORMAT_VERSION,
    },
  });
  return res.uri;
}
