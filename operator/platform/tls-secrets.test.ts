import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type CertKeyPair,
  generateAdminCert,
  generateCa,
  generateClientCert,
  generateNodeCert,
  isAdminCertificate,
} from '../../node/certs/index.js';
import { type ConfluxCluster, confluxClusterSchema } from '../api/cluster.js';
import {
  certificateNames,
  issuedBy,
  keyMatches,
  needsRenewal,
  nodeCertSans,
  renewTlsMaterial,
  type TlsMaterial,
} from './tls-secrets.js';

const DAY = 24 * 60 * 60 * 1000;
const now = new Date('2030-06-01T12:00:00Z');
const daysFromNow = (d: number) => new Date(now.getTime() + d * DAY);

const cluster: ConfluxCluster = confluxClusterSchema.parse({
  apiVersion: 'conflux.io/v1alpha1',
  kind: 'ConfluxCluster',
  metadata: { name: 'demo', namespace: 'db', uid: 'u1' },
});

/** A certificate valid from `fromDays` to `toDays` relative to `now`. */
async function certValid(fromDays: number, toDays: number): Promise<string> {
  const ca = await generateCa({
    commonName: 't',
    validDays: toDays - fromDays,
    notBefore: daysFromNow(fromDays),
  });
  return ca.certPem;
}

describe('needsRenewal', () => {
  it.each([
    ['valid for a year', -1, 365, false],
    ['31 days left', -300, 31, false],
    ['30 days and a bit left', -300, 30.01, false],
    ['29 days left', -300, 29, true],
    ['expires tomorrow', -300, 1, true],
    ['expired', -400, -35, true],
    ['not valid until next week', 7, 400, true],
  ] as const)('%s', async (_, from, to, expected) => {
    expect(needsRenewal(await certValid(from, to), now)).toBe(expected);
  });

  it('anything that is not a certificate needs renewal', () => {
    expect(needsRenewal('', now)).toBe(true);
    expect(needsRenewal('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', now)).toBe(true);
  });

  it('the window is configurable', async () => {
    const pem = await certValid(-1, 10);
    expect(needsRenewal(pem, now, 5)).toBe(false);
    expect(needsRenewal(pem, now, 0)).toBe(false);
    expect(needsRenewal(pem, daysFromNow(11), 0)).toBe(true);
  });
});

describe('nodeCertSans', () => {
  it('names every pod by wildcard, the services, and loopback', () => {
    const sans = nodeCertSans(cluster);
    expect(sans.dnsNames).toEqual(
      expect.arrayContaining([
        '*.demo-headless.db.svc',
        '*.demo-headless.db.svc.cluster.local',
        'demo-headless.db.svc',
        'demo',
        'demo.db',
        'demo.db.svc',
        'demo.db.svc.cluster.local',
        'localhost',
      ]),
    );
    expect(sans.ipAddresses).toEqual(['127.0.0.1']);
    expect(nodeCertSans(cluster, 'corp.example').dnsNames).toContain('*.demo-headless.db.svc.corp.example');
  });
});

