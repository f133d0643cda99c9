// Quorum-loss recovery on the Local platform with real node processes: two of three members lose
// their data. The operator does nothing on its own (it waits and says how to recover); only once
// spec.recovery names the survivor does it rebuild a one-member cluster from it under a new
// cluster id, and grow it back to three members through the add flow, with the survivor's data.

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfluxCluster } from '../operator/api/cluster.js';
import type { LocalPlatform } from '../operator/platform/local.js';
import type { LocalStore } from '../operator/platform/local-store.js';
import { type LocalOperator, startLocalOperator, until } from './support/local-operator.js';
import { sleep } from './support/process-cluster.js';

describe('quorum-loss recovery (Local platform)', () => {
  let op: LocalOperator;
  let store: LocalStore;
  let platform: LocalPlatform;

  beforeAll(async () => {
    op = await startLocalOperator('conflux-recovery');
    ({ store, platform } = op);
  });
  afterAll(() => op?.stop());

  const get = async () => (await store.getCluster('default', 'qr')) as ConfluxCluster;
  const condition = (c: ConfluxCluster, type: string) => c.status?.conditions?.find((x) => x.type === type);
  const healthy = (c: ConfluxCluster) =>
    condition(c, 'Ready')?.status === 'True' &&
    c.status?.members?.length === 3 &&
    c.status.members.every((m) => m.role === 'Leader' || m.role === 'Follower') &&
    c.status.faultTolerance === 1;
  const api = async (ordinal: number) =>
    `http://${(await platform.pods(await get())).find((p) => p.ordinal === ordinal)?.addresses.api}`;
  const reasons = () => store.events({ name: 'qr' }).map((e) => e.reason);

  it('waits on a quorum loss, and rebuilds from the survivor only when spec.recovery asks', async () => {
    const spec = { replicas: 3, raft: { tickMs: 20 } };
    await store.applyCluster({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'qr' },
      spec,
    });
    const before = await until('a healthy three-member cluster', async () => {
      const c = await get();
      return healthy(c) ? c : undefined;
    });
    const keys = Array.from({ length: 30 }, (_, i) => `cfg/${i}`);
    for (const key of keys) {
      const res = await fetch(`${await api(0)}/v1/kv/${key}`, { method: 'PUT', body: `v-${key}` });
      expect(res.status).toBe(200);
    }
    const oldId = before.status?.clusterId as string;
    const survivor = before.status?.members?.find((m) => m.pod === 'qr-0')?.id as string;
    const oldMembers = before.status?.members?.map((m) => m.id).sort();

    // qr-1 and qr-2 lose their disks for good; they come back empty, with new ids.
    for (const ordinal of [1, 2]) {
      await platform.kill(before, ordinal);
      rmSync(platform.volumeDir(before, ordinal), { recursive: true, force: true });
    }

    // Nothing happens on its own: the operator waits and names the recovery option.
    const warned = await until('the QuorumLost warning', async () => {
      const e = store.events({ name: 'qr' }).find((x) => x.reason === 'QuorumLost');
      return e ?? undefined;
    });
    expect(warned.type).toBe('Warning');
    expect(warned.message).toContain('spec.recovery.forceNewClusterFrom');
    const watchUntil = Date.now() + 8_000;
    while (Date.now() < watchUntil) {
      const c = await get();
      expect(c.status?.clusterId).toBe(oldId);
      expect(c.status?.members?.map((m) => m.id).sort()).toEqual(oldMembers);
      expect(condition(c, 'Available')?.status).toBe('False');
      expect(reasons()).not.toContain('QuorumRecovered');
      await sleep(500);
    }
    const internal = (await (
      await fetch(
        `http://${(await platform.pods(before)).find((p) => p.ordinal === 0)?.addresses.admin}/_internal/status`,
      )
    ).json()) as { cluster_id: string; voters: string[][] };
    expect(internal.cluster_id).toBe(oldId);
    expect(internal.voters.flat().sort()).toEqual(oldMembers);

    // The operator of the cluster asks for the recovery.
    await store.applyCluster({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'qr' },
      spec: { ...spec, recovery: { forceNewClusterFrom: 'qr-0' } },
    });
    const after = await until(
      'the cluster rebuilt to three healthy members',
      async () => {
        const c = await get();
        return healthy(c) && c.status?.clusterId !== oldId ? c : undefined;
      },
      180_000,
    );
    expect(after.status?.recoveredFrom).toMatchObject({
      clusterId: oldId,
      nodeId: survivor,
      pod: 'qr-0',
      request: 'qr-0',
    });
    const ids = after.status?.members?.map((m) => m.id) ?? [];
    expect(ids).toContain(survivor);
    expect(ids.filter((id) => id !== survivor && oldMembers?.includes(id))).toEqual([]);
    expect(reasons()).toContain('QuorumRecovered');

    // The survivor's data is all there, on every member, and the cluster takes writes.
    for (const ordinal of [0, 1, 2]) {
      const url = await api(ordinal);
      for (const key of keys) {
        const value = await until(`${key} on qr-${ordinal}`, async () => {
          const res = await fetch(`${url}/v1/kv/${key}?consistency=serializable`);
          return res.status === 200 ? ((await res.json()) as { value: string }).value : undefined;
        });
        expect(value).toBe(`v-${key}`);
      }
    }
    const put = await fetch(`${await api(1)}/v1/kv/after-recovery`, { method: 'PUT', body: 'ok' });
    expect(put.status).toBe(200);

    // spec.recovery left in place is a no-op: a later pass changes nothing.
    await sleep(3_000);
    const later = await get();
    expect(later.status?.clusterId).toBe(after.status?.clusterId);
    expect(reasons().filter((r) => r === 'QuorumRecovered')).toHaveLength(1);
  }, 360_000);
});

