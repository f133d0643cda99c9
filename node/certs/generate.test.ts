import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CertError } from './errors.js';
import {
  ADMIN_ORGANIZATION,
  CLIENT_ORGANIZATION,
  generateAdminCert,
  generateCa,
  generateClientCert,
  generateNodeCert,
} from './generate.js';
import { isAdminCertificate, subjectOrganizations } from './roles.js';
import { statefulSetSans } from './sans.js';
import { x509 } from './x509.js';

const DAY_MS = 24 * 3600 * 1000;

function extensions(pem: string) {
  const cert = new x509.X509Certificate(pem);
  return {
    cert,
    basic: cert.getExtension(x509.BasicConstraintsExtension),
    usages: cert.getExtension(x509.KeyUsagesExtension)?.usages ?? 0,
    eku: cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [],
  };
}

describe('generateCa', () => {
  it('makes a self-signed P-256 CA that may sign certificates, valid for validDays', async () => {
    const before = Date.now();
    const ca = await generateCa({ commonName: 'Conflux, test CA', validDays: 30 });
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const node = new X509Certificate(ca.certPem);
    expect(node.ca).toBe(true);
    expect(new x509.X509Certificate(ca.certPem).subjectName.getField('CN')).toEqual(['Conflux, test CA']);
    expect(node.checkIssued(node)).toBe(true);
    expect(node.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const lifetimeMs = Date.parse(node.validTo) - Date.parse(node.validFrom);
    expect(Math.abs(lifetimeMs - 30 * DAY_MS)).toBeLessThan(1000);
    expect(Date.parse(node.validFrom)).toBeLessThanOrEqual(before);

    const { basic, usages } = extensions(ca.certPem);
    expect(basic).toMatchObject({ ca: true, pathLength: 0, critical: true });
    expect(usages & x509.KeyUsageFlags.keyCertSign).toBeTruthy();
  });

  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY])('refuses validDays %s', async (validDays) => {
    await expect(generateCa({ commonName: 'ca', validDays })).rejects.toThrow(CertError);
  });
});

