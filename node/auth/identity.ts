// Who is calling the client API, from the TLS connection alone (no header counts): a client
// certificate that verifies against the cluster CA names a user by its subject CN; a member's
// node certificate (O=conflux-node) marks a follower forwarding a request it has already
// authorized (a member is as trusted as the Raft traffic it carries); anything else is anonymous.
// Without TLS (--dev-insecure, loopback only) nobody can be authenticated: every caller is
// anonymous, and authorization, once enabled, refuses them (permissions.ts).

import type { TLSSocket } from 'node:tls';
import { NODE_ORGANIZATION, subjectOrganizations } from '../certs/index.js';

export type ClientIdentity =
  | { kind: 'user'; name: string }
  | { kind: 'member'; name: string }
  | { kind: 'anonymous' };

/**
 * Per connection, the certificate last seen (by fingerprint) and who it names: decoding the
 * subject's organizations costs far more than the request it guards (bench/client-auth.ts), and a
 * keep-alive connection asks again for every request.
 */
const seen = new WeakMap<object, { fingerprint: string; identity: ClientIdentity }>();

/** The identity of the peer of `socket` (a plain socket: anonymous). */
export function identityOf(socket: unknown): ClientIdentity {
  const tls = socket as Partial<TLSSocket>;
  if (typeof tls.getPeerCertificate !== 'function' || !tls.authorized) return { kind: 'anonymous' };
  const cert = tls.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return { kind: 'anonymous' };
  const known = seen.get(tls as object);
  if (known && known.fingerprint === cert.fingerprint256) return known.identity;
  const identity = identityOfCertificate(cert);
  if (cert.fingerprint256) seen.set(tls as object, { fingerprint: cert.fingerprint256, identity });
  return identity;
}

function identityOfCertificate(cert: ReturnType<TLSSocket['getPeerCertificate']>): ClientIdentity {
  const cn = cert.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (!name) return { kind: 'anonymous' };
  const organizations = cert.raw ? subjectOrganizations(cert.raw) : [];
  return organizations.includes(NODE_ORGANIZATION) ? { kind: 'member', name } : { kind: 'user', name };
}
