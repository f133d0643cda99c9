// Certificate renewal and CA rotation end to end on a real cluster: a ConfluxCluster with the
// operator's TLS (no dev-insecure), members addressed by their DNS names, a write load running
// throughout. What a user would see happen over months is brought forward with the material
// itself, never with a fake clock:
// - leaf renewal: the node and admin certificates in the cluster's Secrets are replaced with ones
//   that expire in ten days (inside the operator's 30-day renewal window); the operator re-issues
//   them, the kubelet swaps the mounted Secret in place (atomic symlink swap) and the members
//   reload them without a restart;
// - CA rotation: the CA Secret's certificate is re-issued with the same key but near the end of
//   its life (less than a third left); the operator rotates it with an overlap (trust old + new,
//   re-issue the leaves from the new CA, drop the old one: operator/platform/tls-rotation.ts).
// Every check reads the certificates the pods actually serve (a TLS handshake with each member by
// its DNS name), and Argo CD never shows the cluster Degraded (Progressing while the operator acts).

import { webcrypto, X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import tls from 'node:tls';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CertKeyPair, generateAdminCert, generateNodeCert } from '../../node/certs/index.js';
import { x509 } from '../../node/certs/x509.js';
import type { ConfluxCluster } from '../../operator/api/cluster.js';
import { PORTS } from '../../operator/platform/kubernetes-objects.js';
import { nodeCertSans } from '../../operator/platform/tls-secrets.js';
import { apply, getCluster, until } from '../scenarios/env.js';
import { clusterManifest, ready } from '../scenarios/lifecycle.js';
import { HealthWatch, settlesAs } from './argocd-health.js';
import {
  canRunRealCluster,
  clusterLookup,
  NAMESPACE,
  type RealCluster,
  startRealCluster,
} from './real-env.js';
import { skipUnless } from './require.js';

const skip = skipUnless(
  canRunRealCluster(),
  'tls-rotation.test.ts',
  'needs root and the Kubernetes binaries (or Go to build them)',
);

const NAME = 'certs';
const REPLICAS = 3;
const DAY_MS = 24 * 60 * 60 * 1000;

interface Served {
  pod: string;
  serial: string;
  issuer: string;
  fingerprint: string;
  validTo: number;
}

const serialOf = (pem: string) => new X509Certificate(pem).serialNumber.toUpperCase();
const cnOf = (pem: string) => /CN=([^\n,]+)/.exec(new X509Certificate(pem).subject)?.[1] ?? '';
const pemsOf = (bundle: string) =>
  bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];

