import { X509Certificate } from 'node:crypto';
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { type CertKeyPair, generateCa, generateNodeCert } from '../../node/certs/index.js';
import { type ConfluxCluster, confluxClusterSchema } from '../api/cluster.js';
import { caRotationStep } from '../reconcile/plan/owned.js';
import type { TlsView } from '../reconcile/types.js';
import { caSecretFor, readCaSet, stepCaRotation, writeCaSecret } from './kubernetes-ca-rotation.js';
import { type CaSet, fingerprintOf, trustBundle } from './tls-rotation.js';

/** What a member reports it has loaded (null: it did not answer). */
type MemberTlsReport = { certFingerprint: string; caFingerprints: string[] };

const EVENTS = { start: 'CARotationStarted', promote: 'CARotationReissuing', finish: 'CARotationCompleted' };

/** The observation plan() gets of the CA set and the node certificate. */
function viewOf(set: CaSet, nodeCertPem: string): TlsView {
  const cert = (pem: string) => {
    const c = new X509Certificate(pem);
    return {
      notBefore: new Date(c.validFrom).toISOString(),
      notAfter: new Date(c.validTo).toISOString(),
      fingerprint: fingerprintOf(pem),
      problem: null,
    };
  };
  return {
    managed: true,
    ca: cert(set.ca.certPem),
    caProblem: null,
    rotation: {
      phase: set.phase,
      since: set.since ? set.since.toISOString() : null,
      next: set.next ? cert(set.next.certPem) : null,
    },
    node: cert(nodeCertPem),
    admin: null,
  };
}

const DAY = 24 * 60 * 60 * 1000;
const _silent = pino({ level: 'silent' });
const cluster: ConfluxCluster = confluxClusterSchema.parse({
  apiVersion: 'conflux.io/v1alpha1',
  kind: 'ConfluxCluster',
  metadata: { name: 'demo', namespace: 'db', uid: 'u1' },
});

/** Just the two Secret writes writeCaSecret makes, against one stored Secret. */
function fakeCore() {
  const store: { secret: V1Secret | null; writes: string[] } = { secret: null, writes: [] };
  const core = {
    createNamespacedSecret: async ({ body }: { body: V1Secret }) => {
      store.writes.push('create');
      store.secret = structuredClone(body);
    },
    replaceNamespacedSecret: async ({ body }: { body: V1Secret }) => {
      store.writes.push('replace');
      store.secret = structuredClone(body);
    },
  } as unknown as CoreV1Api;
  return { core, store };
}

let oldCa: CertKeyPair;
let oldLeaf: CertKeyPair;

beforeAll(async () => {
  // 70 of 90 days lived: less than a third left, so a rotation is due.
  oldCa = await generateCa({ commonName: 'old', validDays: 90, notBefore: new Date(Date.now() - 70 * DAY) });
  oldLeaf = await generateNodeCert(oldCa, {
    nodeId: 'demo',
    dnsNames: ['localhost'],
    ipAddresses: [],
    validDays: 5,
  });
});

