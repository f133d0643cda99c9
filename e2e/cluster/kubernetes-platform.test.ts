// The operator's KubernetesPlatform (operator/platform/kubernetes.ts) against the real API
// server and controllers: server-side apply of the cluster's objects (validated by the API
// server), the TLS Secrets and their renewal, immutable StatefulSet fields, and the deletions a
// member replacement or a rolling update makes, carried out by the real StatefulSet controller.
// Only the control plane runs (no nodes: member pods stay Pending), so it starts in seconds.
// Each test has its own namespace.

import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { KubeConfig, type V1Pod, type V1Secret, type V1StatefulSet } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall } from '../../node/api/admin-client.js';
import { isAdminCertificate, isAuthorizedAdmin } from '../../node/certs/index.js';
import { type ConfluxCluster, confluxClusterSchema } from '../../operator/api/cluster.js';
import { FIELD_MANAGER, KubernetesPlatform } from '../../operator/platform/kubernetes.js';
import {
  DEV_INSECURE_ANNOTATION,
  POD_TEMPLATE_HASH_ANNOTATION,
} from '../../operator/platform/kubernetes-objects.js';
import { issuedBy } from '../../operator/platform/tls-secrets.js';
import { ensureBinaries } from './binaries.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';

const silent = pino({ level: 'silent' });
const DAY_MS = 24 * 60 * 60 * 1000;

