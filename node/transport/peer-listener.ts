// The listening side: accepts peers' connections (plain or mutual TLS) and serves each with
// serveInbound. It tracks every raw socket, handshaking ones included, so close() can end them
// all and resolve only once the server and every socket are gone (no handle left open).

import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { type InboundOptions, serveInbound } from './inbound-connection.js';
import type { Logger, PeerTlsOptions } from './options.js';
import { createPeerServer, setPeerServerTls } from './sockets.js';

export class PeerListener {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private listening = false;

  constructor(tls: PeerTlsOptions | null, inbound: InboundOptions, logger: Logger) {
    this.server = createPeerServer(tls, {
      onSocket: (socket) => {
        this.track(socket);
        serveInbound(socket, inbound);
      },
      onRawSocket: (socket) => this.track(socket),
      onTlsRefused: (error, remote, kind) => {
        const code = (error as Error & { code?: unknown }).code;
        logger.warn({ remote, code, reason: error.message }, 'refused a TLS peer connection');
        inbound.protocolError(kind === 'certificate' ? 'certificate' : 'tls-handshake', null);
      },
    });
    this.server.on('error', (err) => logger.error({ err: err.message }, 'peer listener error'));
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        this.listening = true;
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /**
   * Handshakes from now on use `tls`, and every connection accepted so far is dropped: it was
   * verified against the trust of before (perhaps a CA just retired), so its peer must redial
   * and pass the new check. Peers redial at once; Raft resends what was in flight.
   */
  setTls(tls: PeerTlsOptions): void {
    setPeerServerTls(this.server, tls);
    for (const socket of this.sockets) socket.destroy();
  }

  get connections(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    const closed = this.listening
      ? new Promise<void>((resolve) => this.server.close(() => resolve()))
      : Promise.resolve();
    this.listening = false;
    const sockets = [...this.sockets];
    for (const socket of sockets) socket.destroy();
    await Promise.all([closed, ...sockets.map((s) => (s.closed ? undefined : onceClosed(s)))]);
  }

  private track(socket: net.Socket): void {
    if (this.sockets.has(socket)) return;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }
}

function onceClosed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => socket.once('close', () => resolve()));
}
