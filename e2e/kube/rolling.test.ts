// Rolling updates on the Kubernetes API stand-in, driven as a user would: `kubectl patch` the
// image and the operator deletes one pod at a time (the StatefulSet is OnDelete and re-creates
// each from the new template), the leader's pod last; a broken image stalls the roll with one pod
// down; a good image resumes it. The pod runner maps each image to a command: `conflux:next` and
// `conflux:fixed` run conflux-node, `conflux:broken` exits at start.

import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfluxCluster } from '../../operator/api/cluster.js';
import { defaultCommand } from '../../operator/platform/local.js';
import { apply, getCluster, until } from '../scenarios/env.js';
import { clusterManifest, ready } from '../scenarios/lifecycle.js';
import { type StandIn, startStandIn } from './kube-env.js';

const NAME = 'roll';
const node = defaultCommand(false);
const IMAGES = {
  'conflux:next': node,
  'conflux:fixed': node,
  'conflux:broken': {
    execPath: process.execPath,
    args: ['-e', "console.error('conflux:broken cannot start'); process.exit(3)"],
  },
};

const condition = (c: ConfluxCluster | null, type: string) =>
  c?.status?.conditions?.find((x) => x.type === type);

describe('rolling updates on the Kubernetes API stand-in', () => {
  let env: StandIn;
  beforeAll(async () => {
    env = await startStandIn({ images: IMAGES });
  }, 120_000);
  afterAll(async () => env?.stop());

  const pods = async (): Promise<V1Pod[]> => {
    const r = await env.kubectl([
      'get',
      'pods',
      '-n',
      env.namespace,
      '-l',
      `app.kubernetes.io/instance=${NAME}`,
      '-o',
      'json',
    ]);
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout) as { items: V1Pod[] }).items;
  };
  const imageOf = (p: V1Pod) => p.spec?.containers?.[0]?.image;
  const patchImage = async (image: string) => {
    const r = await env.kubectl([
      'patch',
      'confluxcluster',
      NAME,
      '-n',
      env.namespace,
      '--type',
      'merge',
      '-p',
      JSON.stringify({ spec: { image } }),
    ]);
    expect(r.code, r.stderr).toBe(0);
  };
  /** Polls the pods until `done`; records when each pod name first showed each uid. */
  const watchRoll = async (done: (ps: V1Pod[], c: ConfluxCluster | null) => boolean, ms = 300_000) => {
    const seen = new Map<string, string[]>();
    let mostNotReady = 0;
    await until(
      'the roll',
      async () => {
        const ps = await pods();
        for (const p of ps) {
          const name = p.metadata?.name ?? '';
          const uids = seen.get(name) ?? [];
          if (p.metadata?.uid && !uids.includes(p.metadata.uid)) uids.push(p.metadata.uid);
          seen.set(name, uids);
        }
        const ready = ps.filter(
          (p) =>
            !p.metadata?.deletionTimestamp &&
            p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ).length;
        mostNotReady = Math.max(mostNotReady, 3 - ready);
        return done(ps, await getCluster(env, NAME));
      },
      ms,
    );
    return { seen, mostNotReady };
  };

  it('kubectl patch of the image rolls one pod at a time, the leader last', async () => {
    await apply(env, clusterManifest(env, NAME, { replicas: 3, rollingUpdate: { readyTimeoutSeconds: 40 } }));
    const before = await ready(env, NAME, 3, 180_000);
    const leaderPod = before.status?.members?.find((m) => m.id === before.status?.leaderId)?.pod;
    const ids = before.status?.members?.map((m) => `${m.pod}=${m.id}`).sort();
    const sts = await env.kubectl([
      'get',
      'statefulset',
      NAME,
      '-n',
      env.namespace,
      '-o',
      'jsonpath={.spec.updateStrategy.type}',
    ]);
    expect(sts.stdout).toBe('OnDelete');

    const order: string[] = [];
    await patchImage('conflux:next');
    const { seen, mostNotReady } = await watchRoll((ps, c) => {
      for (const p of ps) {
        const name = p.metadata?.name ?? '';
        if (imageOf(p) === 'conflux:next' && !order.includes(name)) order.push(name);
      }
      return (
        ps.length === 3 &&
        ps.every((p) => imageOf(p) === 'conflux:next') &&
        condition(c, 'Ready')?.status === 'True' &&
        !c?.status?.operation
      );
    });
    expect(mostNotReady).toBeLessThanOrEqual(1);
    // Each pod replaced exactly once (two uids: before and after), the leader's last.
    for (const uids of seen.values()) expect(uids).toHaveLength(2);
    expect(order.at(-1)).toBe(leaderPod);
    const after = await ready(env, NAME, 3);
    expect(after.status?.members?.map((m) => `${m.pod}=${m.id}`).sort()).toEqual(ids);
    for (const p of await pods()) {
      expect(p.metadata?.labels?.['controller-revision-hash']).toBeDefined();
    }
    const set = JSON.parse(
      (await env.kubectl(['get', 'statefulset', NAME, '-n', env.namespace, '-o', 'json'])).stdout,
    ) as { status: { updateRevision: string; currentRevision: string } };
    for (const p of await pods())
      expect(p.metadata?.labels?.['controller-revision-hash']).toBe(set.status.updateRevision);
  }, 420_000);

  it('a broken image stalls the roll with one pod down; a good one resumes it', async () => {
    await patchImage('conflux:broken');
    const stalled = await until(
      'Stalled RollingUpdateFailed',
      async () => {
        const c = await getCluster(env, NAME);
        return condition(c, 'Stalled')?.status === 'True' ? c : undefined;
      },
      240_000,
    );
    expect(condition(stalled, 'Stalled')?.reason).toBe('RollingUpdateFailed');
    const bad = `${NAME}-${stalled.status?.operation?.ordinal}`;
    expect(condition(stalled, 'Stalled')?.message).toContain(`${bad} did not come back`);
    const ps = await pods();
    expect(ps.filter((p) => imageOf(p) === 'conflux:broken').map((p) => p.metadata?.name)).toEqual([bad]);
    // The others serve writes.
    const other = [0, 1, 2].map((o) => `${NAME}-${o}`).find((n) => n !== bad) as string;
    const url = await env.clientUrl(NAME, Number(other.slice(NAME.length + 1)));
    const res = await fetch(`${url}/v1/kv/during-stall`, { method: 'PUT', body: 'ok' });
    expect(res.status).toBe(200);

    await patchImage('conflux:fixed');
    await watchRoll(
      (all, c) =>
        all.length === 3 &&
        all.every((p) => imageOf(p) === 'conflux:fixed') &&
        condition(c, 'Ready')?.status === 'True' &&
        condition(c, 'Stalled')?.status === 'False' &&
        !c?.status?.operation,
    );
    const check = await fetch(`${await env.clientUrl(NAME, 0)}/v1/kv/during-stall`);
    expect(((await check.json()) as { value?: string }).value).toBe('ok');
  }, 420_000);
});
