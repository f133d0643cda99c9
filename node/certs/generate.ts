// Generation of the TLS material Conflux uses: one CA (ECDSA P-256), node certificates (serverAuth
// + clientAuth: a node serves its HTTPS APIs and dials its peers with mutual TLS using the same
// certificate) and client certificates (clientAuth only), whose subject O carries the role.
//
// Invariants:
// - Keys never leave this module except as unencrypted PKCS#8 PEM; callers write them 0600
//   (see bundle.ts).
// - Every leaf is signed by a CA whose key matches its certificate (checked in loadCa), carries
//   the CA's key identifier (authorityKeyIdentifier) and a random positive 128-bit serial.
// - The CA may sign only end-entity certificates (pathLength 0); leaves are never CAs.

import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { invalid } from './errors.js';
import { assertDnsNames, assertIpAddresses } from './names.js';
import { x509 } from './x509.js';

/** The subject O of admin client certificates; the admin API admits only these (docs/ARCHITECTURE.md §7). */
export const ADMIN_ORGANIZATION = 'conflux-admin';
/** The subject O of ordinary (non-admin) client certificates. */
export const CLIENT_ORGANIZATION = 'conflux-client';
/** The subject O of node certificates. */
export const NODE_ORGANIZATION = 'conflux-node';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Certificates start this long before "now", so a peer whose clock lags slightly accepts them. */
const BACKDATE_MS = 5 * 60 * 1000;
const KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

export interface CertKeyPair {
  certPem: string;
  keyPem: string;
}

export interface Validity {
  /** Lifetime counted from notBefore; > 0 (fractions allowed). */
  validDays: number;
  /** Default: now minus five minutes. Tests set it in the past to make expired certificates. */
  notBefore?: Date;
}

export interface CaOptions extends Validity {
  commonName: string;
}

export interface NodeCertOptions extends Validity {
  nodeId: string;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
}

export interface ClientCertOptions extends Validity {
  commonName: string;
  /** Subject O, the role (default CLIENT_ORGANIZATION). */
  organization?: string;
}

interface LoadedCa {
  cert: x509.X509Certificate;
  key: webcrypto.CryptoKey;
}

function validity(options: Validity): { notBefore: Date; notAfter: Date } {
  const { validDays } = options;
  if (!(Number.isFinite(validDays) && validDays > 0)) {
    throw invalid(`validDays must be a positive number, got ${validDays}`);
  }
  const notBefore = options.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  if (Number.isNaN(notBefore.getTime())) throw invalid('notBefore is not a valid date');
  return { notBefore, notAfter: new Date(notBefore.getTime() + validDays * DAY_MS) };
}

function assertNameValue(what: string, value: string): void {
  // Control characters in a DN would make Node's text rendering of the subject ambiguous.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: that is exactly what is refused
  if (value.length === 0 || value.length > 64 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw invalid(`${what} must be 1..64 printable characters, got ${JSON.stringify(value)}`);
  }
}

/** JSON form of a DN, so values containing commas or '=' need no escaping. */
function subjectName(commonName: string, organization?: string): x509.Name {
  assertNameValue('commonName', commonName);
  const attributes: Record<string, string[]>[] = [{ CN: [commonName] }];
  if (organization !== undefined) {
    assertNameValue('organization', organization);
    attributes.push({ O: [organization] });
  }
  return new x509.Name(attributes);
}

/** 16 random bytes, top bit cleared (serials are positive INTEGERs) and next bit set (no leading 0). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

async function newKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
}

async function keyToPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function loadCa(ca: CertKeyPair): Promise<LoadedCa> {
  const cert = new x509.X509Certificate(ca.certPem);
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (!basic?.ca) throw invalid('the CA certificate is not a CA (basicConstraints cA is not set)');
  const certSpki = new X509Certificate(ca.certPem).publicKey.export({ type: 'spki', format: 'der' });
  const keySpki = createPublicKey(createPrivateKey(ca.keyPem)).export({ type: 'spki', format: 'der' });
  if (!certSpki.equals(keySpki)) throw invalid('the CA key does not belong to the CA certificate');
  const pkcs8 = createPrivateKey(ca.keyPem).export({ type: 'pkcs8', format: 'der' });
  const key = await webcrypto.subtle.importKey('pkcs8', pkcs8, KEY_ALGORITHM, false, ['sign']);
  return { cert, key };
}

export async function generateCa(options: CaOptions): Promise<CertKeyPair> {
  const keys = await newKeyPair();
  const name = subjectName(options.commonName);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: name,
    issuer: name,
    ...validity(options),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyToPem(keys.privateKey) };
}

async function issueLeaf(
  ca: CertKeyPair,
  subject: x509.Name,
  usages: x509.ExtendedKeyUsage[],
  sans: x509.JsonGeneralName[],
  times: Validity,
): Promise<CertKeyPair> {
  const period = validity(times);
  const issuer = await loadCa(ca);
  const keys = await newKeyPair();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(usages, false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey),
  ];
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject,
    issuer: issuer.cert.subjectName,
    ...period,
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: issuer.key,
    extensions,
  });
  return { certPem: cert.toString('pem'), keyPem: await keyToPem(keys.privateKey) };
}

/** A node's certificate: serverAuth + clientAuth, subject `CN=<nodeId>, O=conflux-node`. */
export async function generateNodeCert(ca: CertKeyPair, options: NodeCertOptions): Promise<CertKeyPair> {
  assertDnsNames(options.dnsNames);
  assertIpAddresses(options.ipAddresses);
  if (options.dnsNames.length + options.ipAddresses.length === 0) {
    throw invalid('a node certificate needs at least one DNS name or IP address');
  }
  const sans: x509.JsonGeneralName[] = [
    ...options.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...options.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
  ];
  return issueLeaf(
    ca,
    subjectName(options.nodeId, NODE_ORGANIZATION),
    [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    sans,
    options,
  );
}

/** A client certificate (clientAuth only); its role is the subject O. */
export async function generateClientCert(ca: CertKeyPair, options: ClientCertOptions): Promise<CertKeyPair> {
  const organization = options.organization ?? CLIENT_ORGANIZATION;
  return issueLeaf(
    ca,
    subjectName(options.commonName, organization),
    [x509.ExtendedKeyUsage.clientAuth],
    [],
    options,
  );
}

/** A client certificate carrying the admin role (`O=conflux-admin`). */
export async function generateAdminCert(
  ca: CertKeyPair,
  options: Omit<ClientCertOptions, 'organization'>,
): Promise<CertKeyPair> {
  return generateClientCert(ca, { ...options, organization: ADMIN_ORGANIZATION });
}
