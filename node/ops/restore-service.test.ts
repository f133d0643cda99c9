// RestoreService on real nodes (RaftNode over DiskStorage, KvStore): backup -> restore round trips
// through s3rver and file://, the pristine-node guard, idempotent retries (also across a restart),
// and every refusal leaving the node pristine.

import { copyFile, mkdir, open, readFile, truncate, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { restoreResponseSchema } from '../api/admin-contract.js';
import { type S3rverHandle, startS3rver } from '../backup/test-s3rver.js';
import { ConfluxError } from '../errors.js';
import type { KvStore } from '../kv/store.js';
import type { KeyValue } from '../kv/types.js';
import { NodeMetrics } from '../metrics.js';
import { RaftError } from '../raft/errors.js';
import { openStorage } from '../storage/index.js';
import { type BackupResponse, BackupService } from './backup-service.js';
import { notPristine, RestoreService, type RestoreServiceDeps } from './restore-service.js';
import { del, TEST_NODE_INFO as INFO, put, type TestNode, TestNodes, until } from './test-node.js';

// A real pino logger: the services take the node's logger as is.
const silent = pino({ level: 'silent' });

const nodes = new TestNodes('conflux-ops-restore-');
let s3: S3rverHandle;

beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(async () => {
  await s3?.stop();
});
beforeEach(() => nodes.setUp());
afterEach(() => nodes.reset());

/** A one-node cluster `source-cluster` with keys written, overwritten and deleted. */
async function sourceCluster(name = 'source'): Promise<TestNode> {
  const node = await nodes.cluster('source-cluster', name, 'src');
  for (let i = 0; i < 120; i++)
    await put(node, `/app/${String(i).padStart(3, '0')}`, `v${i}:`.repeat(i % 17));
  for (let i = 0; i < 120; i += 7) await put(node, `/app/${String(i).padStart(3, '0')}`, `again-${i}`);
  for (let i = 3; i < 120; i += 11) await del(node, `/app/${String(i).padStart(3, '0')}`);
  await put(node, '/unicode/ключ/🔑', 'значение');
  await put(node, '/empty', '');
  return node;
}

async function backup(node: TestNode, destination: string, extra = {}): Promise<BackupResponse> {
  return new BackupService({
    raft: node.raft,
    kv: node.kv,
    nodeId: node.id,
    logger: silent,
    backupOptions: { connection: s3.connection },
    ...extra,
  }).run({ destination, force: true });
}

let minted = 0;
function restorer(node: TestNode, over: Partial<RestoreServiceDeps> = {}): RestoreService {
  return new RestoreService({
    raft: node.raft,
    kv: node.kv,
    nodeId: node.id,
    selfInfo: INFO,
    logger: silent,
    backupOptions: { connection: s3.connection },
    mintClusterId: () => `restored-${++minted}`,
    ...over,
  });
}

function allKeys(kv: KvStore): KeyValue[] {
  const out: KeyValue[] = [];
  let after: string | undefined;
  for (;;) {
    const page = kv.range(after === undefined ? { prefix: '', limit: 50 } : { prefix: '', limit: 50, after });
    out.push(...page.kvs);
    if (!page.more) return out;
    after = page.kvs[page.kvs.length - 1]?.key;
  }
}

const comparable = (kvs: KeyValue[]) =>
  kvs.map((kv) => ({ ...kv, value: Buffer.from(kv.value).toString('hex') }));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ConfluxError || err instanceof RaftError) return err.code;
    throw err;
  }
  throw new Error('did not reject');
}

/** The node is as pristine as a new one, in memory and on disk (reopened, nothing recovered). */
async function expectPristine(node: TestNode): Promise<void> {
  expect(notPristine(node.raft.metrics(), node.kv)).toBeNull();
  await node.stop();
  const { storage, state } = await openStorage(node.dir);
  try {
    expect(state.hardState.term).toBe(0);
    expect(state.entries).toEqual([]);
    expect(state.snapshot).toBeNull();
  } finally {
    await storage.close();
  }
}

