// The operator's KubernetesStore (operator/platform/kubernetes-store.ts) against the real API
// server: reads parsed with the zod schemas, status writes guarded by resourceVersion, Events with
// a series, and the watch, which restarts after a failure (here a real 403, until RBAC grants
// the operator's user what it needs). Only the control plane runs (no nodes): it starts in seconds.
//
// An object the operator cannot parse cannot be created through the generated CRD (crd-admission
// test), but one stored under an older, looser CRD stays as it was when the CRD is upgraded: that
// is how the store meets one here.

import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, confluxClusterSchema } from '../../operator/api/cluster.js';
import { backupCrd, clusterCrd } from '../../operator/api/crd.js';
import { KubernetesStore } from '../../operator/platform/kubernetes-store.js';
import { ConflictError } from '../../operator/platform/platform.js';
import { ensureBinaries } from './binaries.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';

const NS = 'db';

const clusterObject = (name: string, spec: Record<string, unknown> = { replicas: 3 }, namespace = NS) => ({
  apiVersion: API_VERSION,
  kind: 'ConfluxCluster',
  metadata: { name, namespace },
  spec,
});
const backupObject = (name: string, namespace = NS) => ({
  apiVersion: API_VERSION,
  kind: 'ConfluxBackup',
  metadata: { name, namespace },
  spec: { clusterName: 'demo' },
});

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function until(what: string, condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('KubernetesStore on the real API server', () => {
  let cp: ControlPlane;
  let admin: KubeConfig;
  const kubectl = (args: string[], input?: unknown) =>
    cp.kubectl(args, input === undefined ? undefined : { input: JSON.stringify(input) });
  const kubeConfigOf = (path: string) => {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return kc;
  };

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    admin = kubeConfigOf(cp.kubeconfigPath);
    // An older CRD that admitted anything: the object stored under it outlives the upgrade.
    const loose = clusterCrd() as {
      spec: { versions: { schema: unknown; additionalPrinterColumns?: unknown }[] };
    };
    for (const v of loose.spec.versions) {
      v.schema = { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } };
      delete v.additionalPrinterColumns;
    }
    await kubectl(['create', '-f', '-'], loose);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    await kubectl(['create', 'namespace', NS]);
    await kubectl(['create', 'namespace', 'other']);
    for (let i = 0; ; i++) {
      try {
        await kubectl(['create', '-f', '-'], clusterObject('bad', { replicas: 200 }));
        break;
      } catch (err) {
        if (i > 50) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await kubectl(['replace', '-f', '-'], clusterCrd());
    await kubectl(['apply', '-f', '-'], backupCrd());
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    for (let i = 0; ; i++) {
      try {
        await kubectl(['create', '-f', '-'], clusterObject('demo'));
        break;
      } catch (err) {
        if (i > 50) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }, 30 * 60_000);

  afterAll(async () => {
    await cp?.stop();
  }, 60_000);

  describe('reads parse with the zod schemas', () => {
    it('listClusters skips (and logs) what does not parse, and applies defaults', async () => {
      const { logger, lines } = capture();
      const store = new KubernetesStore({ kubeConfig: admin, logger });
      const clusters = await store.listClusters();
      expect(clusters.map((c) => c.metadata.name)).toEqual(['demo']);
      expect(clusters[0]!.spec.storage).toEqual({ size: '1Gi', reclaimPolicy: 'Delete' });
      expect(lines.find((l) => l.msg === 'skipping a resource that does not match its schema')).toMatchObject(
        {
          kind: 'ConfluxCluster',
          namespace: NS,
          name: 'bad',
          issues: [expect.stringMatching(/^spec\.replicas: /)],
        },
      );
    });

    it('a namespaced store lists one namespace, with no more than a Role there allows', async () => {
      await kubectl(['create', '-f', '-'], backupObject('nightly-1'));
      await kubectl(['create', '-f', '-'], backupObject('elsewhere', 'other'));
      // A user who may read ConfluxBackups in `db` only: a cluster-wide list would be a 403.
      const path = await cp.issueKubeconfig('db-reader', 'db-reader');
      await kubectl([
        'create',
        'role',
        'read-backups',
        '-n',
        NS,
        '--verb=get,list,watch',
        '--resource=confluxbackups.conflux.io',
      ]);
      await kubectl([
        'create',
        'rolebinding',
        'read-backups',
        '-n',
        NS,
        '--role=read-backups',
        '--user=db-reader',
      ]);
      const store = new KubernetesStore({
        kubeConfig: kubeConfigOf(path),
        logger: capture().logger,
        namespace: NS,
      });
      let backups = await store.listBackups(NS).catch((err: Error) => err);
      for (let i = 0; backups instanceof Error && i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100)); // RBAC caches catch up
        backups = await store.listBackups(NS).catch((err: Error) => err);
      }
      if (backups instanceof Error) throw backups;
      expect(backups.map((b) => `${b.metadata.namespace}/${b.metadata.name}`)).toEqual([`${NS}/nightly-1`]);
    });

    it('getCluster: the object, null when absent, null when it does not parse', async () => {
      const store = new KubernetesStore({ kubeConfig: admin, logger: capture().logger });
      expect((await store.getCluster(NS, 'demo'))?.spec.replicas).toBe(3);
      expect(await store.getCluster(NS, 'missing')).toBeNull();
      expect(await store.getCluster(NS, 'bad')).toBeNull();
    });
  });

  describe('status writes', () => {
    it('replace the status subresource with the resourceVersion read; a stale one is a ConflictError', async () => {
      const store = new KubernetesStore({ kubeConfig: admin, logger: capture().logger });
      const cluster = (await store.getCluster(NS, 'demo'))!;
      const written = await store.writeClusterStatus(cluster, {
        phase: 'Running',
        replicas: 3,
        operation: null,
      });
      expect(written.status).toMatchObject({ phase: 'Running', replicas: 3 });
      expect(written.metadata.resourceVersion).not.toBe(cluster.metadata.resourceVersion);
      // The spec is not touched by a status write.
      expect(written.metadata.generation).toBe(cluster.metadata.generation);

      const stale = store.writeClusterStatus(cluster, { phase: 'Degraded' });
      await expect(stale).rejects.toBeInstanceOf(ConflictError);
      await expect(stale).rejects.toThrow(/ConfluxCluster db\/demo changed since it was read/);
      expect((await store.getCluster(NS, 'demo'))?.status?.phase).toBe('Running');
    });

    it('backups too', async () => {
      const store = new KubernetesStore({ kubeConfig: admin, logger: capture().logger });
      const [backup] = (await store.listBackups(NS)).filter((b) => b.metadata.name === 'nightly-1');
      const done = await store.writeBackupStatus(backup!, { phase: 'Succeeded', uri: 's3://b/x' });
      expect(done.status?.phase).toBe('Succeeded');
      await expect(store.writeBackupStatus(backup!, { phase: 'Failed' })).rejects.toBeInstanceOf(
        ConflictError,
      );
    });

    it('other failures pass through unchanged', async () => {
      const store = new KubernetesStore({ kubeConfig: admin, logger: capture().logger });
      const ghost = confluxClusterSchema.parse({
        ...clusterObject('ghost'),
        metadata: { name: 'ghost', namespace: NS, resourceVersion: '1' },
      });
      const err = await store.writeClusterStatus(ghost, {}).catch((e: unknown) => e);
      expect(err).not.toBeInstanceOf(ConflictError);
      expect((err as { code?: number }).code).toBe(404);
    });
  });

  describe('events', () => {
    const now = new Date('2030-01-01T00:00:00.250Z');
    const events = async () =>
      (
        JSON.parse((await kubectl(['get', 'events.events.k8s.io', '-n', NS, '-o', 'json'])).stdout) as {
          items: {
            metadata: { name: string };
            reason: string;
            note: string;
            type: string;
            eventTime: string;
            reportingController: string;
            reportingInstance: string;
            action: string;
            regarding: Record<string, string>;
            series?: { count: number; lastObservedTime: string };
          }[];
        }
      ).items.filter((e) => e.regarding.name === 'demo');

    it('creates an events.k8s.io/v1 Event; a repeat counts on its series', async () => {
      const store = new KubernetesStore({
        kubeConfig: admin,
        logger: capture().logger,
        reportingInstance: 'operator-0',
        now: () => now,
      });
      const cluster = (await store.getCluster(NS, 'demo'))!;
      await store.event(cluster, 'Warning', 'ScaleBlocked', 'would leave 1 of 3 voters');
      const [created, ...more] = await events();
      expect(more).toEqual([]);
      expect(created!.metadata.name).toMatch(/^demo\.[0-9a-f]{16}$/);
      expect(created).toMatchObject({
        eventTime: '2030-01-01T00:00:00.250000Z',
        reportingController: 'conflux.io/operator',
        reportingInstance: 'operator-0',
        action: 'Reconcile',
        reason: 'ScaleBlocked',
        note: 'would leave 1 of 3 voters',
        type: 'Warning',
        regarding: {
          apiVersion: API_VERSION,
          kind: 'ConfluxCluster',
          name: 'demo',
          namespace: NS,
          uid: cluster.metadata.uid,
        },
      });
      expect(created!.series).toBeUndefined();

      await store.event(cluster, 'Warning', 'ScaleBlocked', 'would leave 1 of 3 voters');
      const [repeated, ...none] = await events();
      expect(none).toEqual([]);
      expect(repeated!.metadata.name).toBe(created!.metadata.name);
      expect(repeated!.series).toEqual({ count: 2, lastObservedTime: '2030-01-01T00:00:00.250000Z' });

      await store.event(cluster, 'Warning', 'ScaleBlocked', 'another message');
      expect((await events()).map((e) => e.note).sort()).toEqual([
        'another message',
        'would leave 1 of 3 voters',
      ]);
    });

    it('a failed Event is logged, never thrown', async () => {
      const { logger, lines } = capture();
      const store = new KubernetesStore({ kubeConfig: admin, logger });
      // Its namespace does not exist: the API server refuses the Event.
      const lost = confluxClusterSchema.parse({
        ...clusterObject('lost', { replicas: 3 }, 'no-such-namespace'),
        metadata: { name: 'lost', namespace: 'no-such-namespace', uid: 'uid-lost' },
      });
      await expect(store.event(lost, 'Normal', 'Scaled', 'to 5')).resolves.toBeUndefined();
      expect(lines.some((l) => l.msg === 'could not record an Event')).toBe(true);
    });
  });

  describe('watch', () => {
    it('restarts after a refusal until RBAC allows it, and signals only meaningful changes', async () => {
      // The operator's user, before its ClusterRole is bound: every list is a 403.
      const path = await cp.issueKubeconfig('watcher', 'conflux-watcher');
      const { logger, lines } = capture();
      const store = new KubernetesStore({ kubeConfig: kubeConfigOf(path), logger, watchRestartDelayMs: 50 });
      const seen: string[] = [];
      const stop = store.watch((k) => seen.push(`${k.namespace}/${k.name}`));
      try {
        await until('a refused watch', () => lines.some((l) => l.msg === 'watch failed; restarting'));
        expect(seen).toEqual([]);
        await kubectl([
          'create',
          'clusterrole',
          'conflux-watch',
          '--verb=get,list,watch',
          '--resource=confluxclusters.conflux.io,confluxbackups.conflux.io',
        ]);
        await kubectl([
          'create',
          'clusterrolebinding',
          'conflux-watch',
          '--clusterrole=conflux-watch',
          '--user=conflux-watcher',
        ]);
        // The lists after the grant: every cluster is signalled once (the one that does not parse
        // too: a pass reports it InvalidSpec), and each backup signals the cluster it names.
        await until('the first lists', () => seen.includes(`${NS}/demo`) && seen.includes(`${NS}/bad`));
        await new Promise((r) => setTimeout(r, 500));
        seen.length = 0;

        // A status write (what the reconciler itself does): no signal. A spec change: one.
        const writer = new KubernetesStore({ kubeConfig: admin, logger: capture().logger });
        const demo = (await writer.getCluster(NS, 'demo'))!;
        await writer.writeClusterStatus(demo, { phase: 'Degraded' });
        await kubectl([
          'patch',
          'confluxcluster',
          'demo',
          '-n',
          NS,
          '--type',
          'merge',
          '-p',
          '{"spec":{"replicas":5}}',
        ]);
        await until('the spec change', () => seen.length >= 1);
        await new Promise((r) => setTimeout(r, 500));
        expect(seen).toEqual([`${NS}/demo`]);

        // A new backup signals the cluster it names; a new cluster and a deletion signal themselves.
        await kubectl(['create', '-f', '-'], backupObject('nightly-2'));
        await until('the backup', () => seen.length >= 2);
        expect(seen[1]).toBe(`${NS}/demo`);
        await kubectl(['create', '-f', '-'], clusterObject('other'));
        await until('the new cluster', () => seen.includes(`${NS}/other`));
        const count = seen.length;
        await kubectl(['delete', 'confluxcluster', 'other', '-n', NS]);
        await until('the deletion', () => seen.length > count);
        expect(seen.at(-1)).toBe(`${NS}/other`);
      } finally {
        stop();
      }
      // Stopped: nothing more is signalled.
      const after = seen.length;
      await kubectl([
        'patch',
        'confluxcluster',
        'demo',
        '-n',
        NS,
        '--type',
        'merge',
        '-p',
        '{"spec":{"replicas":3}}',
      ]);
      await new Promise((r) => setTimeout(r, 500));
      expect(seen.length).toBe(after);
    });
  });
});
