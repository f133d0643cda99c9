// The seed's scenarios at the Kubernetes level, shared by the real-cluster suite and the kind
// suite: create a cluster, scale it up and down with kubectl, back it up with a ConfluxBackup,
// lose it and restore it; GitOps re-applies change nothing; pods and the operator may die.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, type ConfluxCluster } from '../../operator/api/cluster.js';
import { apply, getBackup, getCluster, type KubeEnv, until } from './env.js';

const condition = (c: ConfluxCluster | null, type: string) =>
  c?.status?.conditions?.find((x) => x.type === type)?.status;

export function clusterManifest(env: KubeEnv, name: string, spec: Record<string, unknown>): object {
  return {
    apiVersion: API_VERSION,
    kind: 'ConfluxCluster',
    metadata: env.clusterMetadata(name),
    spec: { ...env.specDefaults, ...spec },
  };
}

/** Wait until `name` is Ready with `members` voters, a leader and no operation in flight. */
export function ready(env: KubeEnv, name: string, members: number, ms?: number): Promise<ConfluxCluster> {
  return until(
    `${name} Ready with ${members} members`,
    async () => {
      const c = await getCluster(env, name);
      const ok =
        condition(c, 'Ready') === 'True' &&
        c?.status?.members?.length === members &&
        c.status.readyReplicas === members &&
        c.status.members.every((m) => m.reachable) &&
        c.status.leaderId &&
        !c.status.operation;
      return ok ? c : undefined;
    },
    ms,
  );
}

export async function writeKeys(env: KubeEnv, cluster: string, prefix: string, n: number): Promise<void> {
  const url = await env.clientUrl(cluster, 0);
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${url}/v1/kv/${prefix}/${i}`, { method: 'PUT', body: `${prefix}-${i}` });
    expect(res.status).toBe(200);
  }
}

export async function expectKeys(
  env: KubeEnv,
  cluster: string,
  prefix: string,
  n: number,
  ordinal = 0,
): Promise<void> {
  const url = await env.clientUrl(cluster, ordinal);
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${url}/v1/kv/${prefix}/${i}`);
    expect(((await res.json()) as { value?: string }).value).toBe(`${prefix}-${i}`);
  }
}

/** Create → Ready with a leader; the printer columns show it. */
export async function createCluster(env: KubeEnv, name: string): Promise<ConfluxCluster> {
  await apply(env, createManifest(env, name));
  const c = await ready(env, name, 3);
  expect(c.status).toMatchObject({ phase: 'Running', readyReplicas: 3, faultTolerance: 1 });
  const table = await env.kubectl(['get', 'confluxclusters', '-n', env.namespace]);
  expect(table.stdout).toMatch(/NAME\s+REPLICAS\s+READY\s+LEADER\s+PHASE\s+LAST BACKUP\s+AGE/);
  expect(table.stdout).toMatch(new RegExp(`${name}\\s+3\\s+3\\s+${c.status?.leaderId}\\s+Running`));
  return c;
}

/** The manifest the scenarios create `name` from (and GitOps keeps re-applying). */
function createManifest(env: KubeEnv, name: string): object {
  return clusterManifest(env, name, { replicas: 3, backup: backupSpec(env, name) });
}

function backupSpec(env: KubeEnv, name: string) {
  return { schedule: '0 0 1 1 *', suspend: true, destination: env.backupDestination(name) };
}

/** kubectl scale 3 -> 4: the new member is a voting follower. */
export async function scaleUp(env: KubeEnv, name: string): Promise<void> {
  const r = await env.kubectl(['scale', `confluxcluster/${name}`, '--replicas=4', '-n', env.namespace]);
  expect(r.code, r.stderr).toBe(0);
  const c = await ready(env, name, 4);
  const fourth = c.status?.members?.find((m) => m.pod === `${name}-3`);
  expect(fourth).toMatchObject({ role: 'Follower', reachable: true });
  expect(c.status?.faultTolerance).toBe(1);
}

/** kubectl scale 4 -> 3: the member is gone and the cluster healthy. */
export async function scaleDown(env: KubeEnv, name: string): Promise<void> {
  const r = await env.kubectl(['scale', `confluxcluster/${name}`, '--replicas=3', '-n', env.namespace]);
  expect(r.code, r.stderr).toBe(0);
  const c = await ready(env, name, 3);
  expect(c.status?.members?.map((m) => m.pod)).not.toContain(`${name}-3`);
  await until(
    'pod 3 to be gone',
    async () => (await env.kubectl(['get', 'pod', `${name}-3`, '-n', env.namespace])).code !== 0,
  );
}

