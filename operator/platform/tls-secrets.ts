// The TLS material of an operator-managed cluster: a CA (kept in `<name>-ca`), one node
// certificate valid for every pod (`<name>-tls`, mounted by the pods) and the operator's admin
// client certificate (`<name>-admin-tls`, O=conflux-admin). This module decides what to issue and
// issues it with node/certs; kubernetes.ts reads and writes the Secrets.
//
// Invariants:
// - The node certificate names the pods by wildcard (`*.<name>-headless.<ns>.svc`), so scaling
//   never needs a new certificate (and never rolls the pods).
// - A leaf is re-issued when it is missing, unreadable, within RENEW_BEFORE_DAYS of expiry, not
//   signed by the current CA, or lacks a name it must carry. The CA is replaced outright only when
//   it is missing, broken or already expired: a new CA while the old one still works would split
//   the running members. A working CA is rotated with an overlap instead (tls-rotation.ts: trust
//   both, re-issue the leaves, drop the old one); here a CA close to expiry that is not being
//   rotated is reported (see `warnings`).

import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import {
  ADMIN_ORGANIZATION,
  type CertKeyPair,
  generateAdminCert,
  generateCa,
  generateNodeCert,
  type Sans,
} from '../../node/certs/index.js';
import type { ConfluxCluster } from '../api/cluster.js';
import { DEFAULT_CLUSTER_DOMAIN, resourceNames } from './kubernetes-objects.js';

export const RENEW_BEFORE_DAYS = 30;
export const CA_VALID_DAYS = 3650;
export const LEAF_VALID_DAYS = 365;
export const ADMIN_COMMON_NAME = 'conflux-operator';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Certificates start this long before "now", so a peer whose clock lags slightly accepts them. */
const BACKDATE_MS = 5 * 60 * 1000;

function parse(certPem: string): X509Certificate | null {
  try {
    return new X509Certificate(certPem);
  } catch {
    return null;
  }
}

/**
 * Whether a certificate must be replaced at `now`: unreadable, not yet valid, expired, or
 * expiring within `renewBeforeDays`.
 */
export function needsRenewal(certPem: string, now: Date, renewBeforeDays = RENEW_BEFORE_DAYS): boolean {
  const cert = parse(certPem);
  if (!cert) return true;
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (Number.isNaN(notBefore) || Number.isNaN(notAfter)) return true;
  if (notBefore > now.getTime() + BACKDATE_MS) return true;
  return notAfter - now.getTime() < renewBeforeDays * DAY_MS;
}

/** When the certificate expires (null when it cannot be read). */
export function expiresAt(certPem: string): Date | null {
  const cert = parse(certPem);
  const t = cert ? Date.parse(cert.validTo) : Number.NaN;
  return Number.isNaN(t) ? null : new Date(t);
}

/** The names every member's certificate must carry. */
export function nodeCertSans(cluster: ConfluxCluster, clusterDomain = DEFAULT_CLUSTER_DOMAIN): Sans {
  const ns = cluster.metadata.namespace;
  const { headlessService, clientService } = resourceNames(cluster);
  const forms = (host: string) => [
    host,
    `${host}.${ns}`,
    `${host}.${ns}.svc`,
    `${host}.${ns}.svc.${clusterDomain}`,
  ];
  const dnsNames = [
    ...forms(headlessService).map((h) => `*.${h}`),
    ...forms(headlessService),
    ...forms(clientService),
    'localhost',
  ];
  return { dnsNames: [...new Set(dnsNames)], ipAddresses: ['127.0.0.1'] };
}

/** The DNS names and IP addresses a certificate carries. */
export function certificateNames(certPem: string): Sans {
  const san = parse(certPem)?.subjectAltName ?? '';
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const part of san.split(', ')) {
    if (part.startsWith('DNS:')) dnsNames.push(part.slice(4));
    else if (part.startsWith('IP Address:')) ipAddresses.push(part.slice(11));
  }
  return { dnsNames, ipAddresses };
}

