// The Kubernetes-level scenarios on a real cluster: the operator installed from config/default
// runs in the cluster as its own ServiceAccount under the generated RBAC, members talk TLS by
// their DNS names, Conflux's namespace enforces the restricted Pod Security Standard. Then, on the
// same cluster: a node drain against the PodDisruptionBudget, and the operator from the Helm chart.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { apply, until } from '../scenarios/env.js';
import { clusterManifest, expectKeys, lifecycleSuite, ready } from '../scenarios/lifecycle.js';
import { helm, REPO_ROOT } from '../support/helm.js';
import { checkHealthStep, type HealthExpectation, HealthWatch } from './argocd-health.js';
import {
  CONFLUX_IMAGE,
  canRunRealCluster,
  NAMESPACE,
  OPERATOR_NAMESPACE,
  type RealCluster,
  startRealCluster,
} from './real-env.js';
import { skipUnless } from './require.js';

const skip = skipUnless(
  canRunRealCluster(),
  'real-cluster.test.ts',
  'needs root and the Kubernetes binaries (or Go to build them)',
);

interface PodList {
  items: {
    metadata: { name: string; deletionTimestamp?: string };
    spec: { nodeName?: string };
    status?: { podIP?: string; conditions?: { type: string; status: string }[] };
  }[];
}

/**
 * What Argo CD (deploy/argocd/confluxcluster-health.lua, run on the live object about once a
 * second) must show at each step: work in progress is Progressing, never Degraded unless members
 * were really lost (or, `briefly`, for the moment of a new cluster's first election), and every
 * step ends Healthy.
 */
const calm = (cluster: string): HealthExpectation => ({
  cluster,
  never: ['Progressing', 'Degraded'],
  end: 'Healthy',
});
const HEALTH: Record<string, HealthExpectation> = {
  'creates a cluster that becomes Ready with a leader': {
    cluster: 'demo',
    seen: ['Progressing'],
    never: ['Degraded'],
    briefly: true,
    end: 'Healthy',
  },
  'kubectl scale 3 -> 4 adds a voting follower': {
    cluster: 'demo',
    seen: ['Progressing'],
    never: ['Degraded'],
    end: 'Healthy',
  },
  'kubectl scale 4 -> 3 removes the member and stays healthy': {
    cluster: 'demo',
    seen: ['Progressing'],
    never: ['Degraded'],
    end: 'Healthy',
  },
  're-applying the same manifest writes nothing': calm('demo'),
  'backs up, loses everything and restores into a new cluster': {
    cluster: 'copy',
    seen: ['Progressing'],
    never: ['Degraded'],
    briefly: true,
    end: 'Healthy',
  },
  // A killed member may show Degraded until it is back.
  'survives a killed pod and a killed operator mid-operation': {
    cluster: 'copy',
    seen: ['Progressing'],
    end: 'Healthy',
  },
  'admits only pods that meet the restricted Pod Security Standard': calm('copy'),
  'members prove the DNS names they are reached by, not their pod IPs': calm('copy'),
  'kubectl drain of a node holding a member honours the PodDisruptionBudget': {
    cluster: 'copy',
    end: 'Healthy',
  },
  'the Helm chart installs an operator that runs a cluster, and uninstalls cleanly': {
    cluster: 'charted',
    seen: ['Progressing'],
    never: ['Degraded'],
    briefly: true,
    end: 'Healthy',
  },
};

