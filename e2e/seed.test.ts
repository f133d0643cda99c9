// The seed's four scenarios (test_cluster_bootstrap, test_add_node_workflow,
// test_remove_node_and_scale_down, test_backup_and_disaster_recovery), in order on one cluster of
// real node processes on 127.0.0.1, driven only through the client and admin APIs, with a real
// S3-compatible server (s3rver) started here.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listBackups } from '../node/backup/index.js';
import { type S3rverHandle, startS3rver } from '../node/backup/test-s3rver.js';
import { ProcessCluster, sleep } from './support/process-cluster.js';

// Answers are checked field by field with expect(); a loose type keeps the scenarios readable.
// biome-ignore lint/suspicious/noExplicitAny: test-side JSON documents
type Json = Record<string, any>;

async function call(base: string, path: string, method = 'GET', body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: Json = {};
  try {
    json = JSON.parse(text) as Json;
  } catch {
    json = { text };
  }
  return { status: res.status, body: json, location: res.headers.get('location') };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

const FAST = ['--catch-up-stable-ms', '300'];

describe('the seed scenarios on real processes', () => {
  let s3: S3rverHandle;
  let cluster: ProcessCluster;

  beforeAll(async () => {
    s3 = await startS3rver('backups');
    // Every node process inherits these: the S3 endpoint and its credentials.
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    cluster = await ProcessCluster.create(
      3,
      [...FAST, '--s3-endpoint', s3.endpoint, '--s3-region', 'us-east-1', '--s3-path-style'],
      'self-bootstrap',
    );
  });
  afterAll(async () => {
    await cluster?.destroy();
    await s3?.stop();
  });

  const admin = (id: string) => cluster.adminUrl(id);
  const status = async (id = 'n1') => (await call(admin(id), '/_cluster/status')).body;
  async function operation(id: string, location: string) {
    return until(
      `operation ${location}`,
      async () => {
        const op = (await call(admin(id), location)).body;
        return op.state === 'succeeded' || op.state === 'failed' ? op : undefined;
      },
      60_000,
    );
  }

  it('test_cluster_bootstrap: three self-joining nodes form one cluster with one leader', async () => {
    await cluster.start();
    const s = await until('a healthy cluster', async () => {
      const st = await status('n2');
      return st.healthy ? st : undefined;
    });
    expect(Object.keys(s.nodes).sort()).toEqual(['n1', 'n2', 'n3']);
    expect(s.leader_id).toMatch(/^n[123]$/);
    expect(Object.values(s.nodes).filter((n) => (n as Json).status === 'Leader')).toHaveLength(1);
    expect(s).toMatchObject({ voters: 3, fault_tolerance: 1, errors: [] });
    expect(s.cluster_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('test_add_node_workflow: a fourth node becomes a caught-up voting follower', async () => {
    for (let i = 0; i < 100; i++)
      expect((await call(cluster.url('n1'), `/v1/kv/seed/${i}`, 'PUT', `v${i}`)).status).toBe(200);
    await cluster.addMember('n4', []);
    cluster.spawn('n4');
    const res = await until('n4 to accept the prepare', async () => {
      const r = await call(admin('n2'), '/_cluster/nodes', 'POST', {
        node_id: 'n4',
        ...cluster.addresses('n4'),
      });
      return r.status === 202 ? r : undefined;
    });
    expect(await operation('n2', res.location as string)).toMatchObject({
      state: 'succeeded',
      node_id: 'n4',
    });
    const s = await until('n4 caught up in status', async () => {
      const st = await status('n4');
      return st.nodes.n4?.status === 'Follower' && st.nodes.n4.lag === 0 ? st : undefined;
    });
    expect(s).toMatchObject({ voters: 4, healthy: true });
    expect(s.nodes.n4).toMatchObject({ voter: true, is_reachable: true });
  });

  it('test_remove_node_and_scale_down: node 3 leaves, the cluster stays healthy and writable', async () => {
    const res = await call(admin('n1'), '/_cluster/nodes/n3', 'DELETE');
    expect(res.status).toBe(202);
    expect(await operation('n1', res.location as string)).toMatchObject({ state: 'succeeded' });
    await cluster.destroyMember('n3');
    const s = await until('a healthy cluster without n3', async () => {
      const st = await status('n1');
      return st.healthy && !st.nodes.n3 ? st : undefined;
    });
    expect(Object.keys(s.nodes).sort()).toEqual(['n1', 'n2', 'n4']);
    expect(s).toMatchObject({ voters: 3, fault_tolerance: 1 });
    expect((await call(cluster.url('n4'), '/v1/kv/after-remove', 'PUT', 'yes')).status).toBe(200);
  });

  it('test_backup_and_disaster_recovery: back up to S3, lose everything, restore and grow to three', async () => {
    const before = await status('n1');
    const backup = await call(admin('n2'), '/_cluster/backup', 'POST', {
      destination: 's3://backups/conflux',
    });
    expect(backup.body).toMatchObject({ skipped: false });
    expect(backup.status).toBe(200);
    expect(backup.body).toMatchObject({ skipped: false, cluster_id: before.cluster_id });
    const listed = await listBackups('s3://backups/conflux', { connection: s3.connection });
    expect(listed.map((b) => b.uri)).toContain(backup.body.uri);
    expect(listed[0]?.manifest).toMatchObject({ clusterId: before.cluster_id, sha256: backup.body.sha256 });

    for (const m of ['n1', 'n2', 'n4']) await cluster.destroyMember(m);

    await cluster.addMember('r1', []);
    cluster.spawn('r1');
    const restored = await until('r1 to restore', async () => {
      const r = await call(admin('r1'), '/_cluster/restore', 'POST', {
        snapshot_uri: backup.body.uri,
        expected_cluster_id: before.cluster_id,
      });
      return r.status === 200 ? r : undefined;
    });
    expect(restored.body.restored_from).toMatchObject({
      cluster_id: before.cluster_id,
      uri: backup.body.uri,
    });
    expect(restored.body.cluster_id).not.toBe(before.cluster_id);
    await cluster.waitReady('r1');
    for (let i = 0; i < 100; i++) {
      const r = await call(cluster.url('r1'), `/v1/kv/seed/${i}`);
      expect([r.status, r.body.value]).toEqual([200, `v${i}`]);
    }
    expect((await call(cluster.url('r1'), '/v1/kv/after-remove')).body.value).toBe('yes');
    // The guard: a node with data never restores over it, whatever the body says.
    const again = await call(admin('r1'), '/_cluster/restore', 'POST', {
      snapshot_uri: `${backup.body.uri}`,
    });
    expect(again.status).toBe(200); // the same restore again is answered, not repeated
    const other = await call(admin('r1'), '/_cluster/restore', 'POST', {
      snapshot_uri: 's3://backups/conflux/another.snap',
    });
    expect([other.status, other.body.error?.code]).toEqual([409, 'NOT_EMPTY']);

    for (const id of ['r2', 'r3']) {
      await cluster.addMember(id, []);
      cluster.spawn(id);
      const res = await until(`${id} to accept the prepare`, async () => {
        const r = await call(admin('r1'), '/_cluster/nodes', 'POST', {
          node_id: id,
          ...cluster.addresses(id),
        });
        return r.status === 202 ? r : undefined;
      });
      expect(await operation('r1', res.location as string)).toMatchObject({ state: 'succeeded' });
    }
    const s = await until('a healthy restored cluster of three', async () => {
      const st = await status('r3');
      return st.healthy && st.voters === 3 ? st : undefined;
    });
    expect(s).toMatchObject({
      cluster_id: restored.body.cluster_id,
      restored_from: { cluster_id: before.cluster_id },
    });
    const onR3 = await call(cluster.url('r3'), '/v1/kv/seed/99?consistency=serializable');
    expect(onR3.body.value).toBe('v99');
  });
});