async function restoreCount(metrics: NodeMetrics, outcome: string): Promise<number> {
  const m = await metrics.restores.get();
  return m.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

describe('backup -> restore round trips', () => {
  it.each([
    { backend: 's3', dest: () => `s3://${s3.bucket}/clusters/source` },
    { backend: 'file', dest: () => `file://${nodes.root}/backups` },
  ])('restores every key on a fresh node and continues the revisions ($backend)', async ({ dest }) => {
    const source = await sourceCluster();
    const expected = comparable(allKeys(source.kv));
    const b = await backup(source, dest());
    expect(b.revision).toBe(source.kv.revision);

    const target = await nodes.open('target');
    const metrics = new NodeMetrics(false);
    const res = await restorer(target, { metrics }).run({
      snapshot_uri: b.uri,
      expected_cluster_id: 'source-cluster',
    });
    expect(restoreResponseSchema.strict().parse(res)).toEqual(res);
    expect(res).toEqual({
      cluster_id: `restored-${minted}`,
      restored_from: { cluster_id: 'source-cluster', uri: b.uri, index: b.last_index },
      node_id: 'n1',
      keys: expected.length,
      revision: b.revision,
    });

    // A new cluster, led by this node, recording where its data came from.
    const m = target.raft.metrics();
    expect(m.state).toBe('leader');
    expect(m.membership.configs).toEqual([['n1']]);
    expect(m.membership.nodes).toEqual({ n1: INFO });
    expect(m.membership.cluster).toEqual({
      id: res.cluster_id,
      restoredFrom: { clusterId: 'source-cluster', uri: b.uri, index: b.last_index },
    });
    expect(res.cluster_id).not.toBe('source-cluster');

    // Every key and value equal, with their revisions and versions.
    expect(comparable(allKeys(target.kv))).toEqual(expected);
    expect(target.kv.revision).toBe(b.revision);

    // Revisions continue where the backup left off.
    const rev = await put(target, '/app/after-restore', 'new');
    expect(rev).toBeGreaterThan(b.last_index);
    expect(target.kv.get('/app/after-restore')?.createRevision).toBe(rev);
    const again = await put(target, '/app/000', 'changed');
    expect(target.kv.get('/app/000')?.version).toBe((source.kv.get('/app/000')?.version ?? 0) + 1);
    expect(again).toBeGreaterThan(rev);

    expect(await restoreCount(metrics, 'succeeded')).toBe(1);
    expect((await metrics.restoreBytes.get()).values[0]?.value).toBe(b.bytes);
  });

  it('accepts the manifest URI, and the restored data survives a restart', async () => {
    const source = await sourceCluster();
    const expected = comparable(allKeys(source.kv));
    const b = await backup(source, `s3://${s3.bucket}/by-manifest`);
    const target = await nodes.open('target');
    const res = await restorer(target).run({ snapshot_uri: b.manifest_uri });
    expect(res.restored_from.uri).toBe(b.uri); // always the data object's URI

    const rev = await put(target, '/x', 'y');
    await target.stop();
    const reopened = await nodes.open('target');
    await until(() => reopened.raft.metrics().state === 'leader' && reopened.kv.applied >= rev);
    expect(reopened.raft.metrics().membership.cluster).toEqual({
      id: res.cluster_id,
      restoredFrom: { clusterId: 'source-cluster', uri: b.uri, index: b.last_index },
    });
    expect(comparable(allKeys(reopened.kv).filter((kv) => kv.key !== '/x'))).toEqual(expected);

    // A retry after the restart gets the same document (rebuilt from the manifest).
    expect(await restorer(reopened).run({ snapshot_uri: b.uri })).toEqual(res);
  });

  it('restores a cluster that was itself restored, recording its immediate source', async () => {
    const source = await sourceCluster();
    const b1 = await backup(source, `file://${nodes.root}/gen1`);
    const second = await nodes.open('second');
    const r1 = await restorer(second).run({ snapshot_uri: b1.uri });
    await put(second, '/gen', '2');
    const b2 = await backup(second, `file://${nodes.root}/gen2`);
    expect(b2.cluster_id).toBe(r1.cluster_id);
    const third = await nodes.open('third');
    const r2 = await restorer(third).run({ snapshot_uri: b2.uri, expected_cluster_id: r1.cluster_id });
    expect(r2.restored_from).toEqual({ cluster_id: r1.cluster_id, uri: b2.uri, index: b2.last_index });
    expect(comparable(allKeys(third.kv))).toEqual(comparable(allKeys(second.kv)));
  });
});

describe('the pristine-node guard', () => {
  it('refuses a node that holds data and changes nothing', async () => {
    const source = await sourceCluster();
    const b = await backup(source, `file://${nodes.root}/b`);
    const before = { metrics: source.raft.metrics(), keys: comparable(allKeys(source.kv)) };
    const metrics = new NodeMetrics(false);
    const svc = restorer(source, { metrics });
    await expect(svc.run({ snapshot_uri: b.uri })).rejects.toMatchObject({
      code: 'NOT_EMPTY',
      message: expect.stringContaining('raft term'),
    });
    // Whatever the body says, even nonsense.
    expect(await codeOf(svc.run({ snapshot_uri: 'not a uri', expected_cluster_id: 'zzz' }))).toBe(
      'NOT_EMPTY',
    );
    const after = source.raft.metrics();
    expect(after.membership).toEqual(before.metrics.membership);
    expect(after.lastApplied).toBe(before.metrics.lastApplied);
    expect(comparable(allKeys(source.kv))).toEqual(before.keys);
    expect(await restoreCount(metrics, 'refused')).toBe(2);
  });

  it('refuses a node that was initialized, even without any data', async () => {
    const node = await nodes.open('init');
    await node.raft.initialize([node.id], { cluster: { id: 'c-empty', restoredFrom: null } });
    const source = await sourceCluster();
    const b = await backup(source, `file://${nodes.root}/b`);
    expect(await codeOf(restorer(node).run({ snapshot_uri: b.uri }))).toBe('NOT_EMPTY');
    expect(node.raft.metrics().membership.cluster?.id).toBe('c-empty');
  });

  it('answers a retry of the same restore with the same document, anything else with NOT_EMPTY', async () => {
    const source = await sourceCluster();
    const b = await backup(source, `file://${nodes.root}/b`);
    const other = await backup(source, `file://${nodes.root}/other`);
    const target = await nodes.open('target');
    const svc = restorer(target);
    const first = await svc.run({ snapshot_uri: b.uri });
    await put(target, '/written/after', 'restore'); // the retry still describes the restore
    expect(await svc.run({ snapshot_uri: b.uri })).toEqual(first);
    expect(await svc.run({ snapshot_uri: b.manifest_uri, expected_cluster_id: 'source-cluster' })).toEqual(
      first,
    );
    // A new service (another request handler, same process state) rebuilds the same answer.
    expect(await restorer(target).run({ snapshot_uri: b.uri })).toEqual(first);

    expect(await codeOf(svc.run({ snapshot_uri: other.uri }))).toBe('NOT_EMPTY');
    expect(await codeOf(svc.run({ snapshot_uri: b.uri, expected_cluster_id: 'another' }))).toBe('NOT_EMPTY');
    expect(target.raft.metrics().membership.cluster?.id).toBe(first.cluster_id);
  });
});

describe('refused and failed restores leave the node pristine', () => {
  it('CLUSTER_MISMATCH when the backup is of another cluster', async () => {
    const source = await sourceCluster();
    const b = await backup(source, `file://${nodes.root}/b`);
    const target = await nodes.open('target');
    const metrics = new NodeMetrics(false);
    await expect(
      restorer(target, { metrics }).run({ snapshot_uri: b.uri, expected_cluster_id: 'someone-else' }),
    ).rejects.toMatchObject({ code: 'CLUSTER_MISMATCH', details: { actual: 'source-cluster' } });
    expect(await restoreCount(metrics, 'refused')).toBe(1);
    await expectPristine(target);
  });

  it('BACKUP_CORRUPT for a flipped byte, after which a good backup restores', async () => {
    const source = await sourceCluster();
    const good = await backup(source, `file://${nodes.root}/good`);
    // A copy of the backup with one byte of its data flipped.
    await mkdir(join(nodes.root, 'bad'));
    const dataName = basename(new URL(good.uri).pathname);
    await copyFile(join(nodes.root, 'good', dataName), join(nodes.root, 'bad', dataName));
    await copyFile(
      join(nodes.root, 'good', `${dataName}.manifest.json`),
      join(nodes.root, 'bad', `${dataName}.manifest.json`),
    );
    const at = Math.floor(good.bytes / 2);
    const byte = (await readFile(join(nodes.root, 'bad', dataName)))[at] ?? 0;
    const fh = await open(join(nodes.root, 'bad', dataName), 'r+');
    await fh.write(Buffer.from([byte ^ 0xff]), 0, 1, at);
    await fh.close();

    const target = await nodes.open('target');
    const metrics = new NodeMetrics(false);
    const svc = restorer(target, { metrics });
    expect(await codeOf(svc.run({ snapshot_uri: `file://${nodes.root}/bad/${dataName}` }))).toBe(
      'BACKUP_CORRUPT',
    );
    expect(notPristine(target.raft.metrics(), target.kv)).toBeNull();
    expect(await restoreCount(metrics, 'failed')).toBe(1);

    const res = await svc.run({ snapshot_uri: good.uri });
    expect(res.keys).toBe(source.kv.size);
    expect(comparable(allKeys(target.kv))).toEqual(comparable(allKeys(source.kv)));
  });

  it('BACKUP_CORRUPT for a truncated data object and for an unsupported format version', async () => {
    const source = await sourceCluster();
    const b = await backup(source, `file://${nodes.root}/b`);
    const dataName = basename(new URL(b.uri).pathname);
    const target = await nodes.open('target');

    const manifestPath = join(nodes.root, 'b', `${dataName}.manifest.json`);
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    await writeFile(manifestPath, JSON.stringify({ ...manifest, formatVersion: 99 }));
    await expect(restorer(target).run({ snapshot_uri: b.uri })).rejects.toMatchObject({
      code: 'BACKUP_CORRUPT',
      message: expect.stringContaining('format version 99'),
    });

    await writeFile(manifestPath, JSON.stringify(manifest));
    await truncate(join(nodes.root, 'b', dataName), b.bytes - 10);
    expect(await codeOf(restorer(target).run({ snapshot_uri: b.uri }))).toBe('BACKUP_CORRUPT');
    await expectPristine(target);
  });

  it('BACKUP_CORRUPT when the snapshot is not the one the manifest describes', async () => {
    const source = await sourceCluster();
    const b = await backup(source, `file://${nodes.root}/b`);
    const dataName = basename(new URL(b.uri).pathname);
    const manifestPath = join(nodes.root, 'b', `${dataName}.manifest.json`);
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    // Checksums still match (the data is untouched); the claimed position does not.
    await writeFile(manifestPath, JSON.stringify({ ...manifest, lastIndex: manifest.lastIndex + 5 }));
    const target = await nodes.open('target');
    await expect(restorer(target).run({ snapshot_uri: b.uri })).rejects.toMatchObject({
      code: 'BACKUP_CORRUPT',
      details: { problem: 'index-mismatch' },
    });
    await expectPristine(target);
  });

  it('BACKUP_NOT_FOUND for a missing backup (file and S3), INVALID_REQUEST for a bad URI', async () => {
    const target = await nodes.open('target');
    const metrics = new NodeMetrics(false);
    const svc = restorer(target, { metrics });
    expect(await codeOf(svc.run({ snapshot_uri: `file://${nodes.root}/nothing/conflux-x-1.snap` }))).toBe(
      'BACKUP_NOT_FOUND',
    );
    expect(await codeOf(svc.run({ snapshot_uri: `s3://${s3.bucket}/none/conflux-x-1.snap` }))).toBe(
      'BACKUP_NOT_FOUND',
    );
    expect(await codeOf(svc.run({ snapshot_uri: `file://${nodes.root}/nothing/readme.txt` }))).toBe(
      'INVALID_REQUEST',
    );
    expect(await codeOf(svc.run({ snapshot_uri: 'gopher://x/y.snap' }))).toBe('INVALID_REQUEST');
    expect(await restoreCount(metrics, 'failed')).toBe(2);
    expect(await restoreCount(metrics, 'refused')).toBe(2);
    await expectPristine(target);
  });

  it('BACKUP_DESTINATION_ERROR when the destination cannot be reached', async () => {
    const target = await nodes.open('target');
    const unreachable = { ...s3.connection, endpoint: 'http://127.0.0.1:1' };
    const svc = restorer(target, {
      backupOptions: {
        connection: unreachable,
        s3Client: new S3Client({ ...unreachable, region: 'us-east-1', maxAttempts: 1 }),
      },
    });
    expect(await codeOf(svc.run({ snapshot_uri: `s3://${s3.bucket}/x/conflux-x-1.snap` }))).toBe(
      'BACKUP_DESTINATION_ERROR',
    );
    await expectPristine(target);
  });

  it('runs one restore at a time', async () => {
    const source = await sourceCluster();
    const b = await backup(source, `s3://${s3.bucket}/concurrent`);
    const target = await nodes.open('target');
    const metrics = new NodeMetrics(false);
    const svc = restorer(target, { metrics });
    const first = svc.run({ snapshot_uri: b.uri });
    expect(svc.busy).toBe(true);
    await expect(svc.run({ snapshot_uri: b.uri })).rejects.toMatchObject({ code: 'OPERATION_IN_PROGRESS' });
    const res = await first;
    expect(res.restored_from.uri).toBe(b.uri);
    expect(svc.busy).toBe(false);
    expect(await restoreCount(metrics, 'refused')).toBe(1);
    expect(await restoreCount(metrics, 'succeeded')).toBe(1);
  });
});
