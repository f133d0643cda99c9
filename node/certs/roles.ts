// The role a client certificate carries: its subject O. This answers only "which role does this
// certificate claim"; that the certificate is genuine (signed by the admin CA, in its validity
// period) is the TLS layer's job, so callers MUST check `socket.authorized` as well, or use
// isAuthorizedAdmin, which does both.

import type { PeerCertificate, TLSSocket } from 'node:tls';
import { ADMIN_ORGANIZATION, NODE_ORGANIZATION } from './generate.js';
import { x509 } from './x509.js';

/** A peer certificate as Node hands it out, a parsed X509Certificate, DER bytes or PEM text. */
export type CertificateInput = PeerCertificate | { raw: Uint8Array } | Uint8Array | string;

function toDer(input: CertificateInput): Uint8Array | string | undefined {
  if (typeof input === 'string' || input instanceof Uint8Array) return input;
  // Node's getPeerCertificate() returns {} when the peer sent no certificate. The raw DER is
  // parsed rather than Node's `subject` object, whose shape varies with multi-valued fields.
  return input.raw instanceof Uint8Array ? input.raw : undefined;
}

/** Subject O values of a certificate; [] when it cannot be parsed. */
export function subjectOrganizations(input: CertificateInput): string[] {
  const data = toDer(input);
  if (data === undefined || data.length === 0) return [];
  try {
    const bytes = typeof data === 'string' ? data : Uint8Array.from(data);
    return new x509.X509Certificate(bytes).subjectName.getField('O');
  } catch {
    return [];
  }
}

/** Whether the certificate's subject carries `O=conflux-admin`. */
export function isAdminCertificate(input: CertificateInput): boolean {
  return subjectOrganizations(input).includes(ADMIN_ORGANIZATION);
}

/**
 * Whether the certificate's subject carries `O=conflux-node`, the role of a cluster member: the
 * only certificates the peer port admits (generateNodeCert issues them; client and admin
 * certificates carry another O).
 */
export function isNodeCertificate(input: CertificateInput): boolean {
  return subjectOrganizations(input).includes(NODE_ORGANIZATION);
}

/** The TLS layer verified the peer's chain and the certificate carries the admin role. */
export function isAuthorizedAdmin(socket: TLSSocket): boolean {
  return socket.authorized && isAdminCertificate(socket.getPeerCertificate());
}
