// The operator's day-2 operations on a real cluster, driven as a user would, on one cluster:
// - rolling update: `kubectl patch` of the image; the operator deletes one pod at a time (the
//   StatefulSet is OnDelete and re-creates each from the new template), the leader's pod last; a
//   broken image stalls the roll with one pod down, a good image resumes it;
// - member replacement: a member's volume is lost (`kubectl delete pvc` and its pod); the
//   StatefulSet re-creates both, the member starts empty with a new id, and the operator removes
//   the dead member and adds the new one;
// - quorum-loss recovery: two of three members lose their volumes; the operator only waits and
//   warns until spec.recovery names the survivor, then rebuilds from it under a new cluster id.
// The kubelets know `conflux:next` and `conflux:fixed` as the Conflux image and `conflux:broken`
// as one that exits at start.

import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ConfluxCluster } from '../../operator/api/cluster.js';
import { apply, getCluster, until } from '../scenarios/env.js';
import { clusterManifest, expectKeys, ready, writeKeys } from '../scenarios/lifecycle.js';
import { REPO_ROOT } from '../support/helm.js';
import { BRIEF_MS, checkHealthStep, HealthWatch, settlesAs } from './argocd-health.js';
import { confluxImage } from './kubelet/images.js';
import { canRunRealCluster, type RealCluster, startRealCluster } from './real-env.js';
import { skipUnless } from './require.js';

const skip = skipUnless(
  canRunRealCluster(),
  'operations.test.ts',
  'needs root and the Kubernetes binaries (or Go to build them)',
);

const condition = (c: ConfluxCluster | null, type: string) =>
  c?.status?.conditions?.find((x) => x.type === type);