describe('renewTlsMaterial', () => {
  let first: TlsMaterial;
  beforeAll(async () => {
    first = (await renewTlsMaterial(cluster, {}, now)).material;
  });

  it('issues everything for a new cluster', async () => {
    const r = await renewTlsMaterial(cluster, {}, now);
    expect(r.issued).toEqual({ ca: true, node: true, admin: true });
    expect(r.reasons).toEqual(['CA: missing', 'node certificate: missing', 'admin certificate: missing']);
    expect(r.warnings).toEqual([]);
  });

  it('the node certificate serves every pod and service name, signed by the CA', () => {
    const cert = new X509Certificate(first.node.certPem);
    for (const host of [
      'demo-0.demo-headless.db.svc',
      'demo-98.demo-headless.db.svc',
      'demo-3.demo-headless.db.svc.cluster.local',
      'demo.db.svc',
      'localhost',
    ]) {
      expect(cert.checkHost(host), host).toBeDefined();
    }
    expect(cert.checkHost('demo-0.other-headless.db.svc')).toBeUndefined();
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.subject).toContain('O=conflux-node');
    expect(issuedBy(first.node.certPem, first.ca.certPem)).toBe(true);
    expect(keyMatches(first.node)).toBe(true);
    expect(certificateNames(first.node.certPem).dnsNames).toEqual(nodeCertSans(cluster).dnsNames);
  });

  it('the admin certificate carries the admin role', () => {
    expect(isAdminCertificate(first.admin.certPem)).toBe(true);
    expect(issuedBy(first.admin.certPem, first.ca.certPem)).toBe(true);
  });

  it('keeps material that is still good', async () => {
    const r = await renewTlsMaterial(cluster, first, daysFromNow(100));
    expect(r.issued).toEqual({ ca: false, node: false, admin: false });
    expect(r.material).toEqual(first);
  });

  it('renews the leaves 30 days before they expire, keeping the CA', async () => {
    const r = await renewTlsMaterial(cluster, first, daysFromNow(340));
    expect(r.issued).toEqual({ ca: false, node: true, admin: true });
    expect(r.reasons).toEqual([
      'node certificate: expires within 30 days',
      'admin certificate: expires within 30 days',
    ]);
    expect(r.material.ca).toEqual(first.ca);
    expect(needsRenewal(r.material.node.certPem, daysFromNow(340))).toBe(false);
    expect(issuedBy(r.material.node.certPem, first.ca.certPem)).toBe(true);
  });

  it('re-issues leaves that another CA signed', async () => {
    const other = await generateCa({ commonName: 'other', validDays: 3650, notBefore: now });
    const foreign: CertKeyPair = await generateNodeCert(other, {
      nodeId: 'demo',
      ...nodeCertSans(cluster),
      validDays: 365,
      notBefore: now,
    });
    const r = await renewTlsMaterial(cluster, { ...first, node: foreign }, now);
    expect(r.issued).toEqual({ ca: false, node: true, admin: false });
    expect(r.reasons).toEqual(['node certificate: not signed by the current CA']);
  });

  it('re-issues a node certificate that lacks a name', async () => {
    const narrow = await generateNodeCert(first.ca, {
      nodeId: 'demo',
      dnsNames: ['demo-0.demo-headless.db.svc'],
      ipAddresses: [],
      validDays: 365,
      notBefore: now,
    });
    const r = await renewTlsMaterial(cluster, { ...first, node: narrow }, now);
    expect(r.issued.node).toBe(true);
    expect(r.reasons[0]).toMatch(/^node certificate: lacks \*\.demo-headless/);
  });

  it('re-issues an admin certificate without the admin role, or with a foreign key', async () => {
    const client = await generateClientCert(first.ca, { commonName: 'x', validDays: 365, notBefore: now });
    expect((await renewTlsMaterial(cluster, { ...first, admin: client }, now)).reasons).toEqual([
      'admin certificate: lacks O=conflux-admin',
    ]);
    const swapped = { certPem: first.admin.certPem, keyPem: first.node.keyPem };
    expect((await renewTlsMaterial(cluster, { ...first, admin: swapped }, now)).reasons).toEqual([
      'admin certificate: its key does not match',
    ]);
  });

  it('a new CA re-issues both leaves', async () => {
    const r = await renewTlsMaterial(cluster, { node: first.node, admin: first.admin }, now);
    expect(r.issued).toEqual({ ca: true, node: true, admin: true });
    expect(issuedBy(r.material.node.certPem, r.material.ca.certPem)).toBe(true);
    expect(issuedBy(r.material.admin.certPem, r.material.ca.certPem)).toBe(true);
  });

  it('warns about a CA close to expiry but keeps it; replaces an expired one', async () => {
    const oldCa = await generateCa({ commonName: 'old', validDays: 3650, notBefore: daysFromNow(-3640) });
    const leaves = {
      node: await generateNodeCert(oldCa, {
        nodeId: 'demo',
        ...nodeCertSans(cluster),
        validDays: 9,
        notBefore: now,
      }),
      admin: await generateAdminCert(oldCa, { commonName: 'op', validDays: 9, notBefore: now }),
    };
    const soon = await renewTlsMaterial(cluster, { ca: oldCa, ...leaves }, now);
    expect(soon.issued.ca).toBe(false);
    expect(soon.warnings[0]).toMatch(/the cluster CA expires at .*is not being rotated/);
    const rotating = await renewTlsMaterial(cluster, { ca: oldCa, ...leaves }, now, { rotating: true });
    expect(rotating.warnings).toEqual([]);

    const expired = await renewTlsMaterial(cluster, { ca: oldCa, ...leaves }, daysFromNow(11));
    expect(expired.issued).toEqual({ ca: true, node: true, admin: true });
    expect(expired.reasons[0]).toBe('CA: expired');
  });
});

describe('renewTlsMaterial through a CA rotation', () => {
  it('keeps the leaves while the new CA is only trusted, re-issues them once it signs', async () => {
    const oldCa = await generateCa({ commonName: 'old', validDays: 90, notBefore: daysFromNow(-70) });
    const first = await renewTlsMaterial(cluster, { ca: oldCa }, now);
    const leaves = { node: first.material.node, admin: first.material.admin };
    const next = await generateCa({ commonName: 'new', validDays: 90, notBefore: now });

    // trust-new: the old CA still signs, so nothing is re-issued.
    const trusting = await renewTlsMaterial(cluster, { ca: oldCa, ...leaves }, now, { rotating: true });
    expect(trusting.issued).toEqual({ ca: false, node: false, admin: false });

    // issue-new: the new CA signs; both leaves are re-issued from it, the CA itself is kept.
    const issuing = await renewTlsMaterial(cluster, { ca: next, ...leaves }, now, { rotating: true });
    expect(issuing.issued).toEqual({ ca: false, node: true, admin: true });
    expect(issuing.reasons).toEqual([
      'node certificate: not signed by the current CA',
      'admin certificate: not signed by the current CA',
    ]);
    expect(issuedBy(issuing.material.node.certPem, next.certPem)).toBe(true);
    expect(issuedBy(issuing.material.admin.certPem, next.certPem)).toBe(true);
    expect(isAdminCertificate(issuing.material.admin.certPem)).toBe(true);
  });
});
