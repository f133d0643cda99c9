// Followers hand writes and linearizable reads to the leader: either proxied (the default, so a
// client can talk to any node) or answered with 307 and the leader's address (--follower-redirect).
// A forwarded request carries X-Conflux-Forwarded-By and is never forwarded a second time, so
// two nodes that disagree about the leader cannot bounce a request between them.

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ConfluxError } from '../errors.js';
import { RaftError } from '../raft/errors.js';
import { splitHostPort } from '../shapes/address.js';

export const FORWARDED_BY = 'x-conflux-forwarded-by';
/** The original client's address on a forwarded request (see client-address.ts). */
export const FORWARDED_FOR = 'x-conflux-forwarded-for';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
]);

export interface ForwardOptions {
  selfId: string;
  /** TLS material used as a client when the peer's API is HTTPS. */
  tls?: { cert: string | Buffer; key: string | Buffer; ca: string | Buffer | (string | Buffer)[] };
  timeoutMs: number;
  /**
   * Sends the request and returns the leader's whole answer, instead of node:http (the
   * simulator, node/sim, carries it over its network). Rejects as a connection error would:
   * `code: 'ECONNREFUSED'` when nothing listens there.
   */
  dispatch?: ForwardDispatcher;
}

export interface ForwardedRequest {
  host: string;
  port: number;
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body: Buffer | undefined;
}

export interface ForwardedAnswer {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: Buffer;
}

export type ForwardDispatcher = (req: ForwardedRequest) => Promise<ForwardedAnswer>;

/**
 * Proxy `req` to the leader's API and stream its answer back. `client` is the address the
 * request came from: the leader keys its per-client limits by it (client-address.ts says when it
 * believes it); a value the client sent itself is replaced.
 */
export function proxyToLeader(
  req: FastifyRequest,
  reply: FastifyReply,
  leaderApiAddr: string,
  opts: ForwardOptions,
  client: string,
): Promise<void> {
  if (req.headers[FORWARDED_BY]) {
    // Forwarded here because we led a moment ago: the forwarding node waits for the new leader.
    return Promise.reject(new RaftError('NOT_LEADER', 'the leader changed while the request was forwarded'));
  }
  const [host, port] = splitHostPort(leaderApiAddr);
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  }
  headers[FORWARDED_BY] = opts.selfId;
  headers[FORWARDED_FOR] = client;
  const body = Buffer.isBuffer(req.body) ? req.body : undefined;
  if (body) headers['content-length'] = String(body.byteLength);
  if (opts.dispatch) {
    const request = { host, port, method: req.method, path: req.url, headers, body };
    return dispatched(opts.dispatch, request, reply, leaderApiAddr);
  }
  const send = opts.tls ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const upstream = send(
      {
        host,
        port,
        method: req.method,
        path: req.url,
        headers,
        timeout: opts.timeoutMs,
        ...(opts.tls ?? {}),
      },
      (res) => {
        if (res.statusCode === 503) {
          // The leader refused before proposing anything (it is handing over, or lost its lead):
          // surface that as NO_LEADER so the caller can wait for the next leader and try again.
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const refused = unproposedRefusal(Buffer.concat(chunks));
            if (refused) reject(new ConfluxError('NO_LEADER', `${leaderApiAddr}: ${refused}`));
            else {
              reply.hijack();
              reply.raw.writeHead(503, { 'content-type': 'application/json' });
              reply.raw.end(Buffer.concat(chunks));
              resolve();
            }
          });
          res.on('error', resolve);
          return;
        }
        reply.hijack();
        const out: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
        }
        reply.raw.writeHead(res.statusCode ?? 502, out);
        res.pipe(reply.raw);
        res.on('end', resolve);
        res.on('error', resolve);
      },
    );
    upstream.on('timeout', () => upstream.destroy(new Error('timeout')));
    upstream.on('error', (err) => reject(unreachable(err, leaderApiAddr)));
    upstream.end(body);
  });
}

/** A refused connection delivered nothing: as good as no leader. Any other failure may have
 * delivered the request, so its outcome is unknown and it is not retried. */
function unreachable(err: unknown, leaderApiAddr: string): ConfluxError {
  const refused = (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  return new ConfluxError(
    refused ? 'NO_LEADER' : 'LEADER_UNREACHABLE',
    `could not reach the leader at ${leaderApiAddr}: ${(err as Error).message}`,
  );
}

/** proxyToLeader through `dispatch`: the same answers, the leader's answer sent whole. */
async function dispatched(
  dispatch: ForwardDispatcher,
  request: ForwardedRequest,
  reply: FastifyReply,
  leaderApiAddr: string,
): Promise<void> {
  let answer: ForwardedAnswer;
  try {
    answer = await dispatch(request);
  } catch (err) {
    throw unreachable(err, leaderApiAddr);
  }
  if (answer.status === 503) {
    const refused = unproposedRefusal(answer.body);
    if (refused) throw new ConfluxError('NO_LEADER', `${leaderApiAddr}: ${refused}`);
  }
  reply.hijack();
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(answer.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name))
      out[name] = typeof value === 'number' ? String(value) : value;
  }
  reply.raw.writeHead(answer.status, out);
  reply.raw.end(answer.body);
}

/** Codes with which a leader refuses a request before proposing it: safe to send again. */
export const UNPROPOSED_CODES = new Set(['NOT_LEADER', 'TRANSFER_IN_PROGRESS', 'NO_LEADER']);

function unproposedRefusal(body: Buffer): string | null {
  try {
    const err = (JSON.parse(body.toString('utf8')) as { error?: { code?: string; message?: string } }).error;
    return err?.code && UNPROPOSED_CODES.has(err.code) ? `${err.code}: ${err.message ?? ''}` : null;
  } catch {
    return null;
  }
}

/** 307 to the same path on the leader. */
export function redirectToLeader(
  req: FastifyRequest,
  reply: FastifyReply,
  leaderApiAddr: string,
  https: boolean,
): void {
  reply.redirect(`${https ? 'https' : 'http'}://${leaderApiAddr}${req.url}`, 307);
}
