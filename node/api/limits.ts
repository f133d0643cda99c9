// What one client may hold of a node: connections, time and watches. Shared by the client and
// admin servers.
//
// Time: a request's headers must arrive within readHeaderTimeoutMs and the whole request within
// readTimeoutMs (Node's headersTimeout and requestTimeout: a slow-loris connection is answered
// 408 REQUEST_TIMEOUT and closed); a connection that carries no bytes for idleTimeoutMs is closed,
// whether between requests (keep-alive) or while an answer is stalled because the client stopped
// reading. Watches are long requests whose request part completes at once, so the read timeouts
// never cut them; what reaps a dead watch is the idle timeout: an SSE stream writes a comment
// more often than that (a stream whose writes stop draining goes idle and is closed), and a
// long-poll lengthens its own socket's idle timeout by its timeout_ms for as long as it waits.

import { maxHeaderSize, type Server, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyServerOptions } from 'fastify';
import { ConfluxError } from '../errors.js';
import { toHttpError } from './http-errors.js';

export interface ConnectionLimits {
  /** Open connections per listener; more are closed as soon as they are accepted. */
  maxConnections: number;
  /** Open connections per listener from one address (a forwarding member counts as one). */
  maxConnectionsPerClient: number;
  /** New connections per listener per second (a quarter of it at once); unset: no limit. */
  maxNewConnectionsPerSecond?: number;
  readHeaderTimeoutMs: number;
  readTimeoutMs: number;
  idleTimeoutMs: number;
}

/**
 * Fastify options that apply `limits`, merged into the server's TLS options when it has them.
 * `longRequests`: requests that may work for minutes without sending a byte (the admin port's
 * backups and restores) are not cut by the idle timeout; its keep-alive idling still is, and
 * its answers are small, so a client that stops reading cannot hold much.
 */
export function serverOptions(
  limits: ConnectionLimits,
  https: object | undefined,
  longRequests = false,
): Pick<
  FastifyServerOptions,
  'connectionTimeout' | 'keepAliveTimeout' | 'requestTimeout' | 'clientErrorHandler'
> & {
  http?: object;
  https?: object;
} {
  const node = {
    headersTimeout: limits.readHeaderTimeoutMs,
    requestTimeout: limits.readTimeoutMs,
    // How often Node looks for requests past those timeouts (its default, 30 s, would let a
    // slow-loris connection live that much longer than the timeout).
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.readHeaderTimeoutMs / 4))),
  };
  return {
    connectionTimeout: longRequests ? 0 : limits.idleTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    requestTimeout: limits.readTimeoutMs,
    clientErrorHandler,
    // A TLS handshake must end within the header timeout too (Node's default is 120 s): a burst of
    // connections that send a ClientHello and stop would otherwise hold every connection slot
    // (maxConnections) for two minutes, and no client could connect meanwhile.
    ...(https
      ? { https: { ...https, ...node, handshakeTimeout: limits.readHeaderTimeoutMs } }
      : { http: node }),
  };
}

/**
 * A token bucket of new connections: `perSecond` a second, at most a quarter of that at once.
 * A TLS handshake costs the node about a millisecond of its one thread (measured on a loaded
 * two-core machine); a burst of thousands accepted together stalls the Raft ticks and heartbeats
 * past an election timeout, while the same handshakes spread at this rate do not.
 */
export class AcceptRate {
  private tokens: number;
  private lastMs: number;
  readonly burst: number;

  constructor(
    readonly perSecond: number,
    nowMs: number,
  ) {
    this.burst = Math.max(1, Math.ceil(perSecond / 4));
    this.tokens = this.burst;
    this.lastMs = nowMs;
  }

  /** Whether one more connection may be accepted at `nowMs` (and counts it if so). */
  take(nowMs: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.lastMs) * this.perSecond) / 1000);
    this.lastMs = nowMs;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

/**
 * After creation: the connection caps and the accept rate (and a count of the connections they
 * closed). A connection over the rate or its client's cap is closed as soon as it is accepted,
 * before any HTTP parsing or TLS handshake: a flood of connections costs the node an accept and
 * a close each.
 */
export function applyConnectionLimits(server: Server, limits: ConnectionLimits, onDrop?: () => void): void {
  server.maxConnections = limits.maxConnections;
  server.headersTimeout = limits.readHeaderTimeoutMs;
  if (onDrop) server.on('drop', onDrop);
  const open = new Map<string, number>();
  const rate =
    limits.maxNewConnectionsPerSecond === undefined
      ? null
      : new AcceptRate(limits.maxNewConnectionsPerSecond, performance.now());
  server.prependListener('connection', (socket: Socket) => {
    if (rate !== null && !rate.take(performance.now())) {
      onDrop?.();
      socket.destroy();
      return;
    }
    const client = socket.remoteAddress ?? '';
    const n = open.get(client) ?? 0;
    if (n >= limits.maxConnectionsPerClient) {
      onDrop?.();
      socket.destroy();
      return;
    }
    open.set(client, n + 1);
    socket.once('close', () => {
      const left = (open.get(client) ?? 1) - 1;
      if (left === 0) open.delete(client);
      else open.set(client, left);
    });
  });
}

/** How often an SSE stream writes a comment: well within the idle timeout, at most every 15 s. */
export function keepaliveIntervalMs(limits: ConnectionLimits): number {
  return Math.min(15_000, Math.floor(limits.idleTimeoutMs / 3));
}

/**
 * Node's refusals before a request exists (headers too large, a request that did not arrive in
 * time, bytes that are not HTTP), answered in the catalogue's JSON shape instead of Node's or
 * fastify's own bodies, then the connection is closed.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const refusal =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new ConfluxError(
          'HEADERS_TOO_LARGE',
          `the request line and headers are larger than ${maxHeaderSize} bytes`,
          { maxHeaderBytes: maxHeaderSize },
        )
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new ConfluxError('REQUEST_TIMEOUT', 'the request did not arrive in time')
        : new ConfluxError('INVALID_REQUEST', `not a valid HTTP request (${err.code ?? 'parse error'})`);
  const { status, body } = toHttpError(refusal);
  const text = JSON.stringify(body);
  // Never write into the middle of an answer already being sent on this connection.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
    );
  }
  socket.destroy();
}

/**
 * Open watches (SSE streams and waiting long-polls): at most `max` on the node and
 * `maxPerClient` from one client address. `acquire` throws TOO_MANY_WATCHERS beyond either.
 */
export class WatcherLimits {
  private total = 0;
  private readonly perClient = new Map<string, number>();

  constructor(
    readonly max: number,
    readonly maxPerClient: number,
  ) {}

  get count(): number {
    return this.total;
  }

  /** Count one watch of `client`; the returned release is idempotent. */
  acquire(client: string): () => void {
    const mine = this.perClient.get(client) ?? 0;
    if (this.total >= this.max) {
      throw new ConfluxError('TOO_MANY_WATCHERS', `this node serves its limit of ${this.max} watches`, {
        maxWatchers: this.max,
      });
    }
    if (mine >= this.maxPerClient) {
      throw new ConfluxError(
        'TOO_MANY_WATCHERS',
        `client ${client} holds its limit of ${this.maxPerClient} watches on this node`,
        { maxWatchersPerClient: this.maxPerClient },
      );
    }
    this.total++;
    this.perClient.set(client, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.perClient.get(client) ?? 1) - 1;
      if (left === 0) this.perClient.delete(client);
      else this.perClient.set(client, left);
    };
  }
}
