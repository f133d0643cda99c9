// What every `conflux` command shares: where the cluster is (the local one of `npm start` by
// default, or URLs with certificate files), the output streams, a small HTTP client for both APIs,
// and the errors that end a command with a given exit code.

import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface CliIo {
  /** One line (or block) of output, without the trailing newline. */
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** What a JSON error on stderr says (`{"error": {...}}` with --json). */
export interface ErrorDetail {
  /** A catalogued API code, or USAGE, UNREACHABLE, QUORUM_LOST, FAILED. */
  code?: string;
  message?: string;
  /** More fields of the API's error document (for example `leader`). */
  extra?: Record<string, unknown>;
}

/** Ends a command: its message goes to stderr as is, then the process exits with `exitCode`. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
    readonly detail: ErrorDetail & {
      /** A network failure after the request may have reached the server. */
      sent?: boolean;
    } = {},
  ) {
    super(message);
  }

  /** The `{"error": {code, message, ...}}` document --json prints on stderr. */
  toJson(): { error: Record<string, unknown> } {
    const text = this.message.split('\n')[0]?.replace(/^error: /, '') ?? '';
    const code = this.detail.code ?? (this.exitCode === 2 ? 'USAGE' : 'FAILED');
    const message = this.detail.message ?? text.replace(new RegExp(`^${code}: `), '');
    const hints = this.message
      .split('\n')
      .slice(1)
      .map((l) => l.replace(/^hint: /, ''))
      .filter(Boolean);
    return {
      error: {
        ...this.detail.extra,
        code,
        message,
        ...(hints.length > 0 ? { hint: hints.join(' ') } : {}),
      },
    };
  }
}

export const START_HINT = 'hint: is the cluster running? npm start';

/** The global options, after the environment has filled in what the flags left out. */
export interface GlobalOptions {
  admin?: string;
  api?: string;
  cert?: string;
  key?: string;
  ca?: string;
  json?: boolean;
}

export interface Tls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

export interface Target {
  /** The members' admin URLs to try, in order: --admin's list, or the npm start slots. */
  admins: URL[];
  /** The members' client API URLs to try, in order: --api's list, or the npm start slots. */
  apis: URL[];
  /** The first of each list. */
  adminUrl: URL;
  apiUrl: URL;
  /** The scale endpoint of `npm start` (null when the admin URL names another cluster). */
  controlUrl: URL | null;
  /** True when --admin (or CONFLUX_ADMIN_URL) was given, false for the default local cluster. */
  explicitAdmin: boolean;
  /** True when --api (or CONFLUX_API_URL) was given. */
  explicitApi: boolean;
  /** CONFLUX_BASE_PORT, or 7101. */
  basePort: number;
  /** Whether CONFLUX_BASE_PORT was set. */
  explicitBase: boolean;
  tls: Tls | undefined;
  json: boolean;
}

/** The slots `npm start` runs first (its default of three members). */
export const LOCAL_SLOTS = 3;

export function basePort(env: NodeJS.ProcessEnv): number {
  const raw = env.CONFLUX_BASE_PORT;
  if (raw === undefined || raw === '') return 7101;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 2 || n > 65_000)
    throw new CliError(`error: CONFLUX_BASE_PORT: not a port: ${raw}`, 2);
  return n;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export function isLoopback(url: URL): boolean {
  return LOOPBACK.has(url.hostname);
}

/** `http://h:p`, `https://h:p` or a bare `h:p` (https when certificates are given). */
export function parseUrl(what: string, raw: string, secure: boolean): URL {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `${secure ? 'https' : 'http'}://${raw}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(`error: ${what}: not a URL: ${raw}`, 2);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CliError(`error: ${what}: expected an http:// or https:// URL, got ${raw}`, 2);
  return url;
}

