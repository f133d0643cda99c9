// `conflux kv get|put|del|ls|watch`: the client API (DESIGN §7). --json prints the API's documents.

import { readFile } from 'node:fs/promises';
import { CliError, type CommandContext, callJson, json } from './context.js';

interface KvJson {
  key: string;
  value: string;
  encoding?: 'base64';
  createRevision: number;
  modRevision: number;
  version: number;
}

interface EventJson {
  type: 'put' | 'delete';
  revision: number;
  kv: KvJson;
}

const keyPath = (key: string) => `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`;

function valueText(kv: KvJson): string {
  return kv.encoding === 'base64' ? `(base64) ${kv.value}` : kv.value;
}

function checkKey(key: string): void {
  if (key === '') throw new CliError('error: the key must not be empty', 2);
}

export async function kvGet(ctx: CommandContext, key: string, o: { serializable?: boolean }): Promise<void> {
  checkKey(key);
  const q = o.serializable ? '?consistency=serializable' : '';
  const doc = (await callJson(ctx.target.apiUrl, {
    method: 'GET',
    path: keyPath(key) + q,
    tls: ctx.target.tls,
  })) as KvJson;
  ctx.io.stdout(ctx.target.json ? json(doc) : valueText(doc));
}

export async function kvPut(
  ctx: CommandContext,
  key: string,
  value: string | undefined,
  o: { file?: string; cas?: string },
): Promise<void> {
  checkKey(key);
  if ((value === undefined) === (o.file === undefined))
    throw new CliError('error: give either VALUE or --file PATH', 2);
  let body: Buffer;
  if (o.file !== undefined) {
    try {
      body = await readFile(o.file);
    } catch (err) {
      throw new CliError(`error: --file ${o.file}: ${(err as Error).message}`, 1);
    }
  } else body = Buffer.from(value ?? '', 'utf8');
  const q = o.cas !== undefined ? `?cas=${encodeURIComponent(revisionArg('--cas', o.cas))}` : '';
  const doc = (await callJson(ctx.target.apiUrl, {
    method: 'PUT',
    path: keyPath(key) + q,
    body,
    tls: ctx.target.tls,
  })) as { revision: number };
  ctx.io.stdout(ctx.target.json ? json(doc) : `OK ${key} (revision ${doc.revision})`);
}

export async function kvDel(ctx: CommandContext, key: string, o: { cas?: string }): Promise<void> {
  checkKey(key);
  const q = o.cas !== undefined ? `?cas=${encodeURIComponent(revisionArg('--cas', o.cas))}` : '';
  const doc = (await callJson(ctx.target.apiUrl, {
    method: 'DELETE',
    path: keyPath(key) + q,
    tls: ctx.target.tls,
  })) as { revision: number; deleted: boolean };
  ctx.io.stdout(
    ctx.target.json
      ? json(doc)
      : doc.deleted
        ? `deleted ${key} (revision ${doc.revision})`
        : `${key} did not exist (revision ${doc.revision})`,
  );
}

/** Every key under the prefix, page by page (`after=next`); --json prints each page's document. */
export async function kvLs(
  ctx: CommandContext,
  prefix: string | undefined,
  o: { pageSize?: string; serializable?: boolean },
): Promise<void> {
  const limit = o.pageSize !== undefined ? positive('--page-size', o.pageSize) : 500;
  let after: string | undefined;
  let count = 0;
  for (;;) {
    const q = new URLSearchParams({ prefix: prefix ?? '', limit: String(limit) });
    if (after !== undefined) q.set('after', after);
    if (o.serializable) q.set('consistency', 'serializable');
    const doc = (await callJson(ctx.target.apiUrl, {
      method: 'GET',
      path: `/v1/kv?${q}`,
      tls: ctx.target.tls,
    })) as { kvs: KvJson[]; more: boolean; next?: string; revision: number };
    if (ctx.target.json) ctx.io.stdout(JSON.stringify(doc));
    else for (const kv of doc.kvs) ctx.io.stdout(`${kv.key}\t${valueText(kv)}`);
    count += doc.kvs.length;
    if (!doc.more || doc.next === undefined) {
      if (!ctx.target.json) ctx.io.stderr(`${count} key${count === 1 ? '' : 's'} (revision ${doc.revision})`);
      return;
    }
    after = doc.next;
  }
}

/** Long-polls `/v1/watch` and prints events until interrupted (or after one answer with --once). */
export async function kvWatch(
  ctx: CommandContext,
  prefix: string,
  o: { from?: string; once?: boolean; timeoutMs?: string },
): Promise<void> {
  let from = o.from !== undefined ? revisionArg('--from', o.from) : undefined;
  const timeoutMs = o.timeoutMs !== undefined ? positive('--timeout-ms', o.timeoutMs) : 30_000;
  while (!ctx.signal?.aborted) {
    const q = new URLSearchParams({ prefix, timeout_ms: String(timeoutMs) });
    if (from !== undefined) q.set('from_revision', String(from));
    const doc = (await callJson(ctx.target.apiUrl, {
      method: 'GET',
      path: `/v1/watch?${q}`,
      tls: ctx.target.tls,
      timeoutMs: timeoutMs + 10_000,
    })) as { events: EventJson[]; nextRevision: number; revision: number };
    if (ctx.target.json) {
      if (doc.events.length > 0 || o.once) ctx.io.stdout(JSON.stringify(doc));
    } else {
      for (const e of doc.events) {
        ctx.io.stdout(
          e.type === 'put'
            ? `${e.revision} PUT ${e.kv.key} = ${valueText(e.kv)}`
            : `${e.revision} DELETE ${e.kv.key}`,
        );
      }
    }
    from = doc.nextRevision;
    if (o.once) return;
  }
}

function revisionArg(flag: string, raw: string): number {
  if (!/^\d+$/.test(raw)) throw new CliError(`error: ${flag}: expected a revision, got ${raw}`, 2);
  return Number(raw);
}

export function positive(flag: string, raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) < 1)
    throw new CliError(`error: ${flag}: expected a whole number ≥ 1, got ${raw}`, 2);
  return Number(raw);
}
