// What the operator finds wrong with a client certificate Secret (each defect makes plan re-issue
// it), and the Secret it writes: the pure parts of kubernetes-client-certs.ts. The API server
// side (list, create, replace, delete) runs in e2e/cluster/auth-spec.test.ts.

import type { V1Secret } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type CertKeyPair,
  generateAdminCert,
  generateCa,
  generateClientCert,
} from '../../node/certs/index.js';
import { confluxClusterSchema } from '../api/cluster.js';
import {
  buildClientSecret,
  CLIENT_USER_LABEL,
  clientCertificateViews,
  clientCertProblem,
} from './kubernetes-client-certs.js';

const cluster = confluxClusterSchema.parse({
  apiVersion: 'conflux.io/v1alpha1',
  kind: 'ConfluxCluster',
  metadata: { name: 'demo', namespace: 'ns', uid: 'u-1' },
  spec: {},
});

describe('client certificate Secrets', () => {
  let ca: CertKeyPair;
  let other: CertKeyPair;
  let alice: CertKeyPair;
  const bundle = () => ca.certPem;
  const secretOf = (pair: CertKeyPair, caPem = bundle()): V1Secret =>
    buildClientSecret(cluster, 'alice', { caPem, ...pair });

  beforeAll(async () => {
    ca = await generateCa({ commonName: 'demo-ca', validDays: 10 });
    other = await generateCa({ commonName: 'other-ca', validDays: 10 });
    alice = await generateClientCert(ca, { commonName: 'alice', validDays: 1 });
  });

  it('is named after the cluster and the user, labelled, owned by the cluster', () => {
    const s = secretOf(alice);
    expect(s.metadata?.name).toBe('demo-client-alice');
    expect(s.metadata?.labels?.[CLIENT_USER_LABEL]).toBe('alice');
    expect(s.metadata?.labels?.['app.kubernetes.io/instance']).toBe('demo');
    expect(s.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'ConfluxCluster', uid: 'u-1' });
    expect(s.type).toBe('kubernetes.io/tls');
    expect(Object.keys(s.data ?? {}).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
  });

  it('a good one has no problem', () => {
    expect(clientCertProblem(secretOf(alice), 'alice', ca.certPem, bundle())).toBeNull();
  });

  it('finds each defect that makes it be issued again', async () => {
    const foreign = await generateClientCert(other, { commonName: 'alice', validDays: 1 });
    const bob = await generateClientCert(ca, { commonName: 'bob', validDays: 1 });
    const admin = await generateAdminCert(ca, { commonName: 'alice', validDays: 1 });
    const check = (s: V1Secret) => clientCertProblem(s, 'alice', ca.certPem, bundle());
    expect(check(secretOf({ certPem: alice.certPem, keyPem: bob.keyPem }))).toMatch(/does not belong/);
    expect(check(secretOf(foreign))).toBe('not signed by the current CA');
    expect(check(secretOf(bob))).toBe('its CN is bob, not alice');
    expect(check(secretOf(admin))).toMatch(/lacks O=conflux-client/);
    expect(check(secretOf(alice, other.certPem))).toMatch(/trust bundle/);
    const { 'tls.key': _gone, ...noKey } = secretOf(alice).data ?? {};
    expect(check({ ...secretOf(alice), data: noKey })).toMatch(/missing/);
  });

  it('views the cluster’s client Secrets by user, against the CA Secret', () => {
    const caSecret: V1Secret = {
      data: {
        'ca.crt': Buffer.from(ca.certPem).toString('base64'),
        'ca.key': Buffer.from(ca.keyPem).toString('base64'),
      },
    };
    const misnamed = { ...secretOf(alice), metadata: { ...secretOf(alice).metadata, name: 'demo-tls' } };
    const views = clientCertificateViews(cluster, [secretOf(alice), misnamed], caSecret, new Date());
    expect(Object.keys(views)).toEqual(['alice']);
    expect(views.alice).toMatchObject({ problem: null });
    expect(Date.parse(views.alice?.notAfter ?? '')).toBeGreaterThan(Date.now());
    const noCa = clientCertificateViews(cluster, [secretOf(alice)], null, new Date());
    expect(noCa.alice?.problem).toBe('the cluster has no usable CA');
  });
});
