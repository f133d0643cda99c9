// Member replacement on the Kubernetes API stand-in, driven as a user would: a member's volume is
// lost (`kubectl delete pvc` and its pod); the StatefulSet re-creates both, the pod's node starts
// empty with a new id, and the operator removes the dead member and adds the new node.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfluxCluster } from '../../operator/api/cluster.js';
import { apply, getCluster, until } from '../scenarios/env.js';
import { clusterManifest, expectKeys, ready, writeKeys } from '../scenarios/lifecycle.js';
import { type StandIn, startStandIn } from './kube-env.js';

const NAME = 'rep';

describe('member replacement on the Kubernetes API stand-in', () => {
  let env: StandIn;
  beforeAll(async () => {
    env = await startStandIn();
  }, 120_000);
  afterAll(async () => env?.stop());

  it('a pod whose volume was deleted comes back as a new member in place of the lost one', async () => {
    await apply(env, clusterManifest(env, NAME, { replicas: 3 }));
    const before = await ready(env, NAME, 3, 180_000);
    await writeKeys(env, NAME, 'cfg', 20);
    const lost = before.status?.members?.find((m) => m.pod === `${NAME}-1`)?.id as string;
    expect(lost).toBeDefined();

    for (const args of [
      ['delete', 'pvc', `data-${NAME}-1`, '--wait=false'],
      ['delete', 'pod', `${NAME}-1`, '--wait=false'],
    ]) {
      const r = await env.kubectl([...args, '-n', env.namespace]);
      expect(r.code, r.stderr).toBe(0);
    }

    const after = await until<ConfluxCluster>(
      'the lost member replaced',
      async () => {
        const c = await getCluster(env, NAME);
        const ids = c?.status?.members?.map((m) => m.id) ?? [];
        const healed =
          c?.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True' &&
          ids.length === 3 &&
          !ids.includes(lost) &&
          !c.status?.operation;
        return healed ? c : undefined;
      },
      300_000,
    );
    const replacement = after.status?.members?.find((m) => m.pod === `${NAME}-1`)?.id;
    expect(replacement).toBeDefined();
    expect(replacement).not.toBe(lost);
    expect(after.status?.clusterId).toBe(before.status?.clusterId);
    await expectKeys(env, NAME, 'cfg', 20, 1);

    const events = await env.kubectl([
      'get',
      'events',
      '-n',
      env.namespace,
      '--field-selector',
      `involvedObject.name=${NAME}`,
      '-o',
      'json',
    ]);
    const reasons = (JSON.parse(events.stdout) as { items: { reason: string }[] }).items.map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['ReplacingMember', 'MemberReplaced']));
  }, 600_000);
});
