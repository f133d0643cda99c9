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

/** Ends a command: its message goes to stderr as is, then the process exits with `exitCode`. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
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
  adminUrl: URL;
  apiUrl: URL;
  /** The scale endpoint of `npm start` (null when the admin URL names another cluster). */
  controlUrl: URL | null;
  /** True when --admin (or CONFLUX_ADMIN_URL) was given, false for the default local cluster. */
  explicitAdmin: boolean;
  tls: Tls | undefined;
  json: boolean;
}

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
  const adminUrl = admin ? parseUrl('--admin', admin, secure) : new URL(`http://127.0.0.1:${base + 200}`);
  const apiUrl = api ? parseUrl('--api', api, secure) : new URL(`http://127.0.0.1:${base + 100}`);
  const local = !admin || isLoopback(adminUrl);
  return {
    adminUrl,
    apiUrl,
    controlUrl: local ? new URL(`http://127.0.0.1:${base - 1}`) : null,
    explicitAdmin: Boolean(admin),
    tls,
    json: Boolean(opts.json),
  };
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface HttpRequest {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** Path and query, appended to the base URL. */
  path: string;
  body?: Buffer | string | undefined;
  json?: unknown;
  timeoutMs?: number;
  tls?: Tls | undefined;
}

/** One HTTP call; network failures become CliErrors (exit 1) with the `npm start` hint. */
export function httpCall(base: URL, r: HttpRequest): Promise<HttpAnswer> {
  const url = new URL(r.path, base);
  const payload = r.json !== undefined ? Buffer.from(JSON.stringify(r.json)) : r.body;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const timeoutMs = r.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
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
        res.on('error', (err) => reject(networkError(url, err)));
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', (err) => reject(networkError(url, err)));
    req.end(payload);
  });
}

function networkError(url: URL, err: Error & { code?: string }): CliError {
  const where = `${url.protocol}//${url.host}`;
  const refused = err.code === 'ECONNREFUSED' || err.code === 'ENOTFOUND' || err.code === 'EHOSTUNREACH';
  return new CliError(`error: cannot reach ${where}: ${err.message}${refused ? `\n${START_HINT}` : ''}`, 1);
}

/** The error an answer carries: `CODE: message` for a catalogued error, else the HTTP status. */
export function answerError(answer: HttpAnswer): CliError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const doc = parsed as { error?: { code?: unknown; message?: unknown }; message?: unknown } | undefined;
  const code = doc?.error?.code;
  const message = doc?.error?.message ?? doc?.message;
  if (typeof code === 'string')
    return new CliError(
      `error: ${code}: ${typeof message === 'string' ? message : `HTTP ${answer.status}`}`,
      1,
    );
  const text = typeof message === 'string' ? message : answer.body.toString('utf8').slice(0, 500).trim();
  return new CliError(`error: HTTP ${answer.status}${text ? `: ${text}` : ''}`, 1);
}

/** A call whose 2xx answer is JSON; anything else is an error. */
export async function callJson(base: URL, r: HttpRequest): Promise<unknown> {
  const answer = await httpCall(base, r);
  if (answer.status < 200 || answer.status >= 300) throw answerError(answer);
  try {
    return JSON.parse(answer.body.toString('utf8'));
  } catch {
    throw new CliError(`error: ${base.host} answered ${r.path} with a body that is not JSON`, 1);
  }
}

/** A JSON call checked against a schema (the admin contract's answers). */
export async function callParsed<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } },
  base: URL,
  r: HttpRequest,
): Promise<{ doc: unknown; data: T }> {
  const doc = await callJson(base, r);
  const parsed = schema.safeParse(doc);
  if (!parsed.success)
    throw new CliError(`error: ${base.host} answered ${r.path} with an unexpected document`, 1);
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
