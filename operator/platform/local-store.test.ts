import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { API_VERSION, type ConfluxCluster } from '../api/cluster.js';
import { InvalidResourceError, LocalStore, NotFoundError } from './local-store.js';
import { ConflictError } from './platform.js';

const manifest = (spec: Record<string, unknown> = {}, name = 'demo') => ({
  apiVersion: API_VERSION,
  kind: 'ConfluxCluster',
  metadata: { name },
  spec,
});

const backupManifest = (name: string, clusterName = 'demo') => ({
  apiVersion: API_VERSION,
  kind: 'ConfluxBackup',
  metadata: { name, namespace: 'default' },
  spec: { clusterName },
});

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('LocalStore', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'conflux-store-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('creates with a uid, generation 1, a resourceVersion and the schema defaults', async () => {
    const store = new LocalStore({ root });
    const c = await store.applyCluster(manifest({ replicas: 3 }));
    expect(c.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(c.metadata.generation).toBe(1);
    expect(c.metadata.namespace).toBe('default');
    expect(c.metadata.resourceVersion).toBeDefined();
    expect(c.metadata.creationTimestamp).toBeDefined();
    expect(c.spec.raft.tickMs).toBe(50);
    expect(c.spec.storage.reclaimPolicy).toBe('Delete');
    expect(c.status).toBeUndefined();
    expect(await store.getCluster('default', 'demo')).toEqual(c);
    expect(await store.getCluster('default', 'other')).toBeNull();
  });

  it('bumps generation only on spec changes, resourceVersion on every change, nothing on a no-op', async () => {
    const store = new LocalStore({ root });
    const c1 = await store.applyCluster(manifest({ replicas: 3 }));
    const same = await store.applyCluster(manifest({ replicas: 3 }));
    expect(same.metadata.resourceVersion).toBe(c1.metadata.resourceVersion);
    // Defaults written out explicitly are the same spec.
    const explicit = await store.applyCluster(manifest({ replicas: 3, paused: false }));
    expect(explicit.metadata.resourceVersion).toBe(c1.metadata.resourceVersion);

    const labelled = await store.applyCluster({
      ...manifest({ replicas: 3 }),
      metadata: { name: 'demo', labels: { a: 'b' } },
    });
    expect(labelled.metadata.generation).toBe(1);
    expect(Number(labelled.metadata.resourceVersion)).toBeGreaterThan(Number(c1.metadata.resourceVersion));
    expect(labelled.metadata.uid).toBe(c1.metadata.uid);

    const c2 = await store.applyCluster(manifest({ replicas: 5 }));
    expect(c2.metadata.generation).toBe(2);
    expect(c2.metadata.uid).toBe(c1.metadata.uid);
    expect(c2.metadata.creationTimestamp).toBe(c1.metadata.creationTimestamp);
    expect(Number(c2.metadata.resourceVersion)).toBeGreaterThan(Number(labelled.metadata.resourceVersion));
    expect(c2.metadata.labels).toBeUndefined();

    const scaled = await store.scaleCluster('default', 'demo', 1);
    expect(scaled.spec.replicas).toBe(1);
    expect(scaled.metadata.generation).toBe(3);
  });

  it('writes status without touching spec or generation, and refuses a stale resourceVersion', async () => {
    const store = new LocalStore({ root });
    const c = await store.applyCluster(manifest({ replicas: 3 }));
    const s1 = await store.writeClusterStatus(c, { observedGeneration: 1, phase: 'Pending', replicas: 0 });
    expect(s1.metadata.generation).toBe(1);
    expect(s1.spec).toEqual(c.spec);
    expect(s1.status).toEqual({ observedGeneration: 1, phase: 'Pending', replicas: 0 });
    expect(Number(s1.metadata.resourceVersion)).toBeGreaterThan(Number(c.metadata.resourceVersion));

    await expect(store.writeClusterStatus(c, { phase: 'Running' })).rejects.toBeInstanceOf(ConflictError);
    // A spec change in between also makes the old copy stale.
    await store.applyCluster(manifest({ replicas: 4 }));
    await expect(store.writeClusterStatus(s1, { phase: 'Running' })).rejects.toBeInstanceOf(ConflictError);

    const fresh = (await store.getCluster('default', 'demo'))!;
    expect(fresh.status?.phase).toBe('Pending'); // the spec update kept the status
    // No-op status write: nothing changes, not even the resourceVersion.
    const again = await store.writeClusterStatus(fresh, { ...fresh.status, leaderId: undefined });
    expect(again.metadata.resourceVersion).toBe(fresh.metadata.resourceVersion);

    await expect(
      store.writeClusterStatus({ ...fresh, metadata: { ...fresh.metadata, name: 'nope' } }, {}),
    ).rejects.toBeInstanceOf(NotFoundError);
    await expect(
      store.writeClusterStatus(fresh, { phase: 'Sideways' } as unknown as ConfluxCluster['status'] & object),
    ).rejects.toBeInstanceOf(InvalidResourceError);
  });

  it('honours a resourceVersion given to apply (read-modify-write)', async () => {
    const store = new LocalStore({ root });
    const c = await store.applyCluster(manifest({ replicas: 3 }));
    await store.applyCluster(manifest({ replicas: 4 }));
    await expect(
      store.applyCluster({ ...manifest({ replicas: 5 }), metadata: c.metadata }),
    ).rejects.toBeInstanceOf(ConflictError);
  });

  it('refuses a bad spec with a message naming the field, and a changed spec.restore', async () => {
    const store = new LocalStore({ root });
    await expect(store.applyCluster(manifest({ replicas: 0 }))).rejects.toThrow(
      /ConfluxCluster demo is invalid: spec\.replicas: /,
    );
    await expect(store.applyCluster(manifest({ replicas: 3, colour: 'blue' }))).rejects.toThrow(
      InvalidResourceError,
    );
    await expect(store.applyCluster({ ...manifest(), metadata: { name: 'Bad_Name' } })).rejects.toThrow(
      /metadata\.name/,
    );
    expect(await store.listClusters()).toEqual([]);

    await store.applyCluster(manifest({ restore: { snapshotUri: 'file:///tmp/a' } }));
    await expect(store.applyCluster(manifest({ restore: { snapshotUri: 'file:///tmp/b' } }))).rejects.toThrow(
      /spec\.restore is immutable/,
    );
    await expect(store.applyCluster(manifest({}))).rejects.toThrow(/spec\.restore is immutable/);
  });

  it('persists across instances, and keeps resourceVersions increasing', async () => {
    const a = new LocalStore({ root });
    const c = await a.applyCluster(manifest({ replicas: 3 }));
    const withStatus = await a.writeClusterStatus(c, {
      observedGeneration: 1,
      operation: { kind: 'ScaleUp', ordinal: 2, step: 'adding', startedAt: '2024-01-01T00:00:00Z' },
    });
    await a.applyBackup(backupManifest('nightly-1'));
    await a.applyCluster(manifest({ replicas: 1 }, 'gone'));
    expect(await a.deleteCluster('default', 'gone')).toBe(true);
    expect(await a.deleteCluster('default', 'gone')).toBe(false);
    // A half-written or hand-broken file is skipped, not fatal.
    writeFileSync(join(a.dir, 'confluxcluster.default.broken.json'), '{"nope":');

    const b = new LocalStore({ root });
    expect(await b.listClusters()).toEqual([withStatus]);
    expect((await b.listBackups('default')).map((x) => x.metadata.name)).toEqual(['nightly-1']);
    expect(await b.listBackups('elsewhere')).toEqual([]);
    const next = await b.applyCluster(manifest({ replicas: 5 }));
    expect(Number(next.metadata.resourceVersion)).toBeGreaterThan(
      Number(withStatus.metadata.resourceVersion),
    );
    expect(next.metadata.generation).toBe(2);
    expect(readdirSync(a.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('returns copies: mutating a result does not change the store', async () => {
    const store = new LocalStore({ root });
    const c = await store.applyCluster(manifest({ replicas: 3 }));
    c.spec.replicas = 9;
    expect((await store.getCluster('default', 'demo'))?.spec.replicas).toBe(3);
  });

  it('writes backup status with the same rules', async () => {
    const store = new LocalStore({ root });
    const b = await store.applyBackup(backupManifest('once'));
    expect(b.metadata.generation).toBe(1);
    const done = await store.writeBackupStatus(b, { phase: 'Succeeded', uri: 'file:///x/1' });
    expect(done.status?.phase).toBe('Succeeded');
    await expect(store.writeBackupStatus(b, { phase: 'Failed' })).rejects.toBeInstanceOf(ConflictError);
    expect((await store.getBackup('default', 'once'))?.status?.phase).toBe('Succeeded');
    expect(await store.deleteBackup('default', 'once')).toBe(true);
  });

  it('notifies watchers of every change but not of no-op writes; stop ends notifications', async () => {
    const store = new LocalStore({ root });
    const seen: string[] = [];
    const stop = store.watch((k) => seen.push(`${k.namespace}/${k.name}`));
    const c = await store.applyCluster(manifest({ replicas: 3 }));
    await tick();
    expect(seen).toEqual(['default/demo']);
    await store.applyCluster(manifest({ replicas: 3 }));
    await tick();
    expect(seen).toHaveLength(1);
    const s = await store.writeClusterStatus(c, { phase: 'Pending' });
    await store.writeClusterStatus(s, { phase: 'Pending' });
    await store.applyBackup(backupManifest('b1'));
    await store.deleteCluster('default', 'demo');
    await tick();
    expect(seen).toEqual(['default/demo', 'default/demo', 'default/b1', 'default/demo']);
    stop();
    await store.applyCluster(manifest({ replicas: 3 }));
    await tick();
    expect(seen).toHaveLength(4);
  });

  it('records events, counting identical consecutive ones per object', async () => {
    let now = Date.parse('2024-05-01T00:00:00Z');
    const store = new LocalStore({ root, now: () => new Date(now), maxEvents: 3 });
    const demo = await store.applyCluster(manifest({ replicas: 3 }));
    const other = await store.applyCluster(manifest({ replicas: 1 }, 'other'));
    await store.event(demo, 'Normal', 'Bootstrapped', 'cluster initialized');
    await store.event(other, 'Warning', 'Unreachable', 'x');
    now += 1000;
    await store.event(demo, 'Normal', 'Bootstrapped', 'cluster initialized');
    const events = store.events({ name: 'demo' });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'Normal',
      reason: 'Bootstrapped',
      count: 2,
      firstTimestamp: '2024-05-01T00:00:00.000Z',
      lastTimestamp: '2024-05-01T00:00:01.000Z',
      involvedObject: { kind: 'ConfluxCluster', namespace: 'default', name: 'demo', uid: demo.metadata.uid },
    });
    await store.event(demo, 'Normal', 'ScaledUp', 'added demo-3');
    await store.event(demo, 'Normal', 'Bootstrapped', 'cluster initialized');
    expect(store.events({ name: 'demo' }).map((e) => [e.reason, e.count])).toEqual([
      ['ScaledUp', 1],
      ['Bootstrapped', 1],
    ]);
    expect(store.events()).toHaveLength(3); // capped at maxEvents
  });
});