describe.skipIf(skip)('operator on a real cluster', () => {
  let cluster: RealCluster | undefined;
  let watch: HealthWatch | undefined;
  beforeEach((ctx) => {
    const expected = HEALTH[ctx.task.name];
    if (!expected) throw new Error(`no Argo CD health expectation for "${ctx.task.name}"`);
    if (cluster) watch = new HealthWatch(cluster, expected.cluster).start();
  });
  afterEach(async (ctx) => {
    const w = watch;
    watch = undefined;
    if (ctx.task.result?.state === 'fail') {
      await w?.stop();
      if (cluster) console.log(`${cluster.operatorLogs()}\nArgo CD health seen:\n${w?.describe()}`);
      return;
    }
    if (!w) throw new Error('the cluster did not start');
    await checkHealthStep(env(), w, HEALTH[ctx.task.name]!);
  }, 90_000);
  const env = () => {
    if (!cluster) throw new Error('the cluster did not start');
    return cluster;
  };
  const kubectl = async (args: string[], stdin?: string) => {
    const r = await env().kubectl(args, stdin);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const members = async (name: string) =>
    JSON.parse(
      await kubectl([
        'get',
        'pods',
        '-n',
        NAMESPACE,
        '-l',
        `app.kubernetes.io/instance=${name}`,
        '-o',
        'json',
      ]),
    ) as PodList;

  lifecycleSuite(
    'Conflux on a real Kubernetes cluster',
    async () => {
      cluster = await startRealCluster();
      return cluster;
    },
    // The operator resyncs a converged cluster every 10 s: the drift check outlasts one resync.
    { scale: 1, resyncMs: 12_000, startMs: 300_000, more: () => more() },
  );

  function more() {
    it('admits only pods that meet the restricted Pod Security Standard', async () => {
      const r = await env().kubectl([
        'run',
        'not-restricted',
        '-n',
        NAMESPACE,
        `--image=${CONFLUX_IMAGE}`,
        '--restart=Never',
        '--dry-run=server',
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/violates PodSecurity "restricted:latest"/);
    });

    it('members prove the DNS names they are reached by, not their pod IPs', async () => {
      const url = await env().clientUrl('copy', 0);
      expect(new URL(url).hostname).toBe(`copy-0.copy-headless.${NAMESPACE}.svc`);
      expect((await fetch(`${url}/v1/kv/config/0`)).status).toBe(200);
      const ip = (await members('copy')).items.find((p) => p.metadata.name === 'copy-0')?.status?.podIP;
      const err = await fetch(`https://${ip}:8080/v1/kv/config/0`).then(
        () => null,
        (e: Error & { cause?: { code?: string } }) => e,
      );
      expect(err?.cause?.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    });

    it('kubectl drain of a node holding a member honours the PodDisruptionBudget', async () => {
      const before = await members('copy');
      const node = before.items.find((p) => p.metadata.name === 'copy-0')!.spec.nodeName!;
      const onNode = before.items.filter((p) => p.spec.nodeName === node).map((p) => p.metadata.name);
      const t0 = Date.now();
      const drain = env().kubectl([
        'drain',
        node,
        '--ignore-daemonsets',
        '--delete-emptydir-data',
        '--timeout=180s',
      ]);
      await until(
        `a member on ${node} to be evicted`,
        async () => {
          const now = await members('copy');
          return onNode.some((name) => {
            const p = now.items.find((x) => x.metadata.name === name);
            return !p || p.metadata.deletionTimestamp || p.spec.nodeName !== node;
          });
        },
        60_000,
      );
      // One member is out: with 4 voters the budget (minAvailable 3) allows no other eviction.
      const other = before.items.find((p) => p.spec.nodeName !== node)!.metadata.name;
      const eviction = await env().kubectl(
        ['create', '--raw', `/api/v1/namespaces/${NAMESPACE}/pods/${other}/eviction`, '-f', '-'],
        JSON.stringify({
          apiVersion: 'policy/v1',
          kind: 'Eviction',
          metadata: { name: other, namespace: NAMESPACE },
        }),
      );
      expect(eviction.code).not.toBe(0);
      expect(eviction.stderr).toMatch(/disruption budget/);
      const drained = await drain;
      expect(drained.code, drained.stderr).toBe(0);
      // The drain returns once the last evicted pod is gone; the cluster's status lags behind.
      await until('every member Ready on the other nodes', async () => {
        const now = await members('copy');
        return (
          now.items.length === 4 &&
          now.items.every(
            (p) =>
              p.spec.nodeName !== node &&
              !p.metadata.deletionTimestamp &&
              p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'),
          )
        );
      });
      const c = await ready(env(), 'copy', 4);
      console.log(`${node} drained (${onNode.join(', ')}) and copy Ready again in ${Date.now() - t0} ms`);
      expect(c.status?.members?.every((m) => m.reachable)).toBe(true);
      await expectKeys(env(), 'copy', 'config', 20, 0);
      await kubectl(['uncordon', node]);
    }, 300_000);

    it('the Helm chart installs an operator that runs a cluster, and uninstalls cleanly', async () => {
      const kubeconfig = env().cp.kubeconfigPath;
      // One operator at a time: the one from config/default steps aside, the other cluster goes.
      const operators = (
        await kubectl(['get', 'pods', '-n', OPERATOR_NAMESPACE, '-o', 'jsonpath={.items[*].metadata.name}'])
      ).split(' ');
      await kubectl(['scale', 'deployment/conflux-operator', '-n', OPERATOR_NAMESPACE, '--replicas=0']);
      await kubectl(['delete', 'confluxcluster', 'copy', '-n', NAMESPACE, '--wait=true']);
      await until('the config/default operator pods to be gone', async () => {
        const out = await kubectl(['get', 'pods', '-n', OPERATOR_NAMESPACE, '-o', 'name']);
        return out.trim() === '';
      });
      // A stopped replica, the leader too, hands its Lease back and exits 0: no failed container.
      const kubeletLog = readFileSync(env().kubelet.logPath, 'utf8');
      for (const pod of operators) {
        expect(kubeletLog).toContain(`${OPERATOR_NAMESPACE}/${pod}/operator: exited with 0`);
      }
      const ns = 'conflux-helm';
      await kubectl(['create', 'namespace', ns]);
      await kubectl(['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted']);
      const t0 = Date.now();
      const [repository, tag] = CONFLUX_IMAGE.split(/:(?=[^:]+$)/);
      const install = await helm([
        'install',
        'cfx',
        join(REPO_ROOT, 'helm/conflux-operator'),
        '--kubeconfig',
        kubeconfig,
        '--namespace',
        ns,
        '--set',
        `image.repository=${repository}`,
        '--set',
        `image.tag=${tag}`,
        '--wait',
        '--timeout',
        '180s',
      ]);
      expect(install.code, install.stderr).toBe(0);
      console.log(`helm install done in ${Date.now() - t0} ms`);
      await apply(env(), clusterManifest(env(), 'charted', { replicas: 3 }));
      await ready(env(), 'charted', 3);
      console.log(`charted Ready ${Date.now() - t0} ms after helm install started`);
      const url = await env().clientUrl('charted', 1);
      expect((await fetch(`${url}/v1/kv/hello`, { method: 'PUT', body: 'helm' })).status).toBe(200);

      const uninstall = await helm([
        'uninstall',
        'cfx',
        '--kubeconfig',
        kubeconfig,
        '--namespace',
        ns,
        '--wait',
      ]);
      expect(uninstall.code, uninstall.stderr).toBe(0);
      for (const [kind, name] of [
        ['clusterrole', 'cfx-conflux-operator'],
        ['clusterrolebinding', 'cfx-conflux-operator'],
      ] as const) {
        expect((await env().kubectl(['get', kind, name])).stderr).toMatch(/NotFound/);
      }
      await until('the chart operator pods to be gone', async () => {
        const out = await kubectl(['get', 'pods', '-n', ns, '-o', 'name']);
        return out.trim() === '';
      });
      // The CRDs (from the chart's crds/) and the user's cluster stay: Helm never deletes CRDs.
      expect(await kubectl(['get', 'confluxcluster', 'charted', '-n', NAMESPACE, '-o', 'name'])).toMatch(
        /charted/,
      );
    }, 300_000);
  }
});
