// The control plane's PKI, laid out like kubeadm's: a cluster CA that signs the API server's
// serving certificate and every client certificate (and, in kube-controller-manager, approved
// CSRs), an etcd CA, a front-proxy CA for aggregated APIs, and the ServiceAccount token key pair.
// ECDSA P-256 throughout: a whole PKI takes tens of milliseconds.

import { randomBytes, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { x509 } from '../../node/certs/x509.js';

type KeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 24 * 3600 * 1000;

export interface CertKey {
  certPem: string;
  keyPem: string;
}

export interface Ca extends CertKey {
  cert: x509.X509Certificate;
  keys: KeyPair;
}

export interface LeafOptions {
  /** Common name: the user name for client certificates. */
  cn: string;
  /** Organizations: the groups for client certificates. */
  groups?: string[];
  server?: boolean;
  client?: boolean;
  dns?: string[];
  ips?: string[];
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

async function newKeys(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as KeyPair;
}

async function privatePem(keys: KeyPair): Promise<string> {
  return pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
}

export async function publicPem(keys: KeyPair): Promise<string> {
  return pem('PUBLIC KEY', await webcrypto.subtle.exportKey('spki', keys.publicKey));
}

export async function makeCa(cn: string, days = 365): Promise<Ca> {
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [cn] }],
    notBefore: new Date(now - 3600 * 1000),
    notAfter: new Date(now + days * DAY),
    keys,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys, certPem: cert.toString('pem'), keyPem: await privatePem(keys) };
}

export async function issue(ca: Ca, o: LeafOptions, days = 365): Promise<CertKey> {
  const keys = await newKeys();
  const now = Date.now();
  const usages: string[] = [];
  if (o.server) usages.push(x509.ExtendedKeyUsage.serverAuth);
  if (o.client) usages.push(x509.ExtendedKeyUsage.clientAuth);
  const names: x509.JsonGeneralName[] = [
    ...(o.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(o.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const subject: x509.JsonName = [...(o.groups ?? []).map((g) => ({ O: [g] })), { CN: [o.cn] }];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject,
    issuer: ca.cert.subjectName,
    notBefore: new Date(now - 3600 * 1000),
    notAfter: new Date(now + days * DAY),
    signingKey: ca.keys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(usages),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privatePem(keys) };
}

/** Writes `<name>.crt` and `<name>.key` (mode 0600) into `dir`; returns their paths. */
export function writePair(dir: string, name: string, pair: CertKey): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, pair.certPem);
  writeFileSync(key, pair.keyPem, { mode: 0o600 });
  return { cert, key };
}

/** A kubeconfig (JSON is YAML) with the CA and the client certificate embedded. */
export function kubeconfig(server: string, caPem: string, user: string, client: CertKey): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return `${JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'conflux', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
      users: [
        {
          name: user,
          user: { 'client-certificate-data': b64(client.certPem), 'client-key-data': b64(client.keyPem) },
        },
      ],
      contexts: [{ name: `${user}@conflux`, context: { cluster: 'conflux', user } }],
      'current-context': `${user}@conflux`,
    },
    null,
    2,
  )}\n`;
}

export async function newKeyPair(): Promise<{ privatePem: string; publicPem: string }> {
  const keys = await newKeys();
  return { privatePem: await privatePem(keys), publicPem: await publicPem(keys) };
}
