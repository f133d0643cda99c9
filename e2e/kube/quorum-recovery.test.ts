// Quorum-loss recovery on the Kubernetes API stand-in, driven as a user would: two of three
// members lose their volumes (`kubectl delete pvc` and their pods). The operator only waits and
// warns; `kubectl patch` of spec.recovery makes it rebuild the cluster from the survivor under a
// new cluster id and grow it back to three members with the survivor's data.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfluxCluster } from '../../operator/api/cluster.js';
import { apply, getCluster, until } from '../scenarios/env.js';
import { clusterManifest, expectKeys, ready, writeKeys } from '../scenarios/lifecycle.js';
import { type StandIn, startStandIn } from './kube-env.js';

const NAME = 'qr';

describe('quorum-loss recovery on the Kubernetes API stand-in', () => {
  let env: StandIn;
  beforeAll(async () => {
    env = await startStandIn();
  }, 120_000);
  afterAll(async () => env?.stop());

  const events = async () => {
    const r = await env.kubectl([
      'get',
      'events',
      '-n',
      env.namespace,
      '--field-selector',
      `involvedObject.name=${NAME}`,
      '-o',
      'json',
    ]);
    return (JSON.parse(r.stdout) as { items: { reason: string; type: string; message: string }[] }).items;
  };

  it('waits on a quorum loss and rebuilds from the survivor once spec.recovery names it', async () => {
    await apply(env, clusterManifest(env, NAME, { replicas: 3 }));
    const before = await ready(env, NAME, 3, 180_000);
    await writeKeys(env, NAME, 'cfg', 20);
    const oldId = before.status?.clusterId;
    const survivor = before.status?.members?.find((m) => m.pod === `${NAME}-0`)?.id;
    const oldMembers = before.status?.members?.map((m) => m.id).sort();

    for (const ordinal of [1, 2]) {
      for (const args of [
        ['delete', 'pvc', `data-${NAME}-${ordinal}`, '--wait=false'],
        ['delete', 'pod', `${NAME}-${ordinal}`, '--wait=false'],
      ]) {
        const r = await env.kubectl([...args, '-n', env.namespace]);
        expect(r.code, r.stderr).toBe(0);
      }
    }

    const warning = await until(
      'the QuorumLost warning',
      async () => (await events()).find((e) => e.reason === 'QuorumLost'),
      180_000,
    );
    expect(warning.type).toBe('Warning');
    expect(warning.message).toContain('spec.recovery.forceNewClusterFrom');
    const waiting = (await getCluster(env, NAME)) as ConfluxCluster;
    expect(waiting.status?.clusterId).toBe(oldId);
    expect(waiting.status?.members?.map((m) => m.id).sort()).toEqual(oldMembers);
    expect((await events()).map((e) => e.reason)).not.toContain('QuorumRecovered');

    const r = await env.kubectl([
      'patch',
      'confluxcluster',
      NAME,
      '-n',
      env.namespace,
      '--type',
      'merge',
      '-p',
      JSON.stringify({ spec: { recovery: { forceNewClusterFrom: `${NAME}-0` } } }),
    ]);
    expect(r.code, r.stderr).toBe(0);

    const after = await until<ConfluxCluster>(
      'three members of the rebuilt cluster',
      async () => {
        const c = await ready(env, NAME, 3, 5_000).catch(() => undefined);
        return c && c.status?.clusterId !== oldId ? c : undefined;
      },
      300_000,
    );
    expect(after.status?.recoveredFrom).toMatchObject({
      clusterId: oldId,
      nodeId: survivor,
      request: `${NAME}-0`,
    });
    expect(after.status?.members?.map((m) => m.id)).toContain(survivor);
    expect((await events()).map((e) => e.reason)).toContain('QuorumRecovered');
    for (const ordinal of [0, 1, 2]) await expectKeys(env, NAME, 'cfg', 20, ordinal);
  }, 720_000);
});
