// spec.auth end to end: the operator's own observe -> plan -> act passes keep a ConfluxCluster's
// client users, roles and client certificates on three real conflux-node processes with TLS, and
// write the certificates into Secrets on the real API server (KubernetesPlatform). The members
// run as local processes (the platform's member methods are a small stand-in for the
// StatefulSet); everything auth touches is the production path: the CA, admin and client Secrets
// on the API server, the admin API, the client port's certificate check.
// Then the certificate from the issued Secret is used: a read under /app/ works, a write is 403,
// a read elsewhere is 403; removing the user from the spec deletes its Secret, and its
// certificate is refused afterwards. A user made by hand is left alone throughout.

import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall } from '../../node/api/admin-client.js';
import { type CertKeyPair, generateClientCert } from '../../node/certs/index.js';
import { type ConfluxCluster, confluxClusterSchema } from '../../operator/api/cluster.js';
import { KubernetesPlatform } from '../../operator/platform/kubernetes.js';
import { buildClientSecret } from '../../operator/platform/kubernetes-client-certs.js';
import type { MemberPod, Platform } from '../../operator/platform/platform.js';
import { issuedBy } from '../../operator/platform/tls-secrets.js';
import { act } from '../../operator/reconcile/act.js';
import { observe } from '../../operator/reconcile/observe.js';
import { plan } from '../../operator/reconcile/plan.js';
import type { Action } from '../../operator/reconcile/types.js';
import { eventually } from '../support/process-cluster.js';
import { startTlsMembers, type TlsMember } from '../support/tls-member.js';
import { ensureBinaries } from './binaries.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';

const silent = pino({ level: 'silent' });
const NS = 'auth-spec';
const DAY_MS = 24 * 60 * 60 * 1000;

const AUTH = {
  roles: [{ name: 'app-reader', permissions: [{ prefix: '/app/', access: 'read' }] }],
  users: [
    { name: 'ops', roles: ['root'], clientCertificate: true },
    { name: 'alice', roles: ['app-reader'], clientCertificate: true },
  ],
};

