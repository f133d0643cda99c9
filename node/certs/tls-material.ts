// Parsing and checking the TLS files a node serves with: its certificate (optionally followed by
// intermediates), its private key and a CA bundle (one or more PEM certificates, all trusted).
//
// Invariants:
// - Material is accepted only as a whole: the key belongs to the certificate, every certificate
//   in the CA bundle parses and is a CA, the certificate was issued by one of the bundle's CAs (or
//   by an intermediate that follows it in the certificate file), and OpenSSL accepts the three
//   together. Anything else is refused with a reason, so a half-written or mismatched set of files
//   is never served.
// - Nothing here reads files or keeps state: reload.ts does the I/O and decides when to swap.

import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { CertError } from './errors.js';

/** One certificate as the status surfaces report it. */
export interface CertSummary {
  subject: string;
  issuer: string;
  serial: string;
  /** SHA-256 over the DER, lowercase hex without separators. */
  fingerprint_sha256: string;
  not_before: string;
  not_after: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** Each CA certificate of the bundle as its own PEM. */
  ca: Buffer[];
  /** Each certificate of the extra CA files (trusted only where the caller adds them). */
  extraCa: Buffer[];
  /** The served certificate and the bundle's CAs. */
  summary: { cert: CertSummary; ca: CertSummary[] };
}

export interface TlsFileContents {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  /** More trusted CAs (for example the admin CA, trusted on the admin API only by its caller). */
  extraCa?: Buffer[];
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function refused(message: string): CertError {
  return new CertError('TLS_MATERIAL_REFUSED', message);
}

/** The PEM certificate blocks of a file, in order. */
export function splitPemCertificates(text: string): string[] {
  return [...text.matchAll(PEM_CERTIFICATE)].map((m) => `${m[0]}\n`);
}

function parseCertificate(pem: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw refused(`${what} is not a readable certificate (${(err as Error).message})`);
  }
}

export function summarize(cert: X509Certificate): CertSummary {
  return {
    subject: cert.subject.replaceAll('\n', ', '),
    issuer: cert.issuer.replaceAll('\n', ', '),
    serial: cert.serialNumber.toLowerCase(),
    fingerprint_sha256: createHash('sha256').update(cert.raw).digest('hex'),
    not_before: new Date(cert.validFrom).toISOString(),
    not_after: new Date(cert.validTo).toISOString(),
  };
}

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function parseBundle(text: string, what: string): X509Certificate[] {
  const blocks = splitPemCertificates(text);
  if (blocks.length === 0) throw refused(`${what} holds no PEM certificate`);
  return blocks.map((pem, i) => {
    const cert = parseCertificate(pem, `certificate ${i + 1} of ${what}`);
    if (!cert.ca)
      throw refused(`certificate ${i + 1} of ${what} (${cert.subject}) is not a CA`.replaceAll('\n', ', '));
    return cert;
  });
}

/** Checks the files as one set; throws CertError TLS_MATERIAL_REFUSED naming what is wrong. */
export function parseTlsMaterial(files: TlsFileContents): TlsMaterial {
  const chain = splitPemCertificates(files.cert.toString('utf8'));
  if (chain.length === 0) throw refused('the certificate file holds no PEM certificate');
  const leaf = parseCertificate(chain[0] as string, 'the certificate file');
  const intermediates = chain.slice(1).map((pem, i) => parseCertificate(pem, `chain certificate ${i + 2}`));

  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(files.key);
  } catch (err) {
    throw refused(`the key file is not a readable private key (${(err as Error).message})`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw refused(`the key does not belong to the certificate (${leaf.subject.replaceAll('\n', ', ')})`);
  }

  const cas = parseBundle(files.ca.toString('utf8'), 'the CA bundle');
  const extra = (files.extraCa ?? []).flatMap((f, i) =>
    parseBundle(f.toString('utf8'), `extra CA file ${i + 1}`),
  );
  const issuers = [...cas, ...intermediates];
  if (!issuers.some((ca) => signedBy(leaf, ca))) {
    throw refused(
      `the certificate (${leaf.subject.replaceAll('\n', ', ')}) was not issued by any CA in the bundle`,
    );
  }
  const ca = cas.map((c) => Buffer.from(c.toString()));
  const extraCa = extra.map((c) => Buffer.from(c.toString()));
  try {
    createSecureContext({ cert: files.cert, key: files.key, ca: [...ca, ...extraCa] });
  } catch (err) {
    throw refused(`OpenSSL refuses the material (${(err as Error).message})`);
  }
  return {
    cert: files.cert,
    key: files.key,
    ca,
    extraCa,
    summary: { cert: summarize(leaf), ca: cas.map(summarize) },
  };
}
