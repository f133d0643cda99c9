// Who a request is from, for the per-client limits (rate limit, watchers). Normally the socket's
// remote address. A follower that proxies a request to the leader sends the client's address in
// X-Conflux-Forwarded-For; the leader believes it only from a member, never from a client:
//
// - With TLS, the follower proxies with its own node certificate and the client API asks every
//   caller for a certificate without requiring one: a request whose socket presents a
//   certificate that verifies against the cluster CA and carries the node role (O=conflux-node)
//   is from a member.
// - Without TLS (--dev-insecure, loopback only) nothing can be authenticated: the header counts
//   when X-Conflux-Forwarded-By names another current member whose advertised API host is the
//   socket's remote address. On loopback any local process passes that test; it can only move
//   itself into another client's rate-limit bucket, and --dev-insecure is for local use only.
//
// Anything else (a client setting the header itself) is keyed by the socket's address.

import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { NODE_ORGANIZATION, subjectOrganizations } from '../certs/index.js';
import { splitHostPort } from '../shapes/address.js';
import { FORWARDED_BY, FORWARDED_FOR } from './forward.js';

export interface ClientAddressTrust {
  selfId: string;
  /** Whether the client API speaks TLS (then members are known by their certificates). */
  tls: boolean;
  /** The advertised client API address of a current member. */
  apiAddressOf(id: string): string | undefined;
}

const cache = new WeakMap<FastifyRequest, string>();

/** The address of the client this request is from (cached per request). */
export function clientAddress(req: FastifyRequest, trust: ClientAddressTrust): string {
  const known = cache.get(req);
  if (known !== undefined) return known;
  const socketAddress = normalize(req.raw.socket.remoteAddress ?? 'unknown');
  const header = req.headers[FORWARDED_FOR];
  const claimed = typeof header === 'string' ? normalize(header.trim()) : undefined;
  const address =
    claimed !== undefined && isIP(claimed) !== 0 && fromMember(req, socketAddress, trust)
      ? claimed
      : socketAddress;
  cache.set(req, address);
  return address;
}

function fromMember(req: FastifyRequest, socketAddress: string, trust: ClientAddressTrust): boolean {
  if (trust.tls) {
    const socket = req.raw.socket as TLSSocket;
    if (!socket.authorized || typeof socket.getPeerCertificate !== 'function') return false;
    const cert = socket.getPeerCertificate();
    return cert?.raw !== undefined && subjectOrganizations(cert).includes(NODE_ORGANIZATION);
  }
  const by = req.headers[FORWARDED_BY];
  if (typeof by !== 'string' || by === trust.selfId) return false;
  const api = trust.apiAddressOf(by);
  return api !== undefined && normalize(splitHostPort(api)[0]) === socketAddress;
}

/** IPv4 clients of a dual-stack socket show as ::ffff:a.b.c.d. */
function normalize(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
