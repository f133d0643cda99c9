// The operator's every-pass duties on the real API server (kube-apiserver + etcd + controllers,
// no kubelet): with the clock moved forward, a settled cluster's certificates are renewed and its
// CA rotated without any spec change, and a deleted Service or disruption budget is applied again
// by the next pass. Each pass is the reconciler's own observe -> plan -> act, on KubernetesPlatform
// with an injected clock; the members never answer here (no kubelet), which the rules for what a
// cluster owns run ahead of.

import { X509Certificate } from 'node:crypto';
import { KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, type ConfluxCluster, confluxClusterSchema } from '../../operator/api/cluster.js';
import { clusterCrd } from '../../operator/api/crd.js';
import { KubernetesPlatform } from '../../operator/platform/kubernetes.js';
import { act } from '../../operator/reconcile/act.js';
import { observe } from '../../operator/reconcile/observe.js';
import { plan } from '../../operator/reconcile/plan.js';
import type { Action } from '../../operator/reconcile/types.js';
import { binariesPresent, ensureBinaries, hasGo } from './binaries.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';

const NS = 'operator-production';
const DAY = 24 * 60 * 60 * 1000;
const canRun = binariesPresent() || hasGo();

describe.skipIf(!canRun)('a settled cluster on the real API server, pass by pass', () => {
  let cp: ControlPlane;
  let platform: KubernetesPlatform;
  let cluster: ConfluxCluster;
  let now = new Date();

  const secret = async (name: string): Promise<V1Secret> =>
    JSON.parse((await cp.kubectl(['-n', NS, 'get', 'secret', name, '-o', 'json'])).stdout) as V1Secret;
  const certOf = async (name: string, key = 'tls.crt') =>
    new X509Certificate(Buffer.from((await secret(name)).data?.[key] ?? '', 'base64'));
  const exists = async (kind: string, name: string) =>
    cp.kubectl(['-n', NS, 'get', kind, name]).then(
      () => true,
      () => false,
    );

  /** One reconciler pass as the Reconciler takes it (observe, plan, act), at the test's clock. */
  const pass = async (): Promise<Action> => {
    const obs = await observe(platform, cluster, now);
    const p = plan(obs);
    await act(platform, obs, p.action);
    return p.action;
  };

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(clusterCrd()) });
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    await cp.kubectl(['create', 'namespace', NS]);
    const created = await cp.kubectl(['create', '-o', 'json', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: API_VERSION,
        kind: 'ConfluxCluster',
        metadata: { name: 'demo', namespace: NS },
        spec: { replicas: 3 },
      }),
    });
    // Bootstrapped long ago: what the status of a settled cluster records.
    cluster = confluxClusterSchema.parse({
      ...JSON.parse(created.stdout),
      status: { clusterId: 'c-settled' },
    });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cp.kubeconfigPath);
    platform = new KubernetesPlatform({ kubeConfig, logger: pino({ level: 'silent' }), now: () => now });
    await platform.ensureMembers(cluster, 3, 2);
  }, 90 * 60_000);

  afterAll(async () => {
    await cp?.stop();
  }, 60_000);

  it('takes no step for what it owns while nothing is due', async () => {
    const action = await pass();
    expect(['renew-certificates', 'rotate-ca', 'repair-owned']).not.toContain(action.type);
  });

  it('renews the leaves 29 days before they expire, and is settled again after', async () => {
    const before = await certOf('demo-tls');
    const adminBefore = await certOf('demo-admin-tls');
    now = new Date(Date.parse(before.validTo) - 31 * DAY);
    expect((await pass()).type).not.toBe('renew-certificates');
    now = new Date(Date.parse(before.validTo) - 29 * DAY);
    expect(await pass()).toMatchObject({ type: 'renew-certificates' });
    const after = await certOf('demo-tls');
    expect(after.serialNumber).not.toBe(before.serialNumber);
    expect(Date.parse(after.validTo)).toBeGreaterThan(Date.parse(before.validTo));
    expect((await certOf('demo-admin-tls')).serialNumber).not.toBe(adminBefore.serialNumber);
    expect(after.checkIssued(await certOf('demo-ca', 'ca.crt'))).toBe(true);
    expect((await pass()).type).not.toBe('renew-certificates');
  });

  it('rotates the CA 29 days before it expires: trust both, re-issue from the new one, drop the old', async () => {
    const oldCa = await certOf('demo-ca', 'ca.crt');
    now = new Date(Date.parse(oldCa.validTo) - 29 * DAY);
    const steps: string[] = [];
    for (let i = 0; i < 12 && !steps.includes('rotate-ca:finish'); i++) {
      const a = await pass();
      steps.push(a.type === 'rotate-ca' ? `rotate-ca:${a.step}` : a.type);
      // No member answers here: each phase moves on once its wait for them ran out.
      if (a.type === 'wait') now = new Date(now.getTime() + 6 * 60_000);
      if (a.type === 'rotate-ca' && a.step === 'start') {
        const ca = await secret('demo-ca');
        expect(ca.metadata?.annotations?.['conflux.io/ca-rotation-phase']).toBe('trust-new');
        const bundle = Buffer.from((await secret('demo-tls')).data?.['ca.crt'] ?? '', 'base64').toString();
        expect(bundle.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
      }
    }
    // Leaves within 30 days of the old CA's end were renewed first, as any pass does.
    expect(steps.filter((s) => s.startsWith('rotate-ca'))).toEqual([
      'rotate-ca:start',
      'rotate-ca:promote',
      'rotate-ca:finish',
    ]);
    const newCa = await certOf('demo-ca', 'ca.crt');
    expect(newCa.fingerprint256).not.toBe(oldCa.fingerprint256);
    expect((await certOf('demo-tls')).checkIssued(newCa)).toBe(true);
    expect((await certOf('demo-admin-tls')).checkIssued(newCa)).toBe(true);
    const bundle = Buffer.from((await secret('demo-tls')).data?.['ca.crt'] ?? '', 'base64').toString();
    expect(bundle.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect((await secret('demo-ca')).metadata?.annotations?.['conflux.io/ca-rotation-phase']).toBeUndefined();
    const settled = await pass();
    expect(['renew-certificates', 'rotate-ca']).not.toContain(settled.type);
  });

  it('applies a deleted Service and a deleted disruption budget again with the next pass', async () => {
    await cp.kubectl(['-n', NS, 'delete', 'service', 'demo-headless', '--wait=true']);
    await cp.kubectl(['-n', NS, 'delete', 'pdb', 'demo', '--wait=true']);
    expect(await exists('service', 'demo-headless')).toBe(false);
    expect(await pass()).toMatchObject({
      type: 'repair-owned',
      repairs: ['Service demo-headless: missing', 'PodDisruptionBudget demo: missing'],
    });
    expect(await exists('service', 'demo-headless')).toBe(true);
    expect(await exists('pdb', 'demo')).toBe(true);
    expect((await pass()).type).not.toBe('repair-owned');
  });

  it('applies a Service whose selector was edited by hand again', async () => {
    await cp.kubectl([
      '-n',
      NS,
      'patch',
      'service',
      'demo',
      '--type=merge',
      '-p',
      '{"spec":{"selector":{"app.kubernetes.io/instance":"x"}}}',
    ]);
    expect(await pass()).toMatchObject({ type: 'repair-owned', repairs: ['Service demo: selector changed'] });
    const svc = JSON.parse((await cp.kubectl(['-n', NS, 'get', 'service', 'demo', '-o', 'json'])).stdout);
    expect(svc.spec.selector).toEqual({
      'app.kubernetes.io/name': 'conflux',
      'app.kubernetes.io/instance': 'demo',
    });
  });
});