describe('leaf certificates', () => {
  it('a node certificate carries the StatefulSet SANs, serverAuth + clientAuth, and is signed by the CA', async () => {
    const ca = await generateCa({ commonName: 'ca', validDays: 1 });
    const sans = statefulSetSans({ name: 'cfx', namespace: 'ns', headlessService: 'cfx-hl', replicas: 3 });
    const node = await generateNodeCert(ca, { nodeId: 'cfx-1', ...sans, validDays: 1 });

    const parsed = new X509Certificate(node.certPem);
    const caCert = new X509Certificate(ca.certPem);
    expect(parsed.checkIssued(caCert)).toBe(true);
    expect(parsed.verify(caCert.publicKey)).toBe(true);
    expect(parsed.ca).toBe(false);
    expect(parsed.subject).toBe('CN=cfx-1\nO=conflux-node');
    const altNames = (parsed.subjectAltName ?? '').split(', ');
    for (const name of sans.dnsNames) expect(altNames).toContain(`DNS:${name}`);
    expect(altNames).toContain('IP Address:127.0.0.1');
    expect(altNames).toHaveLength(sans.dnsNames.length + 1);

    const { eku, basic, usages } = extensions(node.certPem);
    expect(eku).toEqual([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
    expect(basic?.ca).toBe(false);
    expect(usages).toBe(x509.KeyUsageFlags.digitalSignature);
  });

  it('admin and client certificates are clientAuth only and differ in the subject O', async () => {
    const ca = await generateCa({ commonName: 'ca', validDays: 1 });
    const admin = await generateAdminCert(ca, { commonName: 'alice', validDays: 1 });
    const client = await generateClientCert(ca, { commonName: 'bob', validDays: 1 });
    expect(extensions(admin.certPem).eku).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    expect(extensions(client.certPem).eku).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    expect(subjectOrganizations(admin.certPem)).toEqual([ADMIN_ORGANIZATION]);
    expect(subjectOrganizations(client.certPem)).toEqual([CLIENT_ORGANIZATION]);
    expect(new X509Certificate(admin.certPem).serialNumber).not.toBe(
      new X509Certificate(client.certPem).serialNumber,
    );
  });

  it('honours a notBefore override (certificates in the past, for tests)', async () => {
    const ca = await generateCa({ commonName: 'ca', validDays: 1 });
    const notBefore = new Date('2020-01-01T00:00:00Z');
    const old = await generateAdminCert(ca, { commonName: 'old', validDays: 2, notBefore });
    const parsed = new X509Certificate(old.certPem);
    expect(new Date(parsed.validFrom).toISOString()).toBe('2020-01-01T00:00:00.000Z');
    expect(new Date(parsed.validTo).toISOString()).toBe('2020-01-03T00:00:00.000Z');
  });

  it('refuses bad SANs, a node certificate without SANs, a CA key that does not match, a leaf as CA', async () => {
    const ca = await generateCa({ commonName: 'ca', validDays: 1 });
    const other = await generateCa({ commonName: 'other', validDays: 1 });
    const base = { nodeId: 'n1', validDays: 1 };
    await expect(generateNodeCert(ca, { ...base, dnsNames: ['bad_name'], ipAddresses: [] })).rejects.toThrow(
      /DNS name/,
    );
    await expect(generateNodeCert(ca, { ...base, dnsNames: [], ipAddresses: ['300.1.1.1'] })).rejects.toThrow(
      /IP address/,
    );
    await expect(generateNodeCert(ca, { ...base, dnsNames: [], ipAddresses: [] })).rejects.toThrow(
      /at least one/,
    );
    await expect(
      generateAdminCert({ certPem: ca.certPem, keyPem: other.keyPem }, { commonName: 'a', validDays: 1 }),
    ).rejects.toThrow(/does not belong/);
    const leaf = await generateClientCert(ca, { commonName: 'c', validDays: 1 });
    await expect(generateAdminCert(leaf, { commonName: 'a', validDays: 1 })).rejects.toThrow(/not a CA/);
    await expect(generateAdminCert(ca, { commonName: '', validDays: 1 })).rejects.toThrow(CertError);
  });

  it('accepts IPv6 addresses and wildcard DNS names', async () => {
    const ca = await generateCa({ commonName: 'ca', validDays: 1 });
    const node = await generateNodeCert(ca, {
      nodeId: 'n1',
      dnsNames: ['*.cfx-hl.ns.svc'],
      ipAddresses: ['::1'],
      validDays: 1,
    });
    const altNames = new X509Certificate(node.certPem).subjectAltName ?? '';
    expect(altNames).toContain('DNS:*.cfx-hl.ns.svc');
    expect(altNames).toContain('IP Address:0:0:0:0:0:0:0:1');
  });
});

describe('isAdminCertificate', () => {
  it('reads PEM, DER and { raw } inputs, and is false for nothing or garbage', async () => {
    const ca = await generateCa({ commonName: 'ca', validDays: 1 });
    const admin = await generateAdminCert(ca, { commonName: 'alice', validDays: 1 });
    const der = new X509Certificate(admin.certPem).raw;
    expect(isAdminCertificate(admin.certPem)).toBe(true);
    expect(isAdminCertificate(der)).toBe(true);
    expect(isAdminCertificate(new Uint8Array(der))).toBe(true);
    expect(isAdminCertificate(new X509Certificate(admin.certPem))).toBe(true);
    expect(isAdminCertificate(ca.certPem)).toBe(false);
    expect(isAdminCertificate('not a certificate')).toBe(false);
    expect(isAdminCertificate(new Uint8Array([1, 2, 3]))).toBe(false);
    // getPeerCertificate() without a client certificate
    expect(isAdminCertificate({} as { raw: Uint8Array })).toBe(false);
  });

  it('does not mistake a CN of conflux-admin for the role', async () => {
    const ca = await generateCa({ commonName: 'ca', validDays: 1 });
    const impostor = await generateClientCert(ca, { commonName: 'conflux-admin', validDays: 1 });
    expect(isAdminCertificate(impostor.certPem)).toBe(false);
  });
});