describe('KubernetesPlatform on the real API server', () => {
  let cp: ControlPlane;
  let kubeConfig: KubeConfig;
  let nsCount = 0;

  const kubectl = async (args: string[], input?: unknown) =>
    (await cp.kubectl(args, input === undefined ? undefined : { input: JSON.stringify(input) })).stdout;
  const get = async <T>(kind: string, ns: string, name: string): Promise<T | null> => {
    const r = await cp.api('GET', `${pathOf(kind, ns)}/${name}`);
    if (r.status === 404) return null;
    if (r.status !== 200) throw new Error(`GET ${kind} ${ns}/${name}: ${r.status} ${r.body}`);
    return JSON.parse(r.body) as T;
  };
  const secretText = async (ns: string, name: string, key: string) => {
    const s = await get<V1Secret>('secrets', ns, name);
    const raw = s?.data?.[key];
    return raw ? Buffer.from(raw, 'base64').toString() : undefined;
  };
  const versions = async (ns: string) => {
    const list = JSON.parse((await cp.api('GET', pathOf('secrets', ns))).body) as { items: V1Secret[] };
    return Object.fromEntries(list.items.map((s) => [s.metadata?.name, s.metadata?.resourceVersion]));
  };
  const until = async <T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 60_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  /** A fresh namespace, a platform at `now`, and clusters in that namespace. */
  const setup = async (now: () => Date = () => new Date()) => {
    const ns = `platform-${++nsCount}`;
    await kubectl(['create', 'namespace', ns]);
    const platform = new KubernetesPlatform({ kubeConfig, logger: silent, now });
    const cluster = (
      spec: Record<string, unknown> = {},
      metadata: Record<string, unknown> = {},
    ): ConfluxCluster =>
      confluxClusterSchema.parse({
        apiVersion: 'conflux.io/v1alpha1',
        kind: 'ConfluxCluster',
        metadata: { name: 'demo', namespace: ns, uid: `uid-${ns}`, ...metadata },
        spec,
      });
    return { ns, platform, cluster };
  };

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cp.kubeconfigPath);
  }, 30 * 60_000);

  afterAll(async () => {
    await cp?.stop();
  }, 60_000);

  it('ensureMembers: the TLS Secrets and every object, applied server-side, with the set at `size`', async () => {
    const { ns, platform, cluster } = await setup();
    const c = cluster({ replicas: 5 });
    expect(await platform.setSize(c)).toBe(0);
    await platform.ensureMembers(c, 1);

    const ca = (await secretText(ns, 'demo-ca', 'ca.crt'))!;
    expect(await secretText(ns, 'demo-tls', 'ca.crt')).toBe(ca);
    expect(issuedBy((await secretText(ns, 'demo-tls', 'tls.crt'))!, ca)).toBe(true);
    expect(isAdminCertificate((await secretText(ns, 'demo-admin-tls', 'tls.crt'))!)).toBe(true);
    for (const [kind, name] of [
      ['services', 'demo-headless'],
      ['services', 'demo'],
      ['poddisruptionbudgets', 'demo'],
      ['statefulsets', 'demo'],
    ] as const) {
      const obj = await get<{ metadata: { managedFields?: { manager: string; operation: string }[] } }>(
        kind,
        ns,
        name,
      );
      expect(obj, `${kind}/${name}`).not.toBeNull();
      expect(obj?.metadata.managedFields).toContainEqual(
        expect.objectContaining({ manager: FIELD_MANAGER, operation: 'Apply' }),
      );
    }
    expect((await get<V1StatefulSet>('statefulsets', ns, 'demo'))?.spec?.replicas).toBe(1);
    expect(await platform.setSize(c)).toBe(1);
  });

  it('a second ensure writes no Secret; growing changes only replicas', async () => {
    const { ns, platform, cluster } = await setup();
    const c = cluster();
    await platform.ensureMembers(c, 1);
    const template = (await get<V1StatefulSet>('statefulsets', ns, 'demo'))?.spec?.template;
    const before = await versions(ns);
    await platform.ensureMembers(c, 3);
    expect(await versions(ns)).toEqual(before);
    const sts = await get<V1StatefulSet>('statefulsets', ns, 'demo');
    expect(sts?.spec?.replicas).toBe(3);
    expect(sts?.spec?.template).toEqual(template);
  });

  it('renews certificates close to expiry: Secrets replaced, the pod template left alone', async () => {
    let now = new Date();
    const { ns, platform, cluster } = await setup(() => now);
    const c = cluster();
    await platform.ensureMembers(c, 3);
    const template = (await get<V1StatefulSet>('statefulsets', ns, 'demo'))?.spec?.template;
    const oldCert = await secretText(ns, 'demo-tls', 'tls.crt');
    const before = await versions(ns);
    now = new Date(now.getTime() + 340 * DAY_MS);
    await platform.ensureMembers(c, 3);
    const after = await versions(ns);
    expect(after['demo-ca']).toBe(before['demo-ca']);
    expect(after['demo-tls']).not.toBe(before['demo-tls']);
    expect(after['demo-admin-tls']).not.toBe(before['demo-admin-tls']);
    expect(await secretText(ns, 'demo-tls', 'tls.crt')).not.toBe(oldCert);
    // Members re-read their mounted TLS files: the renewal leaves the pod template (and pods) alone.
    expect((await get<V1StatefulSet>('statefulsets', ns, 'demo'))?.spec?.template).toEqual(template);
  });

  it('the admin client certificate and the node certificate complete a mutual TLS handshake', async () => {
    const { ns, platform, cluster } = await setup();
    const c = cluster();
    await platform.ensureMembers(c, 1);
    const client = await platform.adminClient(c);
    expect(client.timeoutMs).toBe(10_000);
    expect(isAdminCertificate(String(client.tls?.cert))).toBe(true);
    const node = createHttpsServer(
      {
        cert: await secretText(ns, 'demo-tls', 'tls.crt'),
        key: await secretText(ns, 'demo-tls', 'tls.key'),
        ca: await secretText(ns, 'demo-tls', 'ca.crt'),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ admin: isAuthorizedAdmin(req.socket as TLSSocket) }));
      },
    );
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    try {
      const port = (node.address() as AddressInfo).port;
      // `localhost` is one of the certificate's names (as `<pod>.<name>-headless.<ns>.svc` is).
      const answer = await adminCall(`localhost:${port}`, 'GET', '/', undefined, client);
      expect(answer).toMatchObject({ status: 200, body: { admin: true } });
    } finally {
      node.closeAllConnections();
      await new Promise((r) => node.close(r));
    }
  });

  it('adminClient of a new cluster issues the operator-managed TLS Secrets before any member exists', async () => {
    const { ns, platform, cluster } = await setup();
    const c = cluster();
    const client = await platform.adminClient(c);
    expect(isAdminCertificate(String(client.tls?.cert))).toBe(true);
    const issued = await versions(ns);
    expect(Object.keys(issued).sort()).toEqual(['demo-admin-tls', 'demo-ca', 'demo-tls']);
    expect(client.tls?.ca).toBe(await secretText(ns, 'demo-tls', 'ca.crt'));
    // Members then get the same material: nothing is issued twice.
    await platform.ensureMembers(c, 3);
    expect(await versions(ns)).toEqual(issued);
  });

  it('keeps the volume claim templates of an existing set when spec.storage changed', async () => {
    const { ns, platform, cluster } = await setup();
    await platform.ensureMembers(cluster(), 3);
    // The API server refuses any change to them: the platform must not send one.
    await platform.ensureMembers(cluster({ storage: { size: '100Gi' } }), 3);
    const sts = await get<V1StatefulSet>('statefulsets', ns, 'demo');
    expect(sts?.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage).toBe('1Gi');
  });

  it('user-provided TLS: refers to the Secrets, writes none, fails clearly when they are missing', async () => {
    const { ns, platform, cluster } = await setup();
    const c = cluster({
      tls: { operatorManaged: false, nodeSecretName: 'mine', adminSecretName: 'mine-admin' },
    });
    await expect(platform.ensureMembers(c, 1)).rejects.toThrow(
      new RegExp(`node TLS Secret ${ns}/mine is missing`),
    );
    await expect(platform.adminClient(c)).rejects.toThrow(
      new RegExp(`admin client Secret ${ns}/mine-admin not found`),
    );

    // Borrow operator-made material for the user's Secrets.
    await platform.ensureMembers(cluster({}, { name: 'src', uid: 'uid-src' }), 1);
    const copy = async (from: string, to: string, withCa: boolean) => {
      const s = (await get<V1Secret>('secrets', ns, from))!;
      const { 'ca.crt': _ca, ...rest } = s.data ?? {};
      await kubectl(['create', '-f', '-'], {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: to, namespace: ns },
        data: withCa ? s.data : rest,
      });
    };
    await copy('src-tls', 'mine', true);
    await copy('src-admin-tls', 'mine-admin', false); // no ca.crt: taken from the node Secret
    const before = await versions(ns);
    await platform.ensureMembers(c, 1);
    expect(await versions(ns)).toEqual(before);
    const client = await platform.adminClient(c);
    expect(client.tls?.ca).toBe(await secretText(ns, 'src-tls', 'ca.crt'));
  });

  it('refuses to replace a CA Secret that exists but is unusable', async () => {
    const { ns, platform, cluster } = await setup();
    await kubectl(['create', 'secret', 'generic', 'demo-ca', '-n', ns, '--from-literal=ca.crt=not a cert']);
    await expect(platform.ensureMembers(cluster(), 1)).rejects.toThrow(
      new RegExp(`Secret ${ns}/demo-ca holds no usable CA \\(missing\\); fix it .* or delete it`),
    );
    expect(Object.keys(await versions(ns))).toEqual(['demo-ca']);
    expect(await secretText(ns, 'demo-ca', 'ca.crt')).toBe('not a cert');
  });

  it('dev-insecure: no Secrets, a plain admin client', async () => {
    const { ns, platform, cluster } = await setup();
    const c = cluster({}, { annotations: { [DEV_INSECURE_ANNOTATION]: 'true' } });
    await platform.ensureMembers(c, 1);
    expect(await versions(ns)).toEqual({});
    expect(await platform.adminClient(c)).toEqual({ timeoutMs: 10_000 });
  });

  it('deleteVolume: only beyond the set; a volume already gone is fine', async () => {
    const { ns, platform, cluster } = await setup();
    const c = cluster();
    await platform.ensureMembers(c, 3);
    await kubectl(['create', '-f', '-'], pvc(ns, 'data-demo-3'));
    await expect(platform.deleteVolume(c, 2)).rejects.toThrow(
      /refusing to delete data-demo-2: slot 2 is still in the set/,
    );
    await platform.deleteVolume(c, 3);
    await until('data-demo-3 to go', async () => {
      const p = await get<{ metadata: { deletionTimestamp?: string } }>(
        'persistentvolumeclaims',
        ns,
        'data-demo-3',
      );
      return !p || !!p.metadata.deletionTimestamp;
    });
    await expect(platform.deleteVolume(c, 3)).resolves.toBeUndefined();
    await expect(platform.deleteVolume(c, -1)).rejects.toThrow(/not an ordinal/);
  });

  it('recreateMember: the claim and the pod of a slot go, the StatefulSet makes new ones; refuses one beyond it', async () => {
    const { ns, platform, cluster } = await setup();
    const c = cluster();
    await platform.ensureMembers(c, 3);
    const pod = await until('the StatefulSet controller to create demo-1', () =>
      get<V1Pod>('pods', ns, 'demo-1'),
    );
    const claim = await until('the claim of demo-1', () =>
      get<{ metadata: { uid: string } }>('persistentvolumeclaims', ns, 'data-demo-1'),
    );
    await platform.recreateMember(c, 1);
    await until('a new pod and a new claim for slot 1', async () => {
      const p = await get<V1Pod>('pods', ns, 'demo-1');
      const v = await get<{ metadata: { uid: string; deletionTimestamp?: string } }>(
        'persistentvolumeclaims',
        ns,
        'data-demo-1',
      );
      const claimGone = !v || v.metadata.uid !== claim.metadata.uid || !!v.metadata.deletionTimestamp;
      return p && p.metadata?.uid !== pod.metadata?.uid && claimGone;
    });
    await expect(platform.recreateMember(c, 3)).rejects.toThrow(/not in the set/);
  });

  it('restartMember: applies a changed template first, then deletes the pod; refuses a slot beyond the set', async () => {
    const { ns, platform, cluster } = await setup();
    const c = cluster();
    await platform.ensureMembers(c, 3);
    const applied = await platform.templateRevision(c);
    const annotation = async () =>
      (await get<V1StatefulSet>('statefulsets', ns, 'demo'))?.spec?.template?.metadata?.annotations?.[
        POD_TEMPLATE_HASH_ANNOTATION
      ];
    expect(await annotation()).toBe(applied);
    const changed = cluster({ env: [{ name: 'CONFLUX_LOG_LEVEL', value: 'warn' }] });
    const next = await platform.templateRevision(changed);
    expect(next).not.toBe(applied);
    const old = await until('demo-1', () => get<V1Pod>('pods', ns, 'demo-1'));
    expect(old.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION]).toBe(applied);
    await platform.restartMember(changed, 1);
    expect(await annotation()).toBe(next);
    // The StatefulSet controller re-creates the pod from the new template.
    const fresh = await until('demo-1 from the new template', async () => {
      const p = await get<V1Pod>('pods', ns, 'demo-1');
      return p && p.metadata?.uid !== old.metadata?.uid ? p : null;
    });
    expect(fresh.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION]).toBe(next);
    await expect(platform.restartMember(changed, 3)).rejects.toThrow(/not in the set/);
  });

  it('pods: listed by the cluster labels, mapped to slots', async () => {
    const { ns, platform, cluster } = await setup();
    const c = cluster();
    await platform.ensureMembers(c, 2);
    await platform.ensureMembers(cluster({}, { name: 'other', uid: 'uid-other' }), 1);
    await until(
      'the pods',
      async () => (await get<V1Pod>('pods', ns, 'demo-1')) && get<V1Pod>('pods', ns, 'other-0'),
    );
    const slots = await platform.pods(c);
    // No node runs them: they exist, Pending.
    expect(slots.map((s) => [s.name, s.running, s.ready])).toEqual([
      ['demo-0', false, false],
      ['demo-1', false, false],
    ]);
    expect(slots[0]?.revision).toBe(await platform.templateRevision(c));
  });

  it("volumes: the ordinals of the cluster's claims, labelled and not being deleted", async () => {
    const { ns, platform, cluster } = await setup();
    const labels = { 'app.kubernetes.io/name': 'conflux', 'app.kubernetes.io/instance': 'demo' };
    await kubectl(['create', '-f', '-'], pvc(ns, 'data-demo-0', labels));
    await kubectl(['create', '-f', '-'], pvc(ns, 'data-demo-4', labels));
    // Held by a finalizer, so it stays while being deleted.
    await kubectl(['create', '-f', '-'], pvc(ns, 'data-demo-5', labels, ['conflux.io/test-hold']));
    await kubectl(['delete', 'pvc', 'data-demo-5', '-n', ns, '--wait=false']);
    await kubectl(['create', '-f', '-'], pvc(ns, 'data-demo-6'));
    await kubectl(['create', '-f', '-'], pvc(ns, 'scratch', labels));
    expect(await platform.volumes(cluster())).toEqual([0, 4]);
    await kubectl([
      'patch',
      'pvc',
      'data-demo-5',
      '-n',
      ns,
      '--type',
      'merge',
      '-p',
      '{"metadata":{"finalizers":null}}',
    ]);
  });

  it('backupCredentials: from the referenced Secret, with its key names', async () => {
    const { ns, platform, cluster } = await setup();
    const backup = {
      schedule: '0 3 * * *',
      destination: {
        uri: 's3://b/p',
        credentialsSecret: { name: 's3', accessKeyIdKey: 'id', secretAccessKeyKey: 'key' },
      },
    };
    expect(await platform.backupCredentials(cluster())).toBeUndefined();
    await expect(platform.backupCredentials(cluster({ backup }))).rejects.toThrow(
      new RegExp(`Secret ${ns}/s3 not found`),
    );
    await kubectl([
      'create',
      'secret',
      'generic',
      's3',
      '-n',
      ns,
      '--from-literal=id=AKIA1',
      '--from-literal=key=s3cr3t',
    ]);
    expect(await platform.backupCredentials(cluster({ backup }))).toEqual({
      accessKeyId: 'AKIA1',
      secretAccessKey: 's3cr3t',
    });
    await kubectl([
      'patch',
      'secret',
      's3',
      '-n',
      ns,
      '--type',
      'json',
      '-p',
      '[{"op":"remove","path":"/data/key"}]',
    ]);
    await expect(platform.backupCredentials(cluster({ backup }))).rejects.toThrow(
      `Secret ${ns}/s3 lacks key`,
    );
  });
});

function pathOf(kind: string, ns: string): string {
  const group: Record<string, string> = {
    statefulsets: '/apis/apps/v1',
    poddisruptionbudgets: '/apis/policy/v1',
  };
  return `${group[kind] ?? '/api/v1'}/namespaces/${ns}/${kind}`;
}

function pvc(ns: string, name: string, labels: Record<string, string> = {}, finalizers: string[] = []) {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: ns, labels, ...(finalizers.length ? { finalizers } : {}) },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  };
}
