// Crash tests of the operator on the Local platform with real nodes: the reconciler dies right
// after every step it takes (the step done, its status not yet written), and a fresh one takes
// over each time. Bootstrap, scale-up, scale-down (leader on the removed ordinal) and a restore
// must still finish with a healthy cluster and every acknowledged write.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfluxCluster } from '../operator/api/cluster.js';
import { LocalPlatform } from '../operator/platform/local.js';
import { LocalStore } from '../operator/platform/local-store.js';
import { Reconciler } from '../operator/reconcile/reconciler.js';
import type { Action } from '../operator/reconcile/types.js';
import { sleep } from './support/process-cluster.js';

const log = pino({ level: process.env.CONFLUX_TEST_LOG ?? 'silent' });

describe('the operator killed after every step', () => {
  const root = mkdtempSync(join(tmpdir(), 'conflux-crash-'));
  let store: LocalStore;
  let platform: LocalPlatform;
  let reconciler: Reconciler | null = null;
  const steps: string[] = [];

  beforeAll(() => {
    store = new LocalStore({ root, logger: log });
    platform = new LocalPlatform({ root, logger: log });
  });
  afterAll(async () => {
    await reconciler?.stop();
    await platform?.stopAll();
    rmSync(root, { recursive: true, force: true });
  });

  const get = (name: string) => store.getCluster('default', name) as Promise<ConfluxCluster>;
  const readyWith = (c: ConfluxCluster | null, n: number) =>
    c?.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True' &&
    c.status.members?.length === n &&
    c.status.operation === null;

  /** Run reconcilers that each crash after their first real step, until `name` is Ready with `n` members. */
  async function throughCrashes(
    name: string,
    n: number,
  ): Promise<{ crashes: number; cluster: ConfluxCluster }> {
    let crashes = 0;
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const cluster = await get(name);
      if (readyWith(cluster, n)) return { crashes, cluster };
      if (!reconciler || reconciler.crashed) {
        if (reconciler?.crashed) crashes++;
        reconciler = new Reconciler({
          store,
          platform,
          logger: log,
          resyncMs: 500,
          failpoint: (a: Action) => {
            steps.push(`${name}:${a.type}`);
            return true;
          },
        });
        await reconciler.start();
      }
      await sleep(100);
    }
    throw new Error(
      `${name} did not become Ready with ${n} members through crashes; steps: ${steps.join(', ')}`,
    );
  }

  async function api(name: string, ordinal: number): Promise<string> {
    const pod = (await platform.pods(await get(name))).find((p) => p.ordinal === ordinal);
    return `http://${pod?.addresses.api}`;
  }

  it('bootstraps, scales up and scales down with a crash after every step, losing nothing', async () => {
    await store.applyCluster({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'crashy' },
      spec: { replicas: 3, raft: { tickMs: 20 } },
    });
    const boot = await throughCrashes('crashy', 3);
    expect(boot.crashes).toBeGreaterThanOrEqual(2); // ensure-members, initialize

    const written: string[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${await api('crashy', i % 3)}/v1/kv/k${i}`, { method: 'PUT', body: `v${i}` });
      if (res.status === 200) written.push(`k${i}`);
    }
    expect(written).toHaveLength(30);

    await store.scaleCluster('default', 'crashy', 4);
    const up = await throughCrashes('crashy', 4);
    expect(up.crashes).toBeGreaterThanOrEqual(2); // ensure-members, add-member

    // The leader on ordinal 3, the first one scale-down removes.
    const slot3 = (await platform.pods(up.cluster)).find((p) => p.ordinal === 3);
    const id3 = (
      (await (await fetch(`http://${slot3?.addresses.admin}/_internal/status`)).json()) as { node_id: string }
    ).node_id;
    await fetch(`http://${slot3?.addresses.admin}/_cluster/leader/transfer`, {
      method: 'POST',
      body: JSON.stringify({ target_node_id: id3 }),
    });

    await store.scaleCluster('default', 'crashy', 3);
    const down = await throughCrashes('crashy', 3);
    expect(down.crashes).toBeGreaterThanOrEqual(3); // transfer, remove, shrink (and reclaim)
    expect(down.cluster.status?.members?.map((m) => m.id)).not.toContain(id3);
    await sleep(1_500); // the volume is reclaimed right after the shrink
    expect(existsSync(platform.volumeDir(down.cluster, 3))).toBe(false);

    for (const key of written) {
      const res = await fetch(`${await api('crashy', 0)}/v1/kv/${key}`);
      expect(((await res.json()) as { value: string }).value).toBe(`v${key.slice(1)}`);
    }
  });

  it('restores into a new cluster with a crash after every step', async () => {
    const admin = (await platform.pods(await get('crashy')))[0]?.addresses.admin;
    const backup = await fetch(`http://${admin}/_cluster/backup`, {
      method: 'POST',
      body: JSON.stringify({ destination: `file://${join(root, 'backups')}` }),
    });
    const { uri } = (await backup.json()) as { uri: string };
    await store.applyCluster({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'revived' },
      spec: { replicas: 3, raft: { tickMs: 20 }, restore: { snapshotUri: uri } },
    });
    const revived = await throughCrashes('revived', 3);
    expect(revived.crashes).toBeGreaterThanOrEqual(4); // ensure 1, restore, then grow and add twice
    expect(revived.cluster.status?.restoredFrom?.uri).toBe(uri);
    const res = await fetch(`${await api('revived', 2)}/v1/kv/k29?consistency=serializable`);
    expect(((await res.json()) as { value: string }).value).toBe('v29');
  });
});
