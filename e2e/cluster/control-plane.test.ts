// The real Kubernetes control plane (e2e/cluster) that the operator's tests will run against:
// it starts, authenticates and authorizes like a production one, its controllers act, and
// stop() leaves no process and no file behind. build.sh reuses cached binaries (about a second);
// on a machine without them it builds them first, which takes a long time once.

import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binariesPresent, ensureBinaries, hasGo } from './binaries.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';
import { alive, httpsRequest, sleep } from './proc.js';
import { skipUnless } from './require.js';

const skip = skipUnless(
  binariesPresent() || hasGo(),
  'control-plane.test.ts',
  'no Go toolchain to build the Kubernetes binaries (e2e/cluster/build.sh) and none cached',
);

const NS = 'cluster-test';

async function waitUntil<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

interface PodList {
  items: {
    metadata: { name: string; ownerReferences?: { kind: string; name: string; controller?: boolean }[] };
    status?: { phase?: string; conditions?: { type: string; status: string; reason?: string }[] };
  }[];
}

describe.skipIf(skip)('real Kubernetes control plane', () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    await ensureBinaries((line) => console.log(line));
    cp = await startControlPlane({ log: (line) => console.log(line) });
  }, 90 * 60_000);

  afterAll(async () => {
    await cp?.stop();
  }, 60_000);

  it('is ready, with the pinned version', async () => {
    const { stdout } = await cp.kubectl(['get', '--raw', '/readyz']);
    expect(stdout.trim()).toBe('ok');
    const version = JSON.parse((await cp.api('GET', '/version')).body) as { gitVersion: string };
    expect(version.gitVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(cp.startMs).toBeLessThan(60_000);
  });

  it('authenticates identities and denies what RBAC does not grant', async () => {
    await cp.kubectl(['create', 'namespace', NS]);
    await cp.kubectl(['-n', NS, 'create', 'serviceaccount', 'nobody']);

    // kubectl auth can-i exits 1 when the answer is no.
    const canI = (args: string[]) =>
      cp.kubectl(['auth', 'can-i', ...args]).then(
        (r) => r.stdout.trim(),
        (e: { stdout?: string }) => (e.stdout ?? '').trim(),
      );
    expect(await canI(['create', 'statefulsets', '-n', NS, `--as=system:serviceaccount:${NS}:nobody`])).toBe(
      'no',
    );
    expect(await canI(['create', 'statefulsets', '-n', NS])).toBe('yes');

    // A token from the TokenRequest API, signed with the ServiceAccount key: authenticated, denied.
    const token = (await cp.kubectl(['-n', NS, 'create', 'token', 'nobody'])).stdout.trim();
    const asNobody = await httpsRequest(
      `${cp.apiserverUrl}/api/v1/namespaces/${NS}/pods`,
      { ca: cp.caPem },
      { token },
    );
    expect(asNobody.status).toBe(403);
    expect(asNobody.body).toContain(`system:serviceaccount:${NS}:nobody`);

    // A client certificate from the cluster CA for a user with no bindings: authenticated, denied.
    const alice = await cp.issueKubeconfig('alice', 'alice', ['conflux-testers']);
    const denied = await cp.kubectl([`--kubeconfig=${alice}`, '-n', NS, 'get', 'pods']).then(
      () => '',
      (e: { stderr?: string }) => e.stderr ?? '',
    );
    expect(denied).toContain('User "alice" cannot list resource "pods"');

    // Anonymous requests get no further than the health endpoints.
    const anonymous = await httpsRequest(`${cp.apiserverUrl}/api/v1/namespaces`, { ca: cp.caPem });
    expect([401, 403]).toContain(anonymous.status);
  });

  it('runs the StatefulSet controller, the scheduler and the garbage collector', async () => {
    const manifest = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'conflux', namespace: NS },
      spec: {
        serviceName: 'conflux',
        replicas: 3,
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: { app: 'conflux' } },
        template: {
          metadata: { labels: { app: 'conflux' } },
          spec: { containers: [{ name: 'node', image: 'conflux:test' }] },
        },
      },
    };
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(manifest) });

    const pods = async (): Promise<PodList['items']> =>
      (JSON.parse((await cp.kubectl(['-n', NS, 'get', 'pods', '-o', 'json'])).stdout) as PodList).items;
    const created = await waitUntil('three pods', async () => {
      const items = await pods();
      return items.length === 3 ? items : undefined;
    });
    expect(created.map((p) => p.metadata.name).sort()).toEqual(['conflux-0', 'conflux-1', 'conflux-2']);
    for (const pod of created) {
      expect(pod.metadata.ownerReferences).toEqual([
        expect.objectContaining({ kind: 'StatefulSet', name: 'conflux', controller: true }),
      ]);
    }

    // No nodes yet: the scheduler looks at each pod and finds nowhere to put it.
    await waitUntil('the scheduler to mark the pods unschedulable', async () => {
      const items = await pods();
      const unschedulable = items.filter((p) =>
        p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.reason === 'Unschedulable'),
      );
      return unschedulable.length === 3 ? true : undefined;
    });

    // Orphans go: deleting the StatefulSet in the background leaves the pods to the collector.
    await cp.kubectl(['-n', NS, 'delete', 'statefulset', 'conflux', '--cascade=background']);
    await waitUntil('the garbage collector to delete the pods', async () =>
      (await pods()).length === 0 ? true : undefined,
    );
  });

  it('stop() leaves no process and no file behind', async () => {
    const pids = Object.values(cp.pids);
    expect(pids.length).toBe(4);
    await cp.stop();
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(existsSync(cp.dir)).toBe(false);
  });
});