/** Whether `certPem` was signed by the CA `caPem`. */
export function issuedBy(certPem: string, caPem: string): boolean {
  const cert = parse(certPem);
  const ca = parse(caPem);
  if (!cert || !ca) return false;
  try {
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

/** Whether the private key belongs to the certificate. */
export function keyMatches(pair: CertKeyPair): boolean {
  const cert = parse(pair.certPem);
  if (!cert) return false;
  try {
    const certKey = cert.publicKey.export({ type: 'spki', format: 'der' });
    const key = createPublicKey(createPrivateKey(pair.keyPem)).export({ type: 'spki', format: 'der' });
    return certKey.equals(key);
  } catch {
    return false;
  }
}

function organizations(certPem: string): string[] {
  const subject = parse(certPem)?.subject ?? '';
  return subject
    .split('\n')
    .filter((line) => line.startsWith('O='))
    .map((line) => line.slice(2));
}

export interface TlsMaterial {
  ca: CertKeyPair;
  node: CertKeyPair;
  admin: CertKeyPair;
}

export interface TlsRenewal {
  material: TlsMaterial;
  /** Which parts were (re)issued now. */
  issued: { ca: boolean; node: boolean; admin: boolean };
  /** Why, one line per issued part. */
  reasons: string[];
  /** Things an operator must act on (a CA close to expiry). */
  warnings: string[];
}

/**
 * What is wrong with a leaf regardless of the clock (missing, unreadable, a key that does not
 * match, not signed by `caPem`, or what `check` finds), or null. Expiry is the planner's to judge.
 */
export function leafDefect(
  pair: CertKeyPair | undefined,
  caPem: string,
  check: (certPem: string) => string | null,
): string | null {
  if (!pair) return 'missing';
  if (parse(pair.certPem) === null) return 'unreadable';
  if (!keyMatches(pair)) return 'its key does not match';
  if (!issuedBy(pair.certPem, caPem)) return 'not signed by the current CA';
  return check(pair.certPem);
}

/** Why a leaf must be re-issued, or null when it is fine. */
function leafProblem(
  pair: CertKeyPair | undefined,
  ca: CertKeyPair,
  now: Date,
  check: (certPem: string) => string | null,
): string | null {
  const defect = leafDefect(pair, ca.certPem, () => null);
  if (defect || !pair) return defect ?? 'missing';
  if (needsRenewal(pair.certPem, now)) return `expires within ${RENEW_BEFORE_DAYS} days`;
  return check(pair.certPem);
}

/** What the node certificate lacks of the names every member must carry, or null. */
export function nodeNamesProblem(
  cluster: ConfluxCluster,
  certPem: string,
  clusterDomain?: string,
): string | null {
  const sans = nodeCertSans(cluster, clusterDomain);
  const have = certificateNames(certPem);
  const missing = [
    ...sans.dnsNames.filter((n) => !have.dnsNames.includes(n)),
    ...sans.ipAddresses.filter((ip) => !have.ipAddresses.includes(ip)),
  ];
  return missing.length > 0 ? `lacks ${missing.join(', ')}` : null;
}

/** Whether the admin certificate lacks the admin organization, as a problem line. */
export function adminOrgProblem(certPem: string): string | null {
  return organizations(certPem).includes(ADMIN_ORGANIZATION) ? null : `lacks O=${ADMIN_ORGANIZATION}`;
}

/** What is wrong with a CA pair regardless of the clock, or null. */
export function caDefect(ca: CertKeyPair | undefined): string | null {
  if (!ca) return 'missing';
  if (parse(ca.certPem) === null) return 'unreadable';
  if (!keyMatches(ca)) return 'its key does not match';
  return null;
}

/**
 * Keeps what is still good in `current` and issues the rest. Not pure (key generation is
 * random), but it performs no I/O besides that.
 */
export async function renewTlsMaterial(
  cluster: ConfluxCluster,
  current: Partial<TlsMaterial>,
  now: Date,
  options: { clusterDomain?: string; rotating?: boolean } = {},
): Promise<TlsRenewal> {
  const reasons: string[] = [];
  const warnings: string[] = [];
  const validity = (validDays: number) => ({ validDays, notBefore: new Date(now.getTime() - BACKDATE_MS) });
  const name = cluster.metadata.name;

  let ca = current.ca;
  let caProblem: string | null = null;
  if (!ca) caProblem = 'missing';
  else if (parse(ca.certPem) === null) caProblem = 'unreadable';
  else if (!keyMatches(ca)) caProblem = 'its key does not match';
  else if (needsRenewal(ca.certPem, now, 0)) caProblem = 'expired';
  else if (needsRenewal(ca.certPem, now) && !options.rotating) {
    warnings.push(
      `the cluster CA expires at ${expiresAt(ca.certPem)?.toISOString()} and is not being rotated ` +
        '(a new CA without an overlap would cut the running members off from each other)',
    );
  }
  if (caProblem || !ca) {
    ca = await generateCa({ commonName: `conflux-ca-${name}`.slice(0, 64), ...validity(CA_VALID_DAYS) });
    reasons.push(`CA: ${caProblem}`);
  }

  const sans = nodeCertSans(cluster, options.clusterDomain);
  let node = current.node;
  const nodeProblem = leafProblem(node, ca, now, (certPem) =>
    nodeNamesProblem(cluster, certPem, options.clusterDomain),
  );
  if (nodeProblem || !node) {
    node = await generateNodeCert(ca, { nodeId: name, ...sans, ...validity(LEAF_VALID_DAYS) });
    reasons.push(`node certificate: ${nodeProblem}`);
  }

  let admin = current.admin;
  const adminProblem = leafProblem(admin, ca, now, adminOrgProblem);
  if (adminProblem || !admin) {
    admin = await generateAdminCert(ca, { commonName: ADMIN_COMMON_NAME, ...validity(LEAF_VALID_DAYS) });
    reasons.push(`admin certificate: ${adminProblem}`);
  }

  return {
    material: { ca, node, admin },
    issued: { ca: caProblem !== null, node: nodeProblem !== null, admin: adminProblem !== null },
    reasons,
    warnings,
  };
}
