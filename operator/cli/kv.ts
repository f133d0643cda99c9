// `conflux kv get|put|del|ls|watch`: the client API (docs/ARCHITECTURE.md §6). --json prints the
// API's documents.

import { readFile } from 'node:fs/promises';
import { CliError, type CommandContext, errorOf, httpCall, json, jsonOf } from './context.js';
import { callMember, discover, holdsNoCluster, type MemberRequest, unreachable } from './members.js';

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

/** A client API call to the first member that takes it (followers forward to the leader). */
async function apiJson(ctx: CommandContext, r: MemberRequest): Promise<unknown> {
  const { url, answer } = await callMember(ctx, 'api', r);
  return jsonOf(url, r.path, answer);
}

function checkKey(key: string): void {
  if (key === '') throw new CliError('error: the key must not be empty', 2);
}

export async function kvGet(ctx: CommandContext, key: string, o: { serializable?: boolean }): Promise<void> {
  checkKey(key);
  const q = o.serializable ? '?consistency=serializable' : '';
  const doc = (await apiJson(ctx, {
    method: 'GET',
    path: keyPath(key) + q,
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
  const doc = (await apiJson(ctx, {
    method: 'PUT',
    path: keyPath(key) + q,
    body,
  })) as { revision: number };
  ctx.io.stdout(ctx.target.json ? json(doc) : `OK ${key} (revision ${doc.revision})`);
}

export async function kvDel(ctx: CommandContext, key: string, o: { cas?: string }): Promise<void> {
  checkKey(key);
  const q = o.cas !== undefined ? `?cas=${encodeURIComponent(revisionArg('--cas', o.cas))}` : '';
  const doc = (await apiJson(ctx, {
    method: 'DELETE',
    path: keyPath(key) + q,
  })) as { revision: number; deleted: boolean };
  ctx.io.stdout(
    ctx.target.json
      ? json(doc)
      : doc.deleted
        ? `deleted ${key} (revision ${doc.revision})`
        : `${key} did not exist (revision ${doc.revision})`,
  );
}

/**
 * Every key under the prefix, page by page (`after=next`). --json prints one document of the API's
 * shape holding every page's keys, at the first page's revision (a watch from revision + 1 misses
 * nothing of what was listed).
 */
export async function kvLs(
  ctx: CommandContext,
  prefix: string | undefined,
  o: { pageSize?: string; serializable?: boolean },
): Promise<void> {
  const limit = o.pageSize !== undefined ? positive('--page-size', o.pageSize) : 500;
  let after: string | undefined;
  const all: KvJson[] = [];
  let first: number | undefined;
  let count = 0;
  for (;;) {
    const q = new URLSearchParams({ prefix: prefix ?? '', limit: String(limit) });
    if (after !== undefined) q.set('after', after);
    if (o.serializable) q.set('consistency', 'serializable');
    const doc = (await apiJson(ctx, {
      method: 'GET',
      path: `/v1/kv?${q}`,
    })) as { kvs: KvJson[]; more: boolean; next?: string; revision: number };
    first ??= doc.revision;
    if (ctx.target.json) all.push(...doc.kvs);
    else for (const kv of doc.kvs) ctx.io.stdout(`${kv.key}\t${valueText(kv)}`);
    count += doc.kvs.length;
    if (!doc.more || doc.next === undefined) {
      if (ctx.target.json) ctx.io.stdout(json({ kvs: all, more: false, revision: first }));
      else ctx.io.stderr(`${count} key${count === 1 ? '' : 's'} (revision ${first})`);
      return;
    }
    after = doc.next;
  }
}

type WatchAnswer = { events: EventJson[]; nextRevision: number; revision: number };

/**
 * One long poll of /v1/watch on one member. `null` when the member has compacted the revisions
 * asked for and `tryAnother()` says another member may still hold them (its history may be
 * longer: this one restarted); a member that is down, overloaded or holds no cluster throws
 * UNREACHABLE.
 */
async function pollWatch(
  ctx: CommandContext,
  url: URL,
  path: string,
  timeoutMs: number,
  tryAnother: () => boolean,
): Promise<WatchAnswer | null> {
  const answer = await httpCall(url, {
    method: 'GET',
    path,
    tls: ctx.target.tls,
    timeoutMs: timeoutMs + 10_000,
  });
  const e = errorOf(answer);
  if (e?.code === 'COMPACTED' && tryAnother()) return null;
  if (holdsNoCluster(answer))
    throw new CliError('holds no cluster', 1, { code: 'UNREACHABLE', message: 'holds no cluster' });
  if (answer.status >= 500 || answer.status === 429)
    throw new CliError(`${answer.status} ${e?.code ?? ''}`.trim(), 1, {
      code: 'UNREACHABLE',
      message: `${answer.status} ${e?.code ?? ''}`,
    });
  return jsonOf(url, path, answer) as WatchAnswer;
}

/** Prints one poll's events: a line each, or the whole answer as JSON (also when empty if `final`). */
function printWatched(ctx: CommandContext, doc: WatchAnswer, final: boolean): void {
  if (ctx.target.json) {
    if (doc.events.length > 0 || final) ctx.io.stdout(JSON.stringify(doc));
    return;
  }
  for (const e of doc.events) {
    ctx.io.stdout(
      e.type === 'put'
        ? `${e.revision} PUT ${e.kv.key} = ${valueText(e.kv)}`
        : `${e.revision} DELETE ${e.kv.key}`,
    );
  }
}

/**
 * Long-polls `/v1/watch` and prints events until interrupted (or after one answer with --once).
 * Every poll names its start (`from_revision`), and the next one starts at the answer's
 * `nextRevision`, so when a member goes away (restarts, crashes) the watch goes on at another
 * member (or the same one, back) from the last revision it printed: nothing lost, nothing twice.
 */
export async function kvWatch(
  ctx: CommandContext,
  prefix: string,
  o: { from?: string; once?: boolean; timeoutMs?: string },
): Promise<void> {
  let from = o.from !== undefined ? revisionArg('--from', o.from) : undefined;
  const timeoutMs = o.timeoutMs !== undefined ? positive('--timeout-ms', o.timeoutMs) : 30_000;
  const members = [...ctx.target.apis];
  const note = (text: string) => {
    if (!ctx.target.json) ctx.io.stderr(text);
  };
  let at = 0;
  let lost: string | undefined;
  let failed: string[] = [];
  let compacted = 0;
  let rounds = 0;
  while (!ctx.signal?.aborted) {
    const url = members[at % members.length] as URL;
    // Without --from, the first poll only pins the start (the revision after the current one).
    const pinning = from === undefined;
    const q = new URLSearchParams({ prefix, timeout_ms: String(pinning ? 0 : timeoutMs) });
    if (from !== undefined) q.set('from_revision', String(from));
    const path = `/v1/watch?${q}`;
    let doc: WatchAnswer;
    try {
      const polled = await pollWatch(ctx, url, path, timeoutMs, () => ++compacted < members.length);
      if (polled === null) {
        at++;
        continue;
      }
      doc = polled;
    } catch (err) {
      if (!(err instanceof CliError) || err.detail.code !== 'UNREACHABLE') throw err;
      const reason = (err.detail.message ?? err.message).replace(/^cannot reach \S+: /, '');
      if (lost === undefined) {
        lost = url.host;
        note(
          `watch: lost ${url.host} (${reason}); reconnecting${from !== undefined ? ` from revision ${from}` : ''}…`,
        );
      }
      failed.push(`${url.host} (${reason})`);
      at++;
      if (failed.length >= members.length) {
        // Every member failed this round: give up with --once, else look for more and wait a little.
        if (o.once) throw unreachable(failed);
        for (const u of await discover(ctx, 'api'))
          if (!members.some((m) => m.href === u.href)) members.push(u);
        failed = [];
        await sleep(Math.min(2_000, 100 * 2 ** rounds++), ctx.signal);
      }
      continue;
    }
    if (lost !== undefined) {
      note(`watch: resumed on ${url.host} from revision ${from}`);
      lost = undefined;
    }
    failed = [];
    compacted = 0;
    rounds = 0;
    printWatched(ctx, doc, o.once === true && !pinning);
    from = doc.nextRevision;
    if (o.once && !pinning) return;
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
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
