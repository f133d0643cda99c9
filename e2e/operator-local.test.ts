// The operator's reconciler on the Local platform with real node processes: bootstrap from a
// ConfluxCluster, scale 3 -> 5 -> 3 under a write load (the leader on a removed ordinal), a
// scheduled backup to s3rver, a restore into a new cluster, and a restore refused over data.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type S3rverHandle, startS3rver } from '../node/backup/test-s3rver.js';
import type { ConfluxCluster } from '../operator/api/cluster.js';
import type { LocalPlatform } from '../operator/platform/local.js';
import type { LocalStore } from '../operator/platform/local-store.js';
import { type LocalOperator, startLocalOperator, until } from './support/local-operator.js';

describe('the reconciler on the Local platform', () => {
  let s3: S3rverHandle;
  let op: LocalOperator;
  let store: LocalStore;
  let platform: LocalPlatform;

  beforeAll(async () => {
    s3 = await startS3rver('backups');
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    op = await startLocalOperator('conflux-operator');
    ({ store, platform } = op);
  });
  afterAll(async () => {
    await op?.stop();
    await s3?.stop();
  });

  const get = (name: string) => store.getCluster('default', name) as Promise<ConfluxCluster>;
  const condition = (c: ConfluxCluster, type: string) =>
    c.status?.conditions?.find((x) => x.type === type)?.status;
  const ready = async (name: string, replicas: number) =>
    until(
      `${name} Ready with ${replicas} members`,
      async () => {
        const c = await get(name);
        // No operation in flight: a spec change that reaches the pods (re-created without backup
        // settings, say) rolls them after the cluster is Ready.
        const settled = c.status?.members?.length === replicas && c.status.leaderId && !c.status.operation;
        return condition(c, 'Ready') === 'True' && settled ? c : undefined;
      },
      90_000,
    );
  const apiOf = async (name: string, ordinal = 0) => {
    const pod = (await platform.pods(await get(name))).find((p) => p.ordinal === ordinal);
    return `http://${pod?.addresses.api}`;
  };

  it('bootstraps a three-member cluster from a ConfluxCluster', async () => {
    await store.applyCluster({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'demo' },
      spec: {
        replicas: 3,
        raft: { tickMs: 20 },
        backup: {
          schedule: '*/2 * * * * *',
          suspend: true,
          destination: {
            uri: 's3://backups/demo',
            endpoint: s3.endpoint,
            region: 'us-east-1',
            pathStyle: true,
          },
        },
      },
    });
    const c = await ready('demo', 3);
    expect(c.status).toMatchObject({ phase: 'Running', replicas: 3, readyReplicas: 3, faultTolerance: 1 });
    expect(condition(c, 'Bootstrapped')).toBe('True');
    expect(c.status?.clusterId).toMatch(/^[0-9a-f-]{36}$/);
    expect(c.status?.members?.map((m) => m.id).sort()).toEqual(
      expect.arrayContaining([expect.stringMatching(/^demo-0-[0-9a-f]{8}$/)]),
    );
  });

  it('scales 3 -> 5 -> 3 under a write load without losing or failing a write, the leader on a removed ordinal', async () => {
    const acked = new Map<string, string>();
    const failures: string[] = [];
    let running = true;
    const writer = async (client: number) => {
      for (let seq = 0; running; seq++) {
        const key = `load-${client}-${seq}`;
        try {
          const res = await fetch(`${await apiOf('demo', seq % 3)}/v1/kv/${key}`, {
            method: 'PUT',
            body: key,
            signal: AbortSignal.timeout(10_000),
          });
          if (res.status === 200) acked.set(key, key);
          else failures.push(`${res.status} ${await res.text()}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const writers = [0, 1, 2].map(writer);

    await store.scaleCluster('default', 'demo', 5);
    const five = await ready('demo', 5);
    expect(five.status).toMatchObject({ replicas: 5, faultTolerance: 2, operation: null });

    // Put the leader on ordinal 4, which scale-down removes first.
    const pods = await platform.pods(five);
    const slot4 = pods.find((p) => p.ordinal === 4);
    const slot4Id = (
      (await (await fetch(`http://${slot4?.addresses.admin}/_internal/status`)).json()) as { node_id: string }
    ).node_id;
    const moved = await fetch(`http://${slot4?.addresses.admin}/_cluster/leader/transfer`, {
      method: 'POST',
      body: JSON.stringify({ target_node_id: slot4Id }),
    });
    expect(moved.status).toBe(200);

    await store.scaleCluster('default', 'demo', 3);
    const three = await ready('demo', 3);
    expect(three.status?.members?.map((m) => m.id)).not.toContain(slot4Id);
    expect(three.status?.leaderId).not.toBe(slot4Id);
    await until('slots 3 and 4 to be gone', async () =>
      (await platform.pods(three)).length === 3 ? true : undefined,
    );

    running = false;
    await Promise.all(writers);
    expect(acked.size).toBeGreaterThan(50);
    expect(failures).toEqual([]);
    const api = await apiOf('demo', 0);
    for (const key of acked.keys()) {
      const res = await fetch(`${api}/v1/kv/${key}`);
      expect(((await res.json()) as { value: string }).value).toBe(key);
    }
    const events = store.events({ name: 'demo' }).map((e) => e.reason);
    expect(events).not.toContain('ReconcileFailed');
  });

  it('backs up on schedule to S3 and restores into a new cluster', async () => {
    const api = await apiOf('demo', 1);
    for (let i = 0; i < 20; i++)
      await fetch(`${api}/v1/kv/config/${i}`, { method: 'PUT', body: `value-${i}` });
    const demo = await get('demo');
    await store.applyCluster({
      ...demo,
      status: undefined,
      spec: { ...demo.spec, backup: { ...demo.spec.backup, suspend: false } },
    });
    const backedUp = await until('a scheduled backup', async () => {
      const c = await get('demo');
      return condition(c, 'BackupSucceeded') === 'True' && c.status?.lastBackup ? c : undefined;
    });
    const uri = backedUp.status?.lastBackup?.uri as string;
    expect(uri).toMatch(/^s3:\/\/backups\/demo\/.+\.snap$/);
    expect(backedUp.status?.nextBackup).toBeDefined();

    await store.applyCluster({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'copy' },
      spec: {
        replicas: 3,
        raft: { tickMs: 20 },
        restore: { snapshotUri: uri, expectedClusterId: demo.status?.clusterId },
        backup: {
          schedule: '0 0 * * *',
          suspend: true,
          destination: {
            uri: 's3://backups/copy',
            endpoint: s3.endpoint,
            region: 'us-east-1',
            pathStyle: true,
          },
        },
      },
    });
    const copy = await ready('copy', 3);
    expect(copy.status?.restoredFrom).toMatchObject({ clusterId: demo.status?.clusterId, uri });
    expect(copy.status?.clusterId).not.toBe(demo.status?.clusterId);
    const res = await fetch(`${await apiOf('copy', 2)}/v1/kv/config/19?consistency=serializable`);
    expect(((await res.json()) as { value: string }).value).toBe('value-19');
  });

  it('takes an on-demand backup for a ConfluxBackup and records it in its status', async () => {
    await store.applyBackup({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxBackup',
      metadata: { name: 'before-upgrade' },
      spec: { clusterName: 'copy' },
    });
    const done = await until('the ConfluxBackup to finish', async () => {
      const b = await store.getBackup('default', 'before-upgrade');
      return b?.status?.phase === 'Succeeded' || b?.status?.phase === 'Failed' ? b : undefined;
    });
    expect(done.status).toMatchObject({
      phase: 'Succeeded',
      uri: expect.stringMatching(/^s3:\/\/backups\/copy\/.+\.snap$/),
    });
    expect(store.events({ name: 'before-upgrade' }).map((e) => e.reason)).toContain('BackupCompleted');
  });

  it('never restores over a cluster that holds data', async () => {
    // The ConfluxCluster is deleted but its volumes stay; a new one of the same name asks for a restore.
    const demo = await get('demo');
    const before = demo.status?.clusterId;
    await store.deleteCluster('default', 'demo');
    await store.applyCluster({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'demo' },
      spec: {
        replicas: 3,
        raft: { tickMs: 20 },
        restore: { snapshotUri: demo.status?.lastBackup?.uri as string },
      },
    });
    await until('the refusal', () =>
      store.events({ name: 'demo' }).some((e) => e.reason === 'RestoreRefused') ? true : undefined,
    );
    const again = await ready('demo', 3);
    expect(again.status?.clusterId).toBe(before);
    expect(again.status?.restoredFrom).toBeUndefined();
    const res = await fetch(`${await apiOf('demo', 0)}/v1/kv/config/3`);
    expect(((await res.json()) as { value: string }).value).toBe('value-3');
  });
});
