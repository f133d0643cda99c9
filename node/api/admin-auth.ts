// Who may call the cluster-operations API. Over TLS the server asks every client for a certificate
// but decides itself (so it can answer with a clear 401/403 and an audit line instead of a reset
// connection): the chain must verify against the admin CA or the cluster CA, `/_cluster/*` needs
// the admin role (O=conflux-admin); `/_internal/*` also admits member nodes (O=conflux-node).
// Nothing a caller sends besides its certificate counts: no member acts on an admin's behalf (a
// follower redirects leader-only calls, admin-routes.ts), so a header such as
// x-conflux-forwarded-by grants nothing, and the audit line names the certificate that called
// (subject, serial and SHA-256 fingerprint).
// Without TLS (--dev-insecure, loopback only) every caller is trusted, and the node says so at start.

import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { ADMIN_ORGANIZATION, NODE_ORGANIZATION, subjectOrganizations } from '../certs/index.js';
import { ConfluxError } from '../errors.js';

export interface Caller {
  subject: string;
  roles: string[];
  /** Serial number and SHA-256 fingerprint of the certificate that called (absent without TLS). */
  serial?: string;
  fingerprint?: string;
}

export function authorize(req: FastifyRequest, tls: boolean): Caller {
  if (!tls) return { subject: 'dev-insecure', roles: [ADMIN_ORGANIZATION] };
  const socket = req.raw.socket as TLSSocket;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) {
    throw new ConfluxError('UNAUTHENTICATED', 'a client certificate is required');
  }
  const cn = cert.subject?.CN;
  const subject = (Array.isArray(cn) ? cn.join(',') : cn) ?? '(no common name)';
  if (!socket.authorized) {
    throw new ConfluxError(
      'UNAUTHENTICATED',
      `client certificate refused: ${String(socket.authorizationError)}`,
      { subject },
    );
  }
  const roles = cert.raw ? subjectOrganizations(cert.raw) : [];
  const path = req.url.split('?')[0] ?? '';
  const needed = path.startsWith('/_internal/')
    ? [ADMIN_ORGANIZATION, NODE_ORGANIZATION]
    : [ADMIN_ORGANIZATION];
  if (!roles.some((r) => needed.includes(r))) {
    throw new ConfluxError(
      'FORBIDDEN',
      `certificate ${subject} lacks the role for ${path} (${needed.join(' or ')})`,
      { subject, fingerprint: cert.fingerprint256 },
    );
  }
  return { subject, roles, serial: cert.serialNumber, fingerprint: cert.fingerprint256 };
}