describe('CA rotation through the CA Secret', () => {
  it('walks every phase across passes, resuming from the Secret, with an Event for each', async () => {
    const { core, store } = fakeCore();
    const events: string[] = [];
    let now = new Date();
    // What the three members have loaded; the test moves them along like kubelet + reload would.
    let members: (MemberTlsReport | null)[] = [];
    let nodeCertPem = oldLeaf.certPem;
    // One pass as the reconciler takes it: the CA set the Secret records, plan()'s step for it
    // (reconcile/plan/owned.ts), the step applied and the Secret written.
    const pass = async (): Promise<CaSet> => {
      const set = readCaSet(store.secret, now);
      if (!set) throw new Error('no usable CA');
      const reports = members.map((m) => m && { cert: m.certFingerprint, cas: m.caFingerprints });
      const step = caRotationStep(viewOf(set, nodeCertPem), reports, now.getTime());
      if (step === null || 'wait' in step) return set;
      events.push(EVENTS[step.step]);
      const next = await stepCaRotation(cluster, set, step.step, now);
      await writeCaSecret(core, caSecretFor(cluster, next), next, store.secret, 'test');
      return next;
    };
    await writeCaSecret(
      core,
      caSecretFor(cluster, { ca: oldCa, phase: null, since: null }),
      { ca: oldCa, phase: null, since: null },
      null,
      'test',
    );
    store.secret!.data!.extra = Buffer.from('kept').toString('base64');

    // Pass 1: the CA is due; a new CA is made and trusted next to the old one.
    let set = await pass();
    expect(set.phase).toBe('trust-new');
    expect(events).toEqual(['CARotationStarted']);
    expect(store.secret?.metadata?.annotations?.['conflux.io/ca-rotation-phase']).toBe('trust-new');
    expect(Object.keys(store.secret?.data ?? {}).sort()).toEqual([
      'ca.crt',
      'ca.key',
      'extra',
      'next-ca.crt',
      'next-ca.key',
    ]);
    const newCa = set.next as CertKeyPair;
    const bundle = [fingerprintOf(oldCa.certPem), fingerprintOf(newCa.certPem)];

    // Pass 2: one member has not loaded the bundle yet: wait (nothing written).
    const old = fingerprintOf(oldLeaf.certPem);
    members = [
      { certFingerprint: old, caFingerprints: bundle },
      { certFingerprint: old, caFingerprints: bundle.slice(0, 1) },
      null,
    ];
    const writes = store.writes.length;
    expect((await pass()).phase).toBe('trust-new');
    expect(store.writes.length).toBe(writes);

    // Pass 3: every member trusts the new CA: it becomes the signing CA.
    members = members.map(() => ({ certFingerprint: old, caFingerprints: bundle }));
    set = await pass();
    expect(set).toMatchObject({ phase: 'issue-new', previous: oldCa.certPem });
    expect(set.ca.certPem).toBe(newCa.certPem);
    expect(events).toEqual(['CARotationStarted', 'CARotationReissuing']);
    expect(Object.keys(store.secret?.data ?? {}).sort()).toEqual([
      'ca.crt',
      'ca.key',
      'extra',
      'previous-ca.crt',
    ]);
    expect(trustBundle(set)).toBe(`${newCa.certPem}\n${oldCa.certPem}`);

    // The leaves are re-issued by tls-secrets.ts; the members pick the new one up.
    const newLeaf = await generateNodeCert(newCa, {
      nodeId: 'demo',
      dnsNames: ['localhost'],
      ipAddresses: [],
      validDays: 5,
    });
    nodeCertPem = newLeaf.certPem;
    members = members.map(() => ({
      certFingerprint: fingerprintOf(newLeaf.certPem),
      caFingerprints: bundle,
    }));
    members[2] = null; // one member restarting: the phase waits for it ...
    expect((await pass()).phase).toBe('issue-new');
    now = new Date(now.getTime() + 6 * 60_000); // ... but not forever
    set = await pass();
    expect(set).toEqual({
      ca: expect.objectContaining({ certPem: newCa.certPem }),
      phase: null,
      since: null,
    });
    expect(events).toEqual(['CARotationStarted', 'CARotationReissuing', 'CARotationCompleted']);
    expect(Object.keys(store.secret?.data ?? {}).sort()).toEqual(['ca.crt', 'ca.key', 'extra']);
    expect(store.secret?.metadata?.annotations?.['conflux.io/ca-rotation-phase']).toBeUndefined();
    expect(trustBundle(set)).toBe(newCa.certPem);

    // Steady: the new CA has its life ahead, nothing more happens.
    const steady = store.writes.length;
    expect((await pass()).phase).toBeNull();
    expect(store.writes.length).toBe(steady);
  });

  it('a CA Secret without a usable CA is left to tls-secrets.ts', async () => {
    expect(readCaSet(null, new Date())).toBeNull();
    const expired = await generateCa({
      commonName: 'x',
      validDays: 1,
      notBefore: new Date(Date.now() - 2 * DAY),
    });
    const secret = caSecretFor(cluster, { ca: expired, phase: null, since: null });
    expect(readCaSet(secret, new Date())).toBeNull();
  });
});