describe('quorum-loss recovery with an old member returning (Local platform)', () => {
  let op: LocalOperator;
  let store: LocalStore;
  let platform: LocalPlatform;

  beforeAll(async () => {
    // Dead members stay down until the test starts them: it decides when they come back.
    op = await startLocalOperator('conflux-recovery-wipe', { platform: { autoRestart: false } });
    ({ store, platform } = op);
  });
  afterAll(() => op?.stop());

  const get = async () => (await store.getCluster('default', 'qw')) as ConfluxCluster;
  const healthy = (c: ConfluxCluster) =>
    c.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True' &&
    c.status?.members?.length === 3 &&
    c.status.members.every((m) => m.role === 'Leader' || m.role === 'Follower') &&
    c.status.faultTolerance === 1;

  it('wipes a member of the old cluster that comes back, and adds it with a new id', async () => {
    const spec = { replicas: 3, raft: { tickMs: 20 } };
    await store.applyCluster({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'qw' },
      spec,
    });
    const before = await until('a healthy three-member cluster', async () => {
      const c = await get();
      return healthy(c) ? c : undefined;
    });
    const pods = await platform.pods(before);
    const apiOf = (o: number) => `http://${pods.find((p) => p.ordinal === o)?.addresses.api}`;
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${apiOf(0)}/v1/kv/k${i}`, { method: 'PUT', body: `v${i}` });
      expect(res.status).toBe(200);
    }
    const oldId = before.status?.clusterId as string;
    const old1 = before.status?.members?.find((m) => m.pod === 'qw-1')?.id as string;

    // qw-1 stops with its data; qw-2 loses its disk. Both stay down: the quorum is lost.
    await platform.kill(before, 1);
    await platform.kill(before, 2);
    rmSync(platform.volumeDir(before, 2), { recursive: true, force: true });
    await until('the QuorumLost warning', async () =>
      store.events({ name: 'qw' }).find((e) => e.reason === 'QuorumLost'),
    );

    await store.applyCluster({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'qw' },
      spec: { ...spec, recovery: { forceNewClusterFrom: 'qw-0' } },
    });
    const rebuilt = await until('the one-member cluster', async () => {
      const c = await get();
      return c.status?.clusterId !== oldId && c.status?.recoveredFrom ? c : undefined;
    });
    expect(rebuilt.status?.recoveredFrom?.clusterId).toBe(oldId);

    // The old members come back: qw-1 with the old cluster's data, qw-2 empty.
    await until('qw-1 and qw-2 running again', async () => {
      await platform.ensureMembers(await get(), 3);
      const running = (await platform.pods(await get())).filter((p) => p.running).length;
      return running === 3 ? true : undefined;
    });
    const after = await until(
      'three healthy members of the new cluster',
      async () => {
        const c = await get();
        return healthy(c) && c.status?.clusterId === rebuilt.status?.clusterId ? c : undefined;
      },
      180_000,
    );
    const ids = after.status?.members?.map((m) => m.id) ?? [];
    expect(ids).not.toContain(old1);
    const wiped = store.events({ name: 'qw' }).find((e) => e.reason === 'WipingMember');
    expect(wiped?.message).toContain('qw-1');
    expect(wiped?.message).toContain(old1);
    for (let i = 0; i < 20; i++) {
      const value = await until(`k${i} on qw-1`, async () => {
        const res = await fetch(`${apiOf(1)}/v1/kv/k${i}?consistency=serializable`);
        return res.status === 200 ? ((await res.json()) as { value: string }).value : undefined;
      });
      expect(value).toBe(`v${i}`);
    }
  }, 360_000);
});
