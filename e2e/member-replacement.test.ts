// Member replacement on the Local platform with real node processes: a member loses its data (its
// process killed, its data dir deleted); the slot comes back as a NEW node with a new id, and the
// operator removes the dead member and adds the new node, so the cluster heals to three voters
// with every key. The old id never comes back.

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfluxCluster } from '../operator/api/cluster.js';
import type { LocalPlatform } from '../operator/platform/local.js';
import type { LocalStore } from '../operator/platform/local-store.js';
import { type LocalOperator, startLocalOperator, until } from './support/local-operator.js';

describe('member replacement after data loss (Local platform)', () => {
  let op: LocalOperator;
  let store: LocalStore;
  let platform: LocalPlatform;

  beforeAll(async () => {
    op = await startLocalOperator('conflux-replace');
    ({ store, platform } = op);
  });
  afterAll(() => op?.stop());

  const get = async () => (await store.getCluster('default', 'rep')) as ConfluxCluster;
  const healthy = (c: ConfluxCluster) =>
    c.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True' &&
    c.status.members?.length === 3 &&
    c.status.members.every((m) => m.role === 'Leader' || m.role === 'Follower') &&
    c.status.faultTolerance === 1;
  const api = async (ordinal: number) =>
    `http://${(await platform.pods(await get())).find((p) => p.ordinal === ordinal)?.addresses.api}`;

  it('replaces a member whose data dir was deleted, keeping every key', async () => {
    await store.applyCluster({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'rep' },
      spec: { replicas: 3, raft: { tickMs: 20 } },
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
    const lost = before.status?.members?.find((m) => m.pod === 'rep-1')?.id as string;
    expect(lost).toMatch(/^rep-1-/);

    // The disk of rep-1 is gone: kill its node and delete its data dir. The platform starts it
    // again (as the kubelet would), empty: a new node with a new id.
    await platform.kill(before, 1);
    rmSync(platform.volumeDir(before, 1), { recursive: true, force: true });

    const after = await until('the lost member to be replaced', async () => {
      const c = await get();
      const ids = c.status?.members?.map((m) => m.id) ?? [];
      return healthy(c) && !ids.includes(lost) ? c : undefined;
    });
    const replacement = after.status?.members?.find((m) => m.pod === 'rep-1');
    expect(replacement?.id).toBeDefined();
    expect(replacement?.id).not.toBe(lost);
    expect(after.status?.clusterId).toBe(before.status?.clusterId);

    const events = store.events({ name: 'rep' });
    expect(events.map((e) => e.reason)).toEqual(
      expect.arrayContaining(['ReplacingMember', 'MemberReplaced']),
    );
    expect(events.find((e) => e.reason === 'MemberReplaced')?.message).toContain(lost);

    // The new member holds every key (read locally on it), and the cluster takes writes.
    const newApi = await api(1);
    for (const key of keys) {
      const value = await until(`${key} on the new member`, async () => {
        const res = await fetch(`${newApi}/v1/kv/${key}?consistency=serializable`);
        return res.status === 200 ? ((await res.json()) as { value: string }).value : undefined;
      });
      expect(value).toBe(`v-${key}`);
    }
    const put = await fetch(`${newApi}/v1/kv/after-replace`, { method: 'PUT', body: 'ok' });
    expect(put.status).toBe(200);

    // The removed id is retired: the membership refuses it for good.
    const status = (await (
      await fetch(
        `http://${(await platform.pods(after)).find((p) => p.ordinal === 0)?.addresses.admin}/_cluster/status`,
      )
    ).json()) as { nodes: Record<string, unknown> };
    expect(Object.keys(status.nodes)).not.toContain(lost);
  }, 240_000);
});