export function resolveTarget(opts: GlobalOptions, env: NodeJS.ProcessEnv): Target {
  const cert = opts.cert ?? env.CONFLUX_CERT;
  const key = opts.key ?? env.CONFLUX_KEY;
  const ca = opts.ca ?? env.CONFLUX_CA;
  let tls: Tls | undefined;
  if (cert || key || ca) {
    if (!cert || !key || !ca) throw new CliError('error: TLS needs all three of --cert, --key and --ca', 2);
    const read = (flag: string, path: string) => {
      try {
        return readFileSync(path);
      } catch (err) {
        throw new CliError(`error: ${flag} ${path}: ${(err as Error).message}`, 1);
      }
    };
    tls = { cert: read('--cert', cert), key: read('--key', key), ca: read('--ca', ca) };
  }
  const base = basePort(env);
  const admin = opts.admin ?? env.CONFLUX_ADMIN_URL;
  const api = opts.api ?? env.CONFLUX_API_URL;
  const secure = tls !== undefined;
  const slots = (offset: number) =>
    Array.from({ length: LOCAL_SLOTS }, (_, k) => new URL(`http://127.0.0.1:${base + offset + k}`));
  const admins = admin ? parseUrls('--admin', admin, secure) : slots(200);
  const apis = api ? parseUrls('--api', api, secure) : slots(100);
  const adminUrl = admins[0] as URL;
  const local = !admin || isLoopback(adminUrl);
  return {
    admins,
    apis,
    adminUrl,
    apiUrl: apis[0] as URL,
    controlUrl: local ? new URL(`http://127.0.0.1:${base - 1}`) : null,
    explicitAdmin: Boolean(admin),
    explicitApi: Boolean(api),
    basePort: base,
    explicitBase: env.CONFLUX_BASE_PORT !== undefined && env.CONFLUX_BASE_PORT !== '',
    tls,
    json: Boolean(opts.json),
  };
}