describe.skipIf(skip)('certificate renewal and CA rotation on a real cluster', () => {
  let cluster: RealCluster | undefined;
  const env = () => {
    if (!cluster) throw new Error('the cluster did not start');
    return cluster;
  };
  const host = (ordinal: number) => `${NAME}-${ordinal}.${NAME}-headless.${NAMESPACE}.svc`;
  /** Every CA certificate the test has seen the cluster use: the load's trust. */
  const trusted = new Set<string>();
  const acked = new Map<string, string>();
  const failures: string[] = [];
  let running = false;
  const loops: Promise<void>[] = [];
  let health: HealthWatch | undefined;
  let baseline: Map<string, { uid: string; restarts: number; startedAt: string }>;

  const kubectlOk = async (args: string[], stdin?: string) => {
    const r = await env().kubectl(args, stdin);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const secret = async (name: string): Promise<Record<string, string>> => {
    const s = JSON.parse(await kubectlOk(['get', 'secret', name, '-n', NAMESPACE, '-o', 'json'])) as {
      data?: Record<string, string>;
      metadata: { annotations?: Record<string, string> };
    };
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
    for (const [k, v] of Object.entries(s.metadata.annotations ?? {})) out[`@${k}`] = v;
    return out;
  };
  const patchSecret = (name: string, values: Record<string, string>) =>
    kubectlOk([
      'patch',
      'secret',
      name,
      '-n',
      NAMESPACE,
      '--type',
      'merge',
      '-p',
      JSON.stringify({
        data: Object.fromEntries(
          Object.entries(values).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        ),
      }),
    ]);
  const trustSecretCas = async () => {
    for (const name of [`${NAME}-ca`, `${NAME}-tls`]) {
      const s = await secret(name);
      for (const key of ['ca.crt', 'next-ca.crt', 'previous-ca.crt']) {
        for (const pem of pemsOf(s[key] ?? '')) trusted.add(pem);
      }
    }
  };
  const pods = async (): Promise<V1Pod[]> =>
    (
      JSON.parse(
        await kubectlOk([
          'get',
          'pods',
          '-n',
          NAMESPACE,
          '-l',
          `app.kubernetes.io/instance=${NAME}`,
          '-o',
          'json',
        ]),
      ) as { items: V1Pod[] }
    ).items;

  /** The certificate a member presents on a port, checked against `ca` and its DNS name. */
  const served = (ordinal: number, ca: string[], port: number = PORTS.api, client?: CertKeyPair) =>
    new Promise<Served>((ok, fail) => {
      const socket = tls.connect({
        host: host(ordinal),
        servername: host(ordinal),
        port,
        ca,
        lookup: clusterLookup(env().dns),
        ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
        timeout: 5_000,
      });
      socket.once('secureConnect', () => {
        const cert = socket.getPeerCertificate();
        socket.destroy();
        ok({
          pod: `${NAME}-${ordinal}`,
          serial: cert.serialNumber.toUpperCase(),
          issuer: String(cert.issuer.CN),
          fingerprint: cert.fingerprint256,
          validTo: Date.parse(cert.valid_to),
        });
      });
      socket.once('timeout', () => socket.destroy(new Error(`${host(ordinal)}:${port} timed out`)));
      socket.once('error', fail);
    });
  const servedByAll = async (ca = [...trusted]) =>
    Promise.all(Array.from({ length: REPLICAS }, (_, i) => served(i, ca)));

  /** One HTTPS call to a member by its DNS name, trusting every CA seen. */
  const call = (ordinal: number, path: string, method = 'GET', body?: string, client?: CertKeyPair) =>
    new Promise<{ status: number; body: string }>((ok, fail) => {
      const port = client ? PORTS.admin : PORTS.api;
      const req = request(
        `https://${host(ordinal)}:${port}${path}`,
        {
          method,
          ca: [...trusted],
          lookup: clusterLookup(env().dns),
          timeout: 10_000,
          agent: false,
          ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => ok({ status: res.statusCode ?? 0, body: text }));
          res.on('error', fail);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', fail);
      req.end(body);
    });

  /** Writes keep being acknowledged. */
  const loadProgresses = async () => {
    const before = acked.size;
    await until('more acknowledged writes', async () => acked.size >= before + 20, 60_000);
  };

  beforeAll(async () => {
    cluster = await startRealCluster();
    await apply(env(), clusterManifest(env(), NAME, { replicas: REPLICAS }));
    await ready(env(), NAME, REPLICAS, 240_000);
    await trustSecretCas();
    baseline = new Map(
      (await pods()).map((p) => [
        p.metadata?.name ?? '',
        {
          uid: p.metadata?.uid ?? '',
          restarts: p.status?.containerStatuses?.[0]?.restartCount ?? -1,
          startedAt: String(p.status?.containerStatuses?.[0]?.state?.running?.startedAt ?? ''),
        },
      ]),
    );
    health = new HealthWatch(env(), NAME).start();
    running = true;
    let seq = 0;
    for (let w = 0; w < 2; w++) {
      loops.push(
        (async () => {
          while (running) {
            const n = seq++;
            const key = `load/${String(n).padStart(6, '0')}`;
            const ordinal = n % REPLICAS;
            try {
              const res = await call(ordinal, `/v1/kv/${key}`, 'PUT', `v${n}`);
              if (res.status === 200) acked.set(key, `v${n}`);
              else failures.push(`${NAME}-${ordinal} ${res.status} ${res.body.slice(0, 160)}`);
            } catch (err) {
              failures.push(`${NAME}-${ordinal} ${(err as Error).message}`);
              await new Promise((r) => setTimeout(r, 100));
            }
          }
        })(),
      );
    }
  }, 900_000);

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && cluster) {
      console.log(cluster.operatorLogs(120));
      console.log(`health seen:\n${health?.describe()}\nload failures:\n${failures.slice(-20).join('\n')}`);
    }
  });

  afterAll(async () => {
    running = false;
    await Promise.allSettled(loops);
    await health?.stop();
    await cluster?.stop();
  }, 120_000);

  it('members serve the certificate of their Secret, issued by the cluster CA for their DNS names', async () => {
    const node = await secret(`${NAME}-tls`);
    const ca = await secret(`${NAME}-ca`);
    const now = await servedByAll([ca['ca.crt'] ?? '']);
    for (const s of now) {
      expect(s.serial).toBe(serialOf(node['tls.crt'] ?? ''));
      expect(s.issuer).toBe(cnOf(ca['ca.crt'] ?? ''));
    }
    await loadProgresses();
  }, 120_000);

  it('a leaf close to expiry is renewed by the operator and reloaded in place', async () => {
    const c = (await getCluster(env(), NAME)) as ConfluxCluster;
    const caSecret = await secret(`${NAME}-ca`);
    const ca = { certPem: caSecret['ca.crt'] ?? '', keyPem: caSecret['ca.key'] ?? '' };
    const before = (await secret(`${NAME}-tls`))['tls.crt'] ?? '';
    const beforeAdmin = (await secret(`${NAME}-admin-tls`))['tls.crt'] ?? '';
    // Ten days left: inside the operator's 30-day renewal window.
    const short = await generateNodeCert(ca, { nodeId: NAME, ...nodeCertSans(c), validDays: 10 });
    const shortAdmin = await generateAdminCert(ca, { commonName: 'conflux-operator', validDays: 10 });
    const t0 = Date.now();
    await patchSecret(`${NAME}-tls`, { 'tls.crt': short.certPem, 'tls.key': short.keyPem });
    await patchSecret(`${NAME}-admin-tls`, { 'tls.crt': shortAdmin.certPem, 'tls.key': shortAdmin.keyPem });
    const renewed = await until(
      'the operator to re-issue the short-lived leaves',
      async () => {
        const node = (await secret(`${NAME}-tls`))['tls.crt'] ?? '';
        const admin = (await secret(`${NAME}-admin-tls`))['tls.crt'] ?? '';
        const fresh = (pem: string, ...old: string[]) => !old.includes(pem) && pem !== '';
        return fresh(node, before, short.certPem) && fresh(admin, beforeAdmin, shortAdmin.certPem)
          ? node
          : undefined;
      },
      180_000,
    );
    // A year's certificate from the same CA.
    expect(Date.parse(new X509Certificate(renewed).validTo) - Date.now()).toBeGreaterThan(300 * DAY_MS);
    expect(new X509Certificate(renewed).checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    const serial = serialOf(renewed);
    const servedNow = await until(
      'every member to serve the renewed certificate',
      async () => {
        const now = await servedByAll([ca.certPem]);
        return now.every((s) => s.serial === serial) ? now : undefined;
      },
      120_000,
    );
    console.log(
      `leaf renewed and served by every member ${Date.now() - t0} ms after the short-lived leaves were written`,
    );
    for (const s of servedNow) expect(s.issuer).toBe(cnOf(ca.certPem));
    await loadProgresses();
  }, 420_000);

  it('a CA close to expiry is rotated with an overlap: both trusted, leaves re-issued, the old dropped', async () => {
    const caSecret = await secret(`${NAME}-ca`);
    const oldCa = { certPem: caSecret['ca.crt'] ?? '', keyPem: caSecret['ca.key'] ?? '' };
    const oldAdmin = await secret(`${NAME}-admin-tls`);
    const oldAdminPair = { certPem: oldAdmin['tls.crt'] ?? '', keyPem: oldAdmin['tls.key'] ?? '' };
    const oldLeafSerial = serialOf((await secret(`${NAME}-tls`))['tls.crt'] ?? '');
    // The same CA (key and name), re-issued so that ten of its seventy days are left.
    const aging = await reissueCa(oldCa, new Date(Date.now() - 60 * DAY_MS), 70);
    trusted.add(aging);
    const t0 = Date.now();
    await patchSecret(`${NAME}-ca`, { 'ca.crt': aging });
    const phases: string[] = [];
    /** What the members serve at each phase: [phase, issuer CN of each member's leaf]. */
    const servedAt: string[] = [];
    let newCaPem = '';
    await until(
      'the CA rotation to finish',
      async () => {
        const s = await secret(`${NAME}-ca`);
        const phase = s['@conflux.io/ca-rotation-phase'] ?? 'none';
        if (phases.at(-1) !== phase) phases.push(phase);
        await trustSecretCas();
        const now = await servedByAll();
        const line = `${phase}: ${now.map((x) => x.issuer).join(',')}`;
        if (servedAt.at(-1) !== line) servedAt.push(line);
        const done = phase === 'none' && s['ca.crt'] !== aging && !s['previous-ca.crt'] && !s['next-ca.crt'];
        if (done) newCaPem = s['ca.crt'] ?? '';
        return done;
      },
      400_000,
    );
    console.log(`CA rotated in ${Date.now() - t0} ms; phases ${phases.join(' -> ')}\n${servedAt.join('\n')}`);
    expect(phases).toEqual(expect.arrayContaining(['trust-new', 'issue-new']));
    expect(phases.indexOf('trust-new')).toBeLessThan(phases.indexOf('issue-new'));
    const newCa = new X509Certificate(newCaPem);
    expect(newCa.fingerprint256).not.toBe(new X509Certificate(aging).fingerprint256);
    // The members' Secret trusts the new CA alone and holds a leaf of it. The operator writes it
    // after the CA Secret, in the same pass, so it may trail the CA Secret by a moment.
    const node = await until(
      "the members' Secret to drop the old CA",
      async () => {
        const s = await secret(`${NAME}-tls`);
        return pemsOf(s['ca.crt'] ?? '').length === 1 ? s : undefined;
      },
      60_000,
    );
    expect(pemsOf(node['ca.crt'] ?? '')).toEqual(pemsOf(newCaPem));
    expect(new X509Certificate(node['tls.crt'] ?? '').checkIssued(newCa)).toBe(true);
    const serial = serialOf(node['tls.crt'] ?? '');
    expect(serial).not.toBe(oldLeafSerial);
    // Every member serves that leaf; trusting only the new CA is enough, only the old is not.
    const now = await until(
      'every member to serve the leaf of the new CA',
      async () => {
        const s = await servedByAll([newCaPem]).catch(() => undefined);
        return s?.every((x) => x.serial === serial) ? s : undefined;
      },
      120_000,
    );
    for (const s of now) expect(s.issuer).toBe(cnOf(newCaPem));
    const refused = await served(0, [oldCa.certPem]).then(
      () => null,
      (err: NodeJS.ErrnoException) => err,
    );
    // The member sends its chain (leaf and new CA), which ends in a CA this client does not trust.
    expect(refused?.code).toMatch(
      /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE/,
    );
    // Once they dropped the old CA, its admin certificate is turned away; the new one is not.
    const newAdmin = await secret(`${NAME}-admin-tls`);
    const newAdminPair = { certPem: newAdmin['tls.crt'] ?? '', keyPem: newAdmin['tls.key'] ?? '' };
    await until(
      'every member to refuse the old CA admin certificate',
      async () => {
        for (let i = 0; i < REPLICAS; i++) {
          const r = await call(i, '/_internal/status', 'GET', undefined, oldAdminPair);
          if (r.status !== 401) return false;
        }
        return true;
      },
      60_000,
    );
    for (let i = 0; i < REPLICAS; i++) {
      expect((await call(i, '/_internal/status', 'GET', undefined, newAdminPair)).status).toBe(200);
    }
    // The operator records each step's event after the step; the last may follow the members'
    // refusal of the old CA by a pass.
    const wanted = ['CARotationStarted', 'CARotationReissuing', 'CARotationCompleted'];
    const reasons = async () =>
      (
        JSON.parse(
          await kubectlOk([
            'get',
            'events',
            '-n',
            NAMESPACE,
            '--field-selector',
            `involvedObject.name=${NAME}`,
            '-o',
            'json',
          ]),
        ) as { items: { reason: string }[] }
      ).items.map((e) => e.reason);
    const seen = await until(
      'the CA rotation events',
      async () => {
        const r = await reasons();
        return wanted.every((w) => r.includes(w)) && r;
      },
      60_000,
    ).catch(async () => reasons());
    expect(seen).toEqual(expect.arrayContaining(wanted));
    await loadProgresses();
  }, 720_000);

  it('writes kept working throughout, no member restarted, and Argo CD never saw the cluster Degraded', async () => {
    running = false;
    await Promise.allSettled(loops);
    await health?.stop();
    expect(acked.size).toBeGreaterThan(100);
    // Every acknowledged write is there.
    const held = new Map<string, string>();
    let after = '';
    for (;;) {
      const q = `prefix=load%2F&limit=10000${after ? `&after=${encodeURIComponent(after)}` : ''}`;
      const res = await call(0, `/v1/kv?${q}`);
      expect(res.status).toBe(200);
      const page = JSON.parse(res.body) as {
        kvs: { key: string; value: string }[];
        more: boolean;
        next?: string;
      };
      for (const kv of page.kvs) held.set(kv.key, kv.value);
      if (!page.more || !page.next) break;
      after = page.next;
    }
    expect([...acked].filter(([k, v]) => held.get(k) !== v)).toEqual([]);
    console.log(`${acked.size} writes acknowledged during renewal and rotation, ${failures.length} failed`);
    // A failed write was never acknowledged, so it loses nothing. None may be a TLS refusal (a
    // member serving or trusting the wrong thing); a rare retryable 503 (a proposal dropped by a
    // leader change, as a peer redials under its new trust on a loaded host) is tolerated.
    const tls = failures.filter((f) =>
      /certificate|SSL|TLS|alert|self.signed|unable to verify|issuer/i.test(f),
    );
    expect(tls).toEqual([]);
    expect(failures.filter((f) => !/ 503 /.test(f))).toEqual([]);
    expect(failures.length).toBeLessThanOrEqual(Math.ceil(acked.size / 100));
    // The same pods, never restarted: renewal and rotation reached them through their volumes.
    for (const p of await pods()) {
      const b = baseline.get(p.metadata?.name ?? '');
      expect(b, p.metadata?.name).toBeDefined();
      expect(p.metadata?.uid).toBe(b?.uid);
      expect(p.status?.containerStatuses?.[0]?.restartCount).toBe(b?.restarts);
      expect(String(p.status?.containerStatuses?.[0]?.state?.running?.startedAt ?? '')).toBe(b?.startedAt);
    }
    // Argo CD: Progressing while the operator renews or rotates (it is acting on the cluster),
    // never Degraded, Healthy before and after.
    expect(health?.errors).toEqual([]);
    const statuses = health?.statuses() ?? [];
    expect(
      statuses.filter((x) => x !== 'Healthy' && x !== 'Progressing'),
      health?.describe(),
    ).toEqual([]);
    expect(statuses[0]).toBe('Healthy');
    expect((await settlesAs(env(), NAME, 'Healthy')).status).toBe('Healthy');
  }, 180_000);
});

/**
 * The CA `ca` issued again with the same key and name (so every certificate it signed still
 * chains to it), valid `validDays` from `notBefore`.
 */
async function reissueCa(ca: CertKeyPair, notBefore: Date, validDays: number): Promise<string> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
  const der = new X509Certificate(ca.certPem).publicKey.export({ type: 'spki', format: 'der' });
  const publicKey = await webcrypto.subtle.importKey('spki', der, algorithm, true, ['verify']);
  const pkcs8 = Buffer.from(ca.keyPem.replace(/-----(BEGIN|END) PRIVATE KEY-----|\s/g, ''), 'base64');
  const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']);
  const old = new x509.X509Certificate(ca.certPem);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '4f'.padEnd(32, '1'),
    subject: old.subject,
    issuer: old.subject,
    notBefore,
    notAfter: new Date(notBefore.getTime() + validDays * DAY_MS),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    publicKey,
    signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  });
  return cert.toString('pem');
}