describe('spec.auth: users, roles and client certificates from the ConfluxCluster', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-auth-spec-'));
  const members: TlsMember[] = [];
  let cp: ControlPlane;
  let k8s: KubernetesPlatform;
  let platform: Platform;
  let cluster: ConfluxCluster;
  let caPem: string;
  let ca: CertKeyPair;

  const secret = async (name: string): Promise<V1Secret | null> => {
    const r = await cp.api('GET', `/api/v1/namespaces/${NS}/secrets/${name}`);
    if (r.status === 404) return null;
    if (r.status !== 200) throw new Error(`GET secret ${name}: ${r.status} ${r.body}`);
    return JSON.parse(r.body) as V1Secret;
  };
  const pairOf = (s: V1Secret | null): CertKeyPair => {
    const text = (k: string) => Buffer.from(s?.data?.[k] ?? '', 'base64').toString('utf8');
    return { certPem: text('tls.crt'), keyPem: text('tls.key') };
  };
  const https = (port: number, path: string, method = 'GET', body?: string, who?: CertKeyPair) =>
    new Promise<{ status: number; code?: string; value?: string }>((ok, fail) => {
      const creds = who ? { cert: who.certPem, key: who.keyPem } : {};
      const req = request(
        `https://127.0.0.1:${port}${path}`,
        { method, ca: caPem, timeout: 15_000, ...creds },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => {
            const doc = text.startsWith('{') ? JSON.parse(text) : {};
            ok({ status: res.statusCode ?? 0, code: doc.error?.code, value: doc.value });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', fail);
      req.end(body);
    });

  /** The operator's passes until it has nothing left to do; the actions it took. */
  async function converge(): Promise<Action[]> {
    const taken: Action[] = [];
    for (let pass = 0; pass < 20; pass++) {
      const obs = await observe(platform, cluster);
      const p = plan(obs);
      cluster = { ...cluster, status: p.status };
      if (p.action.type === 'none') return taken;
      if (p.action.type === 'wait') {
        await new Promise((r) => setTimeout(r, 300));
        continue;
      }
      taken.push(p.action);
      await act(platform, obs, p.action);
    }
    throw new Error(`no convergence; last status ${JSON.stringify(cluster.status?.conditions)}`);
  }

  const withAuth = (auth: unknown): ConfluxCluster =>
    confluxClusterSchema.parse({ ...cluster, spec: { ...cluster.spec, auth } });

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    await cp.kubectl(['create', 'namespace', NS]);
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cp.kubeconfigPath);
    k8s = new KubernetesPlatform({ kubeConfig, logger: silent });
    cluster = confluxClusterSchema.parse({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'demo', namespace: NS, uid: 'uid-auth-spec', generation: 1 },
      spec: { replicas: 3 },
    });
    // The operator's CA, node and admin Secrets; the members' certificates come from that CA.
    await k8s.renewCertificates(cluster);
    const caSecret = await secret('demo-ca');
    ca = {
      certPem: Buffer.from(caSecret?.data?.['ca.crt'] ?? '', 'base64').toString('utf8'),
      keyPem: Buffer.from(caSecret?.data?.['ca.key'] ?? '', 'base64').toString('utf8'),
    };
    caPem = ca.certPem;
    writeFileSync(join(dir, 'ca.crt'), caPem);
    members.push(...(await startTlsMembers(ca, dir, ['m0', 'm1', 'm2'])));
    const pods = (): MemberPod[] =>
      members.map((m, ordinal) => ({
        ordinal,
        name: `demo-${ordinal}`,
        running: true,
        ready: true,
        addresses: { api: `127.0.0.1:${m.api}`, raft: `127.0.0.1:${m.raft}`, admin: `127.0.0.1:${m.admin}` },
        revision: 'r1',
      }));
    const refuse = async () => {
      throw new Error('not a step this suite expects');
    };
    // The members are these processes; the Secrets and the admin client are the Kubernetes platform's.
    platform = {
      kind: 'kubernetes',
      setSize: async () => members.length,
      pods: async () => pods(),
      volumes: async () => [0, 1, 2],
      templateRevision: async () => 'r1',
      adminClient: (c) => k8s.adminClient(c),
      observeOwned: (c) => k8s.observeOwned(c),
      repairOwned: (c, min) => k8s.repairOwned(c, min),
      renewCertificates: (c) => k8s.renewCertificates(c),
      observeClientCertificates: (c) => k8s.observeClientCertificates(c),
      syncClientCertificates: (c, issue, remove) => k8s.syncClientCertificates(c, issue, remove),
      ensureMembers: refuse,
      deleteVolume: refuse,
      backupCredentials: async () => undefined,
      restartMember: refuse,
      recreateMember: refuse,
    };
    const client = await k8s.adminClient(cluster);
    await eventually('a leader', async () => {
      const answers = await Promise.all(
        members.map((m) =>
          adminCall(`127.0.0.1:${m.admin}`, 'GET', '/_cluster/leader', undefined, client).catch(() => null),
        ),
      );
      return (
        answers.some((a) => a?.status === 200 && (a.body as { leader_id?: string }).leader_id) || undefined
      );
    });
    // A user made by hand, before the spec says anything: the operator must leave it alone.
    const leaderAdmin = await eventually('the leader admin address', async () => {
      for (const m of members) {
        const a = await adminCall(`127.0.0.1:${m.admin}`, 'GET', '/_cluster/auth', undefined, client).catch(
          () => null,
        );
        if (a?.status === 200) return `127.0.0.1:${m.admin}`;
      }
      return undefined;
    });
    const made = await adminCall(
      leaderAdmin,
      'POST',
      '/_cluster/auth',
      { changes: [{ op: 'user-add', user: 'bob' }] },
      client,
    );
    expect(made.status).toBe(200);
  }, 30 * 60_000);

  afterAll(async () => {
    for (const m of members) m.proc?.kill('SIGTERM');
    await Promise.all(members.map((m) => m.exit));
    await cp?.stop();
    if (!process.env.CONFLUX_KEEP_E2E) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('creates the users and roles, enables authorization and issues the client certificates', async () => {
    cluster = withAuth(AUTH);
    const taken = await converge();
    expect(taken.filter((a) => a.type === 'sync-auth')).toHaveLength(1);
    expect(cluster.status?.auth).toEqual({ users: ['alice', 'ops'], roles: ['app-reader'] });
    const alice = await secret('demo-client-alice');
    expect(alice?.type).toBe('kubernetes.io/tls');
    expect(alice?.metadata?.labels?.['conflux.io/client-user']).toBe('alice');
    expect(Object.keys(alice?.data ?? {}).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    // Nothing left: a second look takes no step.
    expect(await converge()).toEqual([]);
  }, 120_000);

  it('the issued certificate reads /app/, and may not write it or read elsewhere', async () => {
    const ops = pairOf(await secret('demo-client-ops'));
    const alice = pairOf(await secret('demo-client-alice'));
    const [m0, m1] = members as [TlsMember, TlsMember];
    expect((await https(m0.api, '/v1/kv//app/x', 'PUT', 'v', ops)).status).toBe(200);
    expect((await https(m0.api, '/v1/kv//other/y', 'PUT', 'w', ops)).status).toBe(200);
    for (const m of [m0, m1]) {
      expect(await https(m.api, '/v1/kv//app/x', 'GET', undefined, alice)).toMatchObject({
        status: 200,
        value: 'v',
      });
      expect(await https(m.api, '/v1/kv//app/x', 'PUT', 'mine', alice)).toMatchObject({
        status: 403,
        code: 'FORBIDDEN',
      });
      expect(await https(m.api, '/v1/kv//other/y', 'GET', undefined, alice)).toMatchObject({
        status: 403,
        code: 'FORBIDDEN',
      });
      expect(await https(m.api, '/v1/kv//app/x')).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    }
  }, 60_000);

  it('a certificate within 30 days of expiry is issued again, like the other leaves', async () => {
    const short = await generateClientCert(ca, { commonName: 'ops', validDays: 10 });
    const body = buildClientSecret(cluster, 'ops', { caPem, ...short });
    const put = await cp.api('PUT', `/api/v1/namespaces/${NS}/secrets/demo-client-ops`, body);
    expect(put.status).toBe(200);
    const taken = await converge();
    expect(taken).toEqual([
      { type: 'sync-auth', changes: [], issueCertificates: ['ops'], removeCertificates: [] },
    ]);
    const renewed = pairOf(await secret('demo-client-ops'));
    expect(renewed.certPem).not.toBe(short.certPem);
    expect(Date.parse(new X509Certificate(renewed.certPem).validTo)).toBeGreaterThan(
      Date.now() + 300 * DAY_MS,
    );
    expect(
      (await https((members[0] as TlsMember).api, '/v1/kv//other/y', 'GET', undefined, renewed)).status,
    ).toBe(200);
  }, 120_000);

  it('removing the user from the spec deletes it and its Secret; its certificate is refused', async () => {
    const alice = pairOf(await secret('demo-client-alice'));
    cluster = withAuth({ ...AUTH, users: AUTH.users.filter((u) => u.name !== 'alice') });
    const taken = await converge();
    expect(taken).toEqual([
      {
        type: 'sync-auth',
        changes: [{ op: 'user-delete', user: 'alice' }],
        issueCertificates: [],
        removeCertificates: ['alice'],
      },
    ]);
    expect(await secret('demo-client-alice')).toBeNull();
    expect(await secret('demo-client-ops')).not.toBeNull();
    // A member refuses it once it applied the deletion: followers learn of it with the next append.
    for (const m of members) {
      const refused = await eventually('the deleted user to be refused', async () => {
        const r = await https(m.api, '/v1/kv//app/x', 'GET', undefined, alice);
        return r.status === 200 ? undefined : r;
      });
      expect(refused).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    }
    expect(cluster.status?.auth).toEqual({ users: ['ops'], roles: ['app-reader'] });
    // bob, made by hand, is still there.
    const client = await k8s.adminClient(cluster);
    const doc = await eventually('the users', async () => {
      for (const m of members) {
        const a = await adminCall(`127.0.0.1:${m.admin}`, 'GET', '/_cluster/auth', undefined, client).catch(
          () => null,
        );
        if (a?.status === 200) return a.body as { users: { name: string }[]; enabled: boolean };
      }
      return undefined;
    });
    expect(doc.users.map((u) => u.name)).toEqual(['bob', 'ops']);
    expect(doc.enabled).toBe(true);
  }, 120_000);
  it('client certificates follow each step of a CA rotation, like the node and admin Secrets', async () => {
    const caOf = async (key: string) => {
      const s = await secret('demo-ca');
      return Buffer.from(s?.data?.[key] ?? '', 'base64').toString('utf8');
    };
    const client = async () => {
      const s = await secret('demo-client-ops');
      const text = (k: string) => Buffer.from(s?.data?.[k] ?? '', 'base64').toString('utf8');
      return { ca: text('ca.crt'), cert: text('tls.crt') };
    };
    const count = (bundle: string) => bundle.match(/BEGIN CERTIFICATE/g)?.length ?? 0;
    const old = await caOf('ca.crt');
    await k8s.rotateCa(cluster, 'start');
    const started = await client();
    expect(count(started.ca)).toBe(2); // trusts the old and the new CA
    expect(issuedBy(started.cert, old)).toBe(true);
    await k8s.rotateCa(cluster, 'promote');
    const next = await caOf('ca.crt');
    expect(next).not.toBe(old);
    const promoted = await client();
    expect(issuedBy(promoted.cert, next)).toBe(true);
    await k8s.rotateCa(cluster, 'finish');
    const finished = await client();
    expect(count(finished.ca)).toBe(1);
    expect(finished.ca.trim()).toBe(next.trim());
    expect(issuedBy(finished.cert, next)).toBe(true);
  }, 120_000);
});
