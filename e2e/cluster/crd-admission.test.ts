// The ConfluxCluster and ConfluxBackup CRDs as the real API server applies them: it accepts the
// generated CRDs, refuses with the operator's own message what the operator could not run (bad
// names, reserved or duplicate env names, a cron of the wrong shape, the cross-field rules), and
// whatever it admits from random specs the operator's schema parses too — one truth for validation.

import { KubeConfig } from '@kubernetes/client-node';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, confluxClusterSchema, RESERVED_ENV } from '../../operator/api/cluster.js';
import { backupCrd, CEL_RULES, clusterCrd } from '../../operator/api/crd.js';
import { authCases } from '../../operator/api/test-auth-cases.js';
import { KubernetesStore } from '../../operator/platform/kubernetes-store.js';
import type { Platform } from '../../operator/platform/platform.js';
import { Reconciler } from '../../operator/reconcile/reconciler.js';
import { ensureBinaries } from './binaries.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';

const NS = 'crd-admission';

const cluster = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: API_VERSION,
  kind: 'ConfluxCluster',
  metadata: { name, namespace: NS },
  spec,
});

describe('the CRDs on the real API server', () => {
  let cp: ControlPlane;
  /** Server-side dry-run create: the API server's full admission, nothing stored. */
  const admit = async (obj: object): Promise<{ ok: boolean; message: string }> => {
    try {
      await cp.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(obj) });
      return { ok: true, message: '' };
    } catch (err) {
      return { ok: false, message: String((err as { stderr?: string }).stderr ?? err) };
    }
  };

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    for (const crd of [clusterCrd(), backupCrd()]) {
      await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(crd) });
    }
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    await cp.kubectl(['create', 'namespace', NS]);
  }, 90 * 60_000);

  afterAll(async () => {
    await cp?.stop();
  }, 60_000);

  const message = (match: (r: (typeof CEL_RULES)[number]) => boolean) => CEL_RULES.find(match)!.message;

  it.each([
    ['a dotted name', cluster('my.cluster', {}), message((r) => r.path === '')],
    [
      'an operator variable in env',
      cluster('env-reserved', { env: [{ name: RESERVED_ENV[0], value: 'x' }] }),
      message((r) => r.path === 'spec.env'),
    ],
    [
      'a cron of four fields',
      cluster('cron', { backup: { schedule: '0 */6 * *', destination: { uri: 's3://b/c' } } }),
      message((r) => r.path === 'spec.backup'),
    ],
    [
      'a file destination with an endpoint',
      cluster('file-s3', {
        backup: { schedule: '@daily', destination: { uri: 'file:///b', endpoint: 'http://x' } },
      }),
      message((r) => r.path === 'spec.backup.destination'),
    ],
  ])('refuses %s with the operator message', async (_name, obj, expected) => {
    const r = await admit(obj);
    expect(r.ok).toBe(false);
    expect(r.message).toContain(expected);
  });

  it.each(authCases())('spec.auth: %s', async (_name, obj, _old, expected) => {
    const r = await admit(obj);
    expect(r.ok).toBe(expected.length === 0);
    for (const m of expected) expect(r.message).toContain(m);
  });

  it('refuses a spec.auth user named twice (a list keyed by name)', async () => {
    const r = await admit(cluster('auth-dup', { auth: { users: [{ name: 'a' }, { name: 'a' }] } }));
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/Duplicate value/);
  });

  it('refuses duplicate env names (a list keyed by name)', async () => {
    const r = await admit(
      cluster('env-dup', {
        env: [
          { name: 'A', value: '1' },
          { name: 'A', value: '2' },
        ],
      }),
    );
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/Duplicate value/);
  });

  it('admits a full valid spec', async () => {
    const r = await admit(
      cluster('full', {
        replicas: 5,
        env: [{ name: 'LOG_FORMAT', value: 'json' }],
        backup: {
          schedule: '0 */6 * * *',
          destination: { uri: 's3://b/c', region: 'eu' },
          retention: { keepLast: 3 },
        },
      }),
    );
    expect(r).toEqual({ ok: true, message: '' });
  });

  it('whatever it admits of random specs, the operator parses', async () => {
    const envName = fc.oneof(
      fc.constantFrom(...RESERVED_ENV, 'A', 'LOG_LEVEL', 'a_b'),
      fc.string({ maxLength: 6 }),
    );
    const spec = fc.record(
      {
        // Mostly in range, so that a fair share of the runs is admitted and reaches the parse.
        replicas: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: -1, max: 101 })),
        env: fc.array(fc.record({ name: envName, value: fc.string({ maxLength: 4 }) }), { maxLength: 3 }),
        backup: fc.record({
          schedule: fc.constantFrom(
            '0 * * * *',
            '@hourly',
            '0 0 * * 8',
            '61 * * * *',
            '* * * *',
            'x y z a b',
          ),
          destination: fc.constantFrom({ uri: 's3://b/c' }, { uri: 'file:///b' }, { uri: 'http://x' }),
        }),
        raft: fc.record({
          tickMs: fc.integer({ min: 0, max: 2000 }),
          electionTicks: fc.integer({ min: 0, max: 200 }),
        }),
      },
      { requiredKeys: [] },
    );
    const name = fc.constantFrom('ok', 'good-name', 'a.b', 'UP', 'x'.repeat(64));
    let admitted = 0;
    await fc.assert(
      fc.asyncProperty(name, spec, async (n, s) => {
        const obj = cluster(n, s);
        const r = await admit(obj);
        if (!r.ok) return;
        admitted++;
        const parsed = confluxClusterSchema.safeParse(obj);
        // What the API server admits but the operator cannot run is reported InvalidSpec by the
        // operator; here we record which it is, so that this list stays short and deliberate.
        if (!parsed.success) {
          const fields = parsed.error.issues.map((i) => i.path.join('.'));
          expect(
            fields.every((f) => f === 'spec.backup.schedule'),
            JSON.stringify(parsed.error.issues),
          ).toBe(true);
        }
      }),
      // The first example is a spec the API server must admit, so the property never passes
      // without having parsed at least one admitted object.
      {
        numRuns: 60,
        examples: [
          ['ok', { replicas: 3, backup: { schedule: '@hourly', destination: { uri: 's3://b/c' } } }],
        ],
      },
    );
    expect(admitted).toBeGreaterThan(0);
  }, 120_000);

  it('a spec the CRD admits but the operator cannot run is reported InvalidSpec, and runs once fixed', async () => {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cp.kubeconfigPath);
    const logger = pino({ level: 'silent' });
    let platformCalls = 0;
    // The members of an invalid cluster are left alone: any platform call is counted.
    const platform = new Proxy({} as Platform, {
      get: (_t, prop) =>
        prop === 'then'
          ? undefined
          : () => Promise.reject(new Error(`platform.${String(prop)}: ${++platformCalls}`)),
    });
    const reconciler = new Reconciler({
      store: new KubernetesStore({ kubeConfig, logger }),
      platform,
      logger,
      resyncMs: 1_000,
    });
    // In range for the CRD's shape check, out of range for cron: day of week 8.
    const bad = cluster('bad-cron', { backup: { schedule: '0 0 * * 8', destination: { uri: 's3://b/c' } } });
    await cp.kubectl(['create', '-f', '-'], { input: JSON.stringify(bad) });
    await reconciler.start();
    try {
      const get = async () =>
        JSON.parse((await cp.kubectl(['get', '-n', NS, 'confluxcluster', 'bad-cron', '-o', 'json'])).stdout);
      const deadline = Date.now() + 30_000;
      let ready: { reason?: string; message?: string; status?: string } | undefined;
      while (Date.now() < deadline && ready?.reason !== 'InvalidSpec') {
        await new Promise((r) => setTimeout(r, 200));
        ready = ((await get()).status?.conditions ?? []).find((c: { type: string }) => c.type === 'Ready');
      }
      expect(ready).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
      expect(ready?.message).toContain('spec.backup.schedule');
      const events = JSON.parse(
        (await cp.kubectl(['get', 'events.events.k8s.io', '-n', NS, '-o', 'json'])).stdout,
      ) as { items: { reason: string; note: string; regarding: { name: string } }[] };
      expect(events.items).toContainEqual(
        expect.objectContaining({
          reason: 'InvalidSpec',
          regarding: expect.objectContaining({ name: 'bad-cron' }),
        }),
      );
      expect(platformCalls).toBe(0);

      // Fixed: the operator takes it up again (here: it asks the platform).
      await cp.kubectl([
        'patch',
        '-n',
        NS,
        'confluxcluster',
        'bad-cron',
        '--type=merge',
        '-p',
        '{"spec":{"backup":{"schedule":"0 0 * * 1"}}}',
      ]);
      const fixedBy = Date.now() + 30_000;
      while (Date.now() < fixedBy && platformCalls === 0) await new Promise((r) => setTimeout(r, 200));
      expect(platformCalls).toBeGreaterThan(0);
    } finally {
      await reconciler.stop();
    }
  }, 120_000);
});
