// Socket construction for both directions, plain TCP or mutual TLS. Every socket disables Nagle's
// algorithm: the transport batches by itself, and a delayed ACK must never hold a heartbeat back.

import net from 'node:net';
import tls from 'node:tls';
import { isNodeCertificate } from '../certs/roles.js';
import type { PeerAddress } from './address.js';
import type { PeerTlsOptions } from './options.js';

/** What a peer's certificate must carry besides a chain to the cluster CA (both directions). */
const ROLE_REQUIRED = 'certificate lacks the node role (O=conflux-node)';

export interface Dialled {
  socket: net.Socket;
  /** The event after which the connection is usable (TLS: the handshake verified the server). */
  readyEvent: 'connect' | 'secureConnect';
}

export function dial(address: PeerAddress, tlsOptions: PeerTlsOptions | null): Dialled {
  const { host, port } = address;
  if (!tlsOptions) return { socket: net.connect({ host, port, noDelay: true }), readyEvent: 'connect' };
  const socket = tls.connect({
    host,
    port,
    cert: tlsOptions.cert,
    key: tlsOptions.key,
    ca: tlsOptions.ca,
    minVersion: 'TLSv1.2',
    // The chain is always verified against `ca`; SNI is only allowed for DNS names.
    rejectUnauthorized: true,
    ...(net.isIP(host) === 0 ? { servername: host } : {}),
    // Only a member's certificate may receive Raft traffic: a client or admin certificate of the
    // same CA serving on a peer's address is refused like a wrong name.
    checkServerIdentity: (name, cert) => {
      if (!isNodeCertificate(cert)) return new Error(`server ${ROLE_REQUIRED}`);
      return tlsOptions.verifyServerName === false ? undefined : tls.checkServerIdentity(name, cert);
    },
  });
  socket.setNoDelay(true);
  return { socket, readyEvent: 'secureConnect' };
}

export interface ServerHandlers {
  /** A connection ready to carry frames (TLS: the client certificate was verified). */
  onSocket(socket: net.Socket): void;
  /** Every raw TCP connection, including TLS ones still handshaking, so close() can end them all. */
  onRawSocket(socket: net.Socket): void;
  /**
   * A TLS peer was refused: `certificate` for a client certificate missing, not signed by our CA
   * or without the node role; `handshake` for a handshake that failed before that.
   */
  onTlsRefused(error: Error, remote: string, kind: 'certificate' | 'handshake'): void;
}

/** How long an inbound TLS handshake may take before the socket is dropped. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export function createPeerServer(tlsOptions: PeerTlsOptions | null, handlers: ServerHandlers): net.Server {
  if (!tlsOptions) {
    const server = net.createServer({ noDelay: true }, (socket) => handlers.onSocket(socket));
    server.on('connection', (socket) => handlers.onRawSocket(socket));
    return server;
  }
  const server = tls.createServer({
    cert: tlsOptions.cert,
    key: tlsOptions.key,
    ca: tlsOptions.ca,
    // Mutual TLS: the client must present a certificate, verified against `ca` during the handshake.
    // The verdict is enforced in 'secureConnection' below rather than by OpenSSL aborting the
    // handshake, because only there is the socket still open and its remote address known for the
    // log line. A refused socket is destroyed before any of its bytes are read.
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    noDelay: true,
  });
  server.on('connection', (socket: net.Socket) => handlers.onRawSocket(socket));
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    if (!socket.authorized) {
      const reason = String(socket.authorizationError ?? 'no client certificate');
      handlers.onTlsRefused(
        new Error(`client certificate refused: ${reason}`),
        remoteOf(socket),
        'certificate',
      );
      socket.destroy();
      return;
    }
    // The peer port is for members only: client and admin certificates of the same CA are refused.
    if (!isNodeCertificate(socket.getPeerCertificate())) {
      handlers.onTlsRefused(new Error(`client ${ROLE_REQUIRED}`), remoteOf(socket), 'certificate');
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    handlers.onSocket(socket);
  });
  server.on('tlsClientError', (error: Error, socket: tls.TLSSocket) => {
    handlers.onTlsRefused(error, remoteOf(socket), 'handshake');
    socket.destroy();
  });
  return server;
}

/** New connections to `server` (a TLS peer server) use `tlsOptions` from now on. */
export function setPeerServerTls(server: net.Server, tlsOptions: PeerTlsOptions): void {
  if (!(server instanceof tls.Server))
    throw new Error('the peer listener serves plain TCP; it has no TLS to replace');
  server.setSecureContext({ cert: tlsOptions.cert, key: tlsOptions.key, ca: tlsOptions.ca });
}

export function remoteOf(socket: net.Socket): string {
  const host = socket.remoteAddress ?? '?';
  return `${net.isIPv6(host) ? `[${host}]` : host}:${socket.remotePort ?? '?'}`;
}