describe.skipIf(skip)('operator operations on a real cluster', () => {
  let cluster: RealCluster | undefined;
  // The pod network is host-wide: in npm test the start may wait (up to 600 s) for another cluster.
  beforeAll(async () => {
    const conflux = confluxImage({ repoDir: REPO_ROOT });
    cluster = await startRealCluster({
      extraImages: {
        'conflux:next': conflux,
        'conflux:fixed': conflux,
        'conflux:broken': {
          command: [process.execPath, '-e', "console.error('conflux:broken cannot start'); process.exit(3)"],
          user: { uid: 10001, gid: 10001 },
        },
      },
    });
  }, 900_000);
  // Tearing down every process, namespace and nftables table takes a while on a loaded host.
  afterAll(async () => cluster?.stop(), 120_000);
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && cluster) console.log(cluster.operatorLogs());
  });
  const env = () => {
    if (!cluster) throw new Error('the cluster did not start');
    return cluster;
  };
  const kubectlOk = async (args: string[]) => {
    const r = await env().kubectl(args);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  const pods = async (name: string): Promise<V1Pod[]> =>
    (
      JSON.parse(
        await kubectlOk([
          'get',
          'pods',
          '-n',
          env().namespace,
          '-l',
          `app.kubernetes.io/instance=${name}`,
          '-o',
          'json',
        ]),
      ) as { items: V1Pod[] }
    ).items;
  const events = async (name: string) =>
    (
      JSON.parse(
        await kubectlOk([
          'get',
          'events',
          '-n',
          env().namespace,
          '--field-selector',
          `involvedObject.name=${name}`,
          '-o',
          'json',
        ]),
      ) as { items: { reason: string; type: string; message: string }[] }
    ).items;
  /** Lose members' volumes as a user would: the PVC, then its pod. */
  const loseVolumes = async (name: string, ordinals: number[]) => {
    for (const ordinal of ordinals) {
      await kubectlOk(['delete', 'pvc', `data-${name}-${ordinal}`, '-n', env().namespace, '--wait=false']);
      await kubectlOk(['delete', 'pod', `${name}-${ordinal}`, '-n', env().namespace, '--wait=false']);
    }
  };
  /** Each scenario's cluster goes when it is done: two cores run one at a time. */
  const remove = (name: string) =>
    kubectlOk(['delete', 'confluxcluster', name, '-n', env().namespace, '--wait=false']);

  describe('rolling updates', () => {
    const NAME = 'roll';
    const imageOf = (p: V1Pod) => p.spec?.containers?.[0]?.image;
    const patchImage = (image: string) =>
      kubectlOk([
        'patch',
        'confluxcluster',
        NAME,
        '-n',
        env().namespace,
        '--type',
        'merge',
        '-p',
        JSON.stringify({ spec: { image } }),
      ]);
    /** Polls the pods until `done`; records each uid every pod name showed. */
    const watchRoll = async (done: (ps: V1Pod[], c: ConfluxCluster | null) => boolean, ms = 300_000) => {
      const seen = new Map<string, string[]>();
      let mostNotReady = 0;
      await until(
        'the roll',
        async () => {
          const ps = await pods(NAME);
          for (const p of ps) {
            const name = p.metadata?.name ?? '';
            const uids = seen.get(name) ?? [];
            if (p.metadata?.uid && !uids.includes(p.metadata.uid)) uids.push(p.metadata.uid);
            seen.set(name, uids);
          }
          const readyPods = ps.filter(
            (p) =>
              !p.metadata?.deletionTimestamp &&
              p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
          ).length;
          mostNotReady = Math.max(mostNotReady, 3 - readyPods);
          return done(ps, await getCluster(env(), NAME));
        },
        ms,
      );
      return { seen, mostNotReady };
    };

    it('kubectl patch of the image rolls one pod at a time, the leader last', async () => {
      const health = new HealthWatch(env(), NAME).start();
      await apply(
        env(),
        clusterManifest(env(), NAME, { replicas: 3, rollingUpdate: { readyTimeoutSeconds: 40 } }),
      );
      const before = await ready(env(), NAME, 3, 180_000);
      const leaderPod = before.status?.members?.find((m) => m.id === before.status?.leaderId)?.pod;
      const ids = before.status?.members?.map((m) => `${m.pod}=${m.id}`).sort();
      expect(
        await kubectlOk([
          'get',
          'statefulset',
          NAME,
          '-n',
          env().namespace,
          '-o',
          'jsonpath={.spec.updateStrategy.type}',
        ]),
      ).toBe('OnDelete');

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
      const after = await ready(env(), NAME, 3);
      expect(after.status?.members?.map((m) => `${m.pod}=${m.id}`).sort()).toEqual(ids);
      const set = JSON.parse(
        await kubectlOk(['get', 'statefulset', NAME, '-n', env().namespace, '-o', 'json']),
      ) as {
        status: { updateRevision: string };
      };
      for (const p of await pods(NAME))
        expect(p.metadata?.labels?.['controller-revision-hash']).toBe(set.status.updateRevision);
      // Argo CD: Progressing while it bootstraps and rolls (the pod being replaced is briefly
      // unreachable: that is the roll, not a fault), Healthy at the end. Degraded only if the roll
      // stalled (a pod slower than readyTimeoutSeconds on a busy host), naming why, or for the
      // moment of the new cluster's first election (BRIEF_MS).
      await checkHealthStep(env(), health, { cluster: NAME, seen: ['Progressing'], end: 'Healthy' });
      const degraded = health
        .spans()
        .filter(
          (v) =>
            v.status === 'Degraded' && v.ms > BRIEF_MS && !v.messages.some((m) => m.startsWith('Stalled: ')),
        );
      expect(degraded, health.describe()).toEqual([]);
    }, 420_000);

    it('a broken image stalls the roll with one pod down; a good one resumes it', async () => {
      const health = new HealthWatch(env(), NAME).start();
      await patchImage('conflux:broken');
      const stalled = await until(
        'Stalled RollingUpdateFailed',
        async () => {
          const c = await getCluster(env(), NAME);
          return condition(c, 'Stalled')?.status === 'True' ? c : undefined;
        },
        240_000,
      );
      expect(condition(stalled, 'Stalled')?.reason).toBe('RollingUpdateFailed');
      const bad = `${NAME}-${stalled.status?.operation?.ordinal}`;
      expect(condition(stalled, 'Stalled')?.message).toContain(`${bad} did not come back`);
      // Argo CD shows the stalled roll as Degraded, naming why.
      expect((await settlesAs(env(), NAME, 'Degraded', 30_000)).message).toMatch(
        /^Stalled: .*did not come back/,
      );
      const ps = await pods(NAME);
      expect(ps.filter((p) => imageOf(p) === 'conflux:broken').map((p) => p.metadata?.name)).toEqual([bad]);
      // The others serve writes.
      const other = [0, 1, 2].find((o) => `${NAME}-${o}` !== bad) as number;
      const url = await env().clientUrl(NAME, other);
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
      const check = await fetch(`${await env().clientUrl(NAME, 0)}/v1/kv/during-stall`);
      expect(((await check.json()) as { value?: string }).value).toBe('ok');
      await checkHealthStep(env(), health, {
        cluster: NAME,
        seen: ['Degraded', 'Progressing'],
        end: 'Healthy',
      });
      await remove(NAME);
    }, 420_000);
  });

  describe('member replacement', () => {
    const NAME = 'rep';
    it('a pod whose volume was deleted comes back as a new member in place of the lost one', async () => {
      await apply(env(), clusterManifest(env(), NAME, { replicas: 3 }));
      const before = await ready(env(), NAME, 3, 180_000);
      await writeKeys(env(), NAME, 'cfg', 20);
      const lost = before.status?.members?.find((m) => m.pod === `${NAME}-1`)?.id as string;
      expect(lost).toBeDefined();
      const health = new HealthWatch(env(), NAME).start();
      await loseVolumes(NAME, [1]);

      const after = await until<ConfluxCluster>(
        'the lost member replaced',
        async () => {
          const c = await getCluster(env(), NAME);
          const ids = c?.status?.members?.map((m) => m.id) ?? [];
          const healed =
            condition(c, 'Ready')?.status === 'True' &&
            ids.length === 3 &&
            !ids.includes(lost) &&
            !c?.status?.operation;
          return healed ? c : undefined;
        },
        300_000,
      );
      const replacement = after.status?.members?.find((m) => m.pod === `${NAME}-1`)?.id;
      expect(replacement).toBeDefined();
      expect(replacement).not.toBe(lost);
      expect(after.status?.clusterId).toBe(before.status?.clusterId);
      await expectKeys(env(), NAME, 'cfg', 20, 1);
      // Events are written after the status that ends the operation: give them a moment.
      const reasons = await until(
        'the MemberReplaced event',
        async () => {
          const r = (await events(NAME)).map((e) => e.reason);
          return r.includes('MemberReplaced') ? r : undefined;
        },
        30_000,
      ).catch(async () => (await events(NAME)).map((e) => e.reason));
      expect(reasons).toEqual(expect.arrayContaining(['ReplacingMember', 'MemberReplaced']));
      // Argo CD never called the cluster Healthy while a member was being replaced.
      await checkHealthStep(env(), health, { cluster: NAME, end: 'Healthy' });
      expect(
        health.statuses().filter((x) => x !== 'Healthy'),
        health.describe(),
      ).not.toEqual([]);
      await remove(NAME);
    }, 600_000);
  });

  describe('quorum-loss recovery', () => {
    const NAME = 'qr';
    it('waits on a quorum loss and rebuilds from the survivor once spec.recovery names it', async () => {
      await apply(env(), clusterManifest(env(), NAME, { replicas: 3 }));
      const before = await ready(env(), NAME, 3, 180_000);
      await writeKeys(env(), NAME, 'cfg', 20);
      const oldId = before.status?.clusterId;
      const survivor = before.status?.members?.find((m) => m.pod === `${NAME}-0`)?.id;
      const oldMembers = before.status?.members?.map((m) => m.id).sort();
      const health = new HealthWatch(env(), NAME).start();
      await loseVolumes(NAME, [1, 2]);

      const warning = await until(
        'the QuorumLost warning',
        async () => (await events(NAME)).find((e) => e.reason === 'QuorumLost'),
        180_000,
      );
      expect(warning.type).toBe('Warning');
      expect(warning.message).toContain('spec.recovery.forceNewClusterFrom');
      const waiting = (await getCluster(env(), NAME)) as ConfluxCluster;
      expect(waiting.status?.clusterId).toBe(oldId);
      expect(waiting.status?.members?.map((m) => m.id).sort()).toEqual(oldMembers);
      expect((await events(NAME)).map((e) => e.reason)).not.toContain('QuorumRecovered');

      await kubectlOk([
        'patch',
        'confluxcluster',
        NAME,
        '-n',
        env().namespace,
        '--type',
        'merge',
        '-p',
        JSON.stringify({ spec: { recovery: { forceNewClusterFrom: `${NAME}-0` } } }),
      ]);
      const after = await until<ConfluxCluster>(
        'three members of the rebuilt cluster',
        async () => {
          const c = await ready(env(), NAME, 3, 5_000).catch(() => undefined);
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
      // The event is recorded after the status that shows the rebuilt cluster, possibly a pass later.
      await until(
        'the QuorumRecovered event',
        async () => (await events(NAME)).some((e) => e.reason === 'QuorumRecovered'),
        60_000,
      );
      for (const ordinal of [0, 1, 2]) await expectKeys(env(), NAME, 'cfg', 20, ordinal);
      // Argo CD showed the quorum loss as Degraded, and the rebuilt cluster Healthy.
      await checkHealthStep(env(), health, { cluster: NAME, seen: ['Degraded'], end: 'Healthy' });
    }, 720_000);
  });
});