/** Re-applying the same manifest (what GitOps does every few minutes) writes nothing. */
export async function reapplyChangesNothing(env: KubeEnv, name: string, settleMs: number): Promise<void> {
  const versions = async () => {
    const out: Record<string, string> = {};
    for (const kind of ['confluxcluster', 'statefulset', 'service', 'poddisruptionbudget']) {
      const r = await env.kubectl([
        'get',
        kind,
        '-n',
        env.namespace,
        '-l',
        `app.kubernetes.io/instance=${name}`,
        '-o',
        'json',
      ]);
      const list = JSON.parse(r.stdout || '{"items":[]}') as {
        items: { metadata: { name: string; resourceVersion: string } }[];
      };
      for (const i of list.items) out[`${kind}/${i.metadata.name}`] = i.metadata.resourceVersion;
    }
    const c = await getCluster(env, name);
    out[`confluxcluster/${name}`] = c?.metadata.resourceVersion ?? '';
    return out;
  };
  const before = await versions();
  await apply(env, createManifest(env, name));
  await new Promise((r) => setTimeout(r, settleMs));
  expect(await versions()).toEqual(before);
}

/** Back up with a ConfluxBackup, lose the cluster and its volumes, restore it into a new one. */
export async function backupAndRestore(env: KubeEnv, name: string, restored: string): Promise<void> {
  await writeKeys(env, name, 'config', 20);
  await apply(env, {
    apiVersion: API_VERSION,
    kind: 'ConfluxBackup',
    metadata: { name: `${name}-b1` },
    spec: { clusterName: name },
  });
  const backup = await until('the ConfluxBackup to succeed', async () => {
    const b = await getBackup(env, `${name}-b1`);
    if (b?.status?.phase === 'Failed') throw new Error(`backup failed: ${b.status.message}`);
    return b?.status?.phase === 'Succeeded' ? b : undefined;
  });
  const original = await getCluster(env, name);
  const del = await env.kubectl(['delete', 'confluxcluster', name, '-n', env.namespace, '--wait=true']);
  expect(del.code, del.stderr).toBe(0);
  await until('the pods to be gone', async () => {
    const r = await env.kubectl([
      'get',
      'pods',
      '-n',
      env.namespace,
      '-l',
      `app.kubernetes.io/instance=${name}`,
      '-o',
      'name',
    ]);
    return r.code === 0 && r.stdout.trim() === '';
  });
  const pvcs = await env.kubectl([
    'delete',
    'pvc',
    '-n',
    env.namespace,
    '-l',
    `app.kubernetes.io/instance=${name}`,
  ]);
  expect(pvcs.code, pvcs.stderr).toBe(0);
  await apply(
    env,
    clusterManifest(env, restored, {
      replicas: 3,
      restore: { snapshotUri: backup.status?.uri, expectedClusterId: original?.status?.clusterId },
      backup: backupSpec(env, restored),
    }),
  );
  const c = await ready(env, restored, 3, 180_000);
  expect(c.status?.restoredFrom).toMatchObject({
    clusterId: original?.status?.clusterId,
    uri: backup.status?.uri,
  });
  await expectKeys(env, restored, 'config', 20, 2);
}

/** A member pod killed, and the operator killed in the middle of a scale-up: both survived. */
export async function survivesKills(env: KubeEnv, name: string): Promise<void> {
  await env.killPod(`${name}-1`);
  await ready(env, name, 3);
  const r = await env.kubectl(['scale', `confluxcluster/${name}`, '--replicas=4', '-n', env.namespace]);
  expect(r.code, r.stderr).toBe(0);
  await until('the scale-up to start', async () => (await getCluster(env, name))?.status?.operation);
  await env.restartOperator();
  await ready(env, name, 4);
  await expectKeys(env, name, 'config', 20, 3);
}

/**
 * The whole suite, in order, on the environment `start` makes. `scale` multiplies the timeouts
 * (a real cluster pulls images and provisions volumes); `resyncMs` is how long the drift check
 * waits for the operator to look again; `startMs` bounds `start` (default 2 min).
 */
export function lifecycleSuite(
  title: string,
  start: () => Promise<KubeEnv>,
  o: {
    scale: number;
    resyncMs: number;
    startMs?: number;
    /** More tests on the same environment, after the scenarios (registered inside the describe). */
    more?: (env: () => KubeEnv) => void;
  },
) {
  describe(title, () => {
    let env: KubeEnv;
    beforeAll(async () => {
      env = await start();
    }, o.startMs ?? 120_000);
    afterAll(async () => env?.stop(), 60_000);
    const t = (ms: number) => ms * o.scale;

    it('creates a cluster that becomes Ready with a leader', () => createCluster(env, 'demo'), t(180_000));
    it('kubectl scale 3 -> 4 adds a voting follower', () => scaleUp(env, 'demo'), t(180_000));
    it('kubectl scale 4 -> 3 removes the member and stays healthy', () => scaleDown(env, 'demo'), t(180_000));
    it(
      're-applying the same manifest writes nothing',
      () => reapplyChangesNothing(env, 'demo', o.resyncMs),
      t(60_000),
    );
    it(
      'backs up, loses everything and restores into a new cluster',
      () => backupAndRestore(env, 'demo', 'copy'),
      t(300_000),
    );
    it(
      'survives a killed pod and a killed operator mid-operation',
      () => survivesKills(env, 'copy'),
      t(300_000),
    );
    o.more?.(() => env);
  });
}
