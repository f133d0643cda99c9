// A small JSON client for another node's admin port: status aggregation, bootstrap joins and the
// add flow's prepare call use it. Over TLS it presents this node's certificate (role
// O=conflux-node, which the admin port admits on /_internal/*); plain HTTP in --dev-insecure mode.

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { z } from 'zod';
import { CONFLUX_ERROR_CODES, ConfluxError, type ConfluxErrorCode } from '../errors.js';
import { splitHostPort } from '../shapes/address.js';

export interface AdminClientOptions {
  tls?: { cert: string | Buffer; key: string | Buffer; ca: string | Buffer | (string | Buffer)[] };
  timeoutMs: number;
  headers?: Record<string, string>;
}

/** The methods the admin routes answer. */
export type AdminMethod = 'GET' | 'POST' | 'DELETE';

/** One request to an admin port, as sent to each address a redirect leads to. */
interface AdminRequest {
  method: AdminMethod;
  path: string;
  body: unknown;
}

export interface AdminAnswer {
  status: number;
  body: unknown;
  /** The Location header of a 202 or 307, if any. */
  location?: string;
}

/** Largest answer read from a peer: status documents are small; anything bigger is refused. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/**
 * One call; rejects with NODE_UNREACHABLE on a network error or timeout, never on an HTTP status.
 * A follower answers leader-only calls with 307 and the leader's admin URL (admin-routes.ts): the
 * call is repeated there (up to three hops), with the same method, body and certificate.
 */
export async function adminCall(
  address: string,
  method: AdminMethod,
  path: string,
  body: unknown,
  opts: AdminClientOptions,
): Promise<AdminAnswer> {
  const request: AdminRequest = { method, path, body };
  let answer = await adminCallOnce(address, request, opts);
  // A few hops: the leader may hand leadership on while it acts (removing itself) and redirect again.
  for (let hop = 0; hop < MAX_REDIRECTS && answer.status === 307; hop++) {
    const leader = redirectTarget(answer.location, path, opts);
    if (!leader) break;
    answer = await adminCallOnce(leader, request, opts);
  }
  return answer;
}

/** Redirects followed before a 307 is handed to the caller as it is. */
const MAX_REDIRECTS = 3;

/** The `host:port` a 307 points at, if it names the same path over the same scheme. */
function redirectTarget(location: string | undefined, path: string, opts: AdminClientOptions): string | null {
  if (!location) return null;
  try {
    const url = new URL(location);
    const scheme = opts.tls ? 'https:' : 'http:';
    return url.protocol === scheme && `${url.pathname}${url.search}` === path ? url.host : null;
  } catch {
    return null;
  }
}

function adminCallOnce(
  address: string,
  { method, path, body }: AdminRequest,
  opts: AdminClientOptions,
): Promise<AdminAnswer> {
  const [host, port] = splitHostPort(address);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const send = opts.tls ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const unreachable = (why: string) =>
      new ConfluxError('NODE_UNREACHABLE', `${method} ${path} on ${address}: ${why}`, { address });
    const req = send(
      {
        host,
        port,
        method,
        path,
        timeout: opts.timeoutMs,
        headers: {
          ...opts.headers,
          ...(payload
            ? { 'content-type': 'application/json', 'content-length': String(payload.byteLength) }
            : {}),
        },
        ...(opts.tls ?? {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.byteLength;
          if (size > MAX_ANSWER_BYTES) req.destroy(new Error('answer too large'));
          else chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = null;
          try {
            parsed = text ? JSON.parse(text) : null;
          } catch {
            reject(unreachable(`answered ${res.statusCode} with a body that is not JSON`));
            return;
          }
          const location = res.headers.location;
          resolve({ status: res.statusCode ?? 0, body: parsed, ...(location ? { location } : {}) });
        });
        res.on('error', (err) => reject(unreachable(err.message)));
      },
    );
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    req.on('close', () => clearTimeout(timer));
    req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)));
    req.on('error', (err) => reject(unreachable(err.message)));
    req.end(payload);
  });
}

/** A call whose 2xx answer must match `schema`; a catalogued error answer is rethrown as such. */
export async function adminCallParsed<S extends z.ZodType>(
  schema: S,
  address: string,
  method: AdminMethod,
  path: string,
  body: unknown,
  opts: AdminClientOptions,
): Promise<z.output<S>> {
  const answer = await adminCall(address, method, path, body, opts);
  if (answer.status < 200 || answer.status >= 300) throw remoteError(address, answer);
  const parsed = schema.safeParse(answer.body);
  if (!parsed.success) {
    throw new ConfluxError('NODE_UNREACHABLE', `${address} answered ${path} with an unexpected document`, {
      address,
    });
  }
  return parsed.data;
}

/** The error a peer answered with, as a ConfluxError carrying its code and message. */
export function remoteError(address: string, answer: AdminAnswer): ConfluxError {
  const err = (answer.body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const message = typeof err?.message === 'string' ? err.message : `HTTP ${answer.status}`;
  const code = typeof err?.code === 'string' ? err.code : 'unknown';
  const known = (CONFLUX_ERROR_CODES as readonly string[]).includes(code) && code !== 'INTERNAL';
  return new ConfluxError(
    known ? (code as ConfluxErrorCode) : 'NODE_UNREACHABLE',
    `${address} refused: ${message}`,
    { address, remote_code: code, remote_status: answer.status },
  );
}