/** A comma-separated list of members' URLs (`--admin a:7301,b:7301`). */
export function parseUrls(what: string, raw: string, secure: boolean): URL[] {
  const parts = raw
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new CliError(`error: ${what}: expected a URL or a comma-separated list`, 2);
  const urls = parts.map((p) => parseUrl(what, p, secure));
  return urls.filter((u, i) => urls.findIndex((v) => v.href === u.href) === i);
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface HttpRequest {
  method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** Path and query, appended to the base URL. */
  path: string;
  body?: Buffer | string | undefined;
  json?: unknown;
  timeoutMs?: number;
  tls?: Tls | undefined;
}

/**
 * One HTTP call; network failures become CliErrors (exit 1) with the `npm start` hint. A 307 (a
 * follower's admin port pointing at the leader's) is followed, up to three hops, with the same
 * method, body and certificate.
 */
export async function httpCall(base: URL, r: HttpRequest): Promise<HttpAnswer> {
  let answer = await httpCallOnce(new URL(r.path, base), r);
  // A few hops: a leader that hands leadership on while it acts (removing itself) redirects again.
  for (let hop = 0; hop < 3 && answer.status === 307; hop++) {
    const location = answer.headers.location;
    if (typeof location !== 'string') break;
    const next = new URL(location, base);
    if (next.protocol !== base.protocol) break;
    answer = await httpCallOnce(next, r);
  }
  return answer;
}

function httpCallOnce(url: URL, r: HttpRequest): Promise<HttpAnswer> {
  const payload = r.json !== undefined ? Buffer.from(JSON.stringify(r.json)) : r.body;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const timeoutMs = r.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    let connected = false;
    const fail = (err: Error) => reject(networkError(url, err, connected));
    const req = send(
      url,
      {
        method: r.method,
        headers: {
          accept: 'application/json',
          ...(r.json !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(payload !== undefined
            ? {
                'content-type': r.json !== undefined ? 'application/json' : 'application/octet-stream',
                'content-length': String(Buffer.byteLength(payload)),
              }
            : {}),
        },
        ...(url.protocol === 'https:' && r.tls ? { cert: r.tls.cert, key: r.tls.key, ca: r.tls.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', fail);
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', fail);
    req.on('socket', (socket) => {
      // A socket reused from the agent's pool is already connected: the request may arrive.
      if (!socket.connecting) connected = true;
      else socket.once('connect', () => (connected = true));
    });
    req.end(payload);
  });
}

function networkError(url: URL, err: Error & { code?: string }, connected: boolean): CliError {
  const where = `${url.protocol}//${url.host}`;
  const refused = err.code === 'ECONNREFUSED' || err.code === 'ENOTFOUND' || err.code === 'EHOSTUNREACH';
  return new CliError(`error: cannot reach ${where}: ${err.message}${refused ? `\n${START_HINT}` : ''}`, 1, {
    code: 'UNREACHABLE',
    message: `cannot reach ${where}: ${err.message}`,
    sent: connected && !refused,
  });
}

/** The catalogued error an answer carries, if any: `{code, message, leader?, ...}`. */
export function errorOf(
  answer: HttpAnswer,
): ({ code: string; message?: string } & Record<string, unknown>) | null {
  if (answer.status < 400) return null;
  try {
    const doc = JSON.parse(answer.body.toString('utf8')) as { error?: Record<string, unknown> };
    const e = doc?.error;
    return e && typeof e.code === 'string' ? (e as { code: string } & Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The error an answer carries: `CODE: message` for a catalogued error, else the HTTP status. */
export function answerError(answer: HttpAnswer): CliError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const doc = parsed as
    | { error?: Record<string, unknown>; message?: unknown; kind?: unknown; reason?: unknown }
    | undefined;
  // The API's catalogue, or a Kubernetes Status from npm start's control endpoint (its reason).
  const code = doc?.error?.code ?? (doc?.kind === 'Status' ? doc.reason : undefined);
  const message = doc?.error?.message ?? doc?.message;
  if (typeof code === 'string') {
    const text = typeof message === 'string' ? message : `HTTP ${answer.status}`;
    const { code: _c, message: _m, ...extra } = doc?.error ?? {};
    return new CliError(`error: ${code}: ${text}`, 1, { code, message: text, extra });
  }
  const text = typeof message === 'string' ? message : answer.body.toString('utf8').slice(0, 500).trim();
  return new CliError(`error: HTTP ${answer.status}${text ? `: ${text}` : ''}`, 1, {
    code: `HTTP_${answer.status}`,
    message: text || `HTTP ${answer.status}`,
  });
}

/** The JSON body of a 2xx answer; anything else is an error. */
export function jsonOf(base: URL, path: string, answer: HttpAnswer): unknown {
  if (answer.status < 200 || answer.status >= 300) throw answerError(answer);
  try {
    return JSON.parse(answer.body.toString('utf8'));
  } catch {
    throw new CliError(`error: ${base.host} answered ${path} with a body that is not JSON`, 1);
  }
}

export type Schema<T> = { safeParse(v: unknown): { success: true; data: T } | { success: false } };

/** A JSON call checked against a schema (the admin contract's answers). */
export async function callParsed<T>(
  schema: Schema<T>,
  base: URL,
  r: HttpRequest,
): Promise<{ doc: unknown; data: T }> {
  return parsedOf(schema, base, r.path, await httpCall(base, r));
}

export function parsedOf<T>(
  schema: Schema<T>,
  base: URL,
  path: string,
  answer: HttpAnswer,
): { doc: unknown; data: T } {
  const doc = jsonOf(base, path, answer);
  const parsed = schema.safeParse(doc);
  if (!parsed.success)
    throw new CliError(`error: ${base.host} answered ${path} with an unexpected document`, 1);
  return { doc, data: parsed.data };
}

export interface CommandContext {
  io: CliIo;
  target: Target;
  /** Milliseconds between polls of an operation (small in tests). */
  pollMs: number;
  /** Stops a loop (watch, operation polling) early. */
  signal?: AbortSignal | undefined;
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
