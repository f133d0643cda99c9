// The simulated clients' path through a node's HTTP API (node/api): the request as the API
// receives it, its answer classified as the model needs it (a definite refusal, a definite
// answer, or an unknown outcome), and writes spelled as the API's PUT, DELETE and txn bodies.

import type { InjectOptions } from 'fastify';
import { decodeValue, type KeyValueJson } from '../api/json.js';
import type { KvCommand } from '../kv/commands.js';
import type { KeyValue, KvApplyResult } from '../kv/types.js';
import type { Life } from './cluster.js';
import { inject, keyPath } from './http.js';
import { OP_TIMEOUT_MS, type Settled, settle } from './settle.js';
import type { Workload } from './workload.js';

/** Codes that say the request was not proposed: nothing happened. */
const DEFINITE_REFUSALS = new Set([
  'NOT_LEADER',
  'TRANSFER_IN_PROGRESS',
  'NO_LEADER',
  'PROPOSAL_DROPPED',
  'READ_ABORTED',
  'NOT_INITIALIZED',
]);

/** The API refused before proposing (DEFINITE_REFUSALS); `leader` from the fencing header. */
export class HttpRefusal extends Error {
  constructor(
    readonly code: string,
    readonly leader: string | null,
  ) {
    super(code);
  }
}

interface HttpAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: the API's JSON, read field by field
  json: any;
  /** x-conflux-revision of the node that produced the answer. */
  revision: number;
}

export interface Written {
  result: KvApplyResult;
  /** The command created a revision. */
  changed: boolean;
}

/** Commands the HTTP API can express with an answer the model can check (a CAS by revision
 * answers COMPARE_FAILED without the current value, so it stays on the direct path). */
export const viaHttp = (cmd: KvCommand): boolean =>
  !(cmd.type === 'put' && cmd.expectModRevision !== undefined);

export const fromJson = (j: KeyValueJson): KeyValue => ({
  key: j.key,
  value: decodeValue(j.value, j.encoding),
  createRevision: j.createRevision,
  modRevision: j.modRevision,
  version: j.version,
});

/** The request through the node's HTTP API; a definite refusal is an HttpRefusal. */
export async function httpRequest(
  w: Workload,
  life: Life,
  opts: InjectOptions,
): Promise<Settled<HttpAnswer>> {
  w.coverage.httpRequests++;
  const r = await settle(w.world, life, inject(life, opts), OP_TIMEOUT_MS);
  if (r.kind === 'unknown') return r;
  if (r.kind === 'error') {
    w.violation(`the HTTP API threw instead of answering ${opts.method} ${opts.url}: ${String(r.err)}`);
    return { kind: 'unknown' };
  }
  const res = r.value;
  // biome-ignore lint/suspicious/noExplicitAny: the API's JSON, read field by field
  let json: any;
  try {
    json = JSON.parse(res.body);
  } catch {
    w.violation(
      `${life.id} answered ${opts.method} ${opts.url} with ${res.statusCode} and no JSON: ${res.body}`,
    );
    return { kind: 'unknown' };
  }
  const code: string | undefined = json?.error?.code;
  if (res.statusCode < 300 || code === 'KEY_NOT_FOUND') {
    return {
      kind: 'ok',
      value: { status: res.statusCode, json, revision: Number(res.headers['x-conflux-revision']) },
    };
  }
  if (res.statusCode === 500 || code === undefined) {
    w.violation(`${life.id} answered ${opts.method} ${opts.url} with ${res.statusCode}: ${res.body}`);
    return { kind: 'unknown' };
  }
  if (DEFINITE_REFUSALS.has(code)) {
    const leader = res.headers['x-conflux-leader'];
    return {
      kind: 'error',
      err: new HttpRefusal(code, typeof leader === 'string' && leader ? leader : null),
    };
  }
  // TIMEOUT, LEADER_UNREACHABLE, ...: the command may or may not apply.
  return { kind: 'unknown' };
}

/** A write through the node's HTTP API (viaHttp), answered as the KvStore would. */
export async function httpWrite(w: Workload, life: Life, cmd: KvCommand): Promise<Settled<Written>> {
  const headers = { 'content-type': 'application/octet-stream' };
  let r: Settled<HttpAnswer>;
  if (cmd.type === 'put') {
    r = await httpRequest(w, life, {
      method: 'PUT',
      url: keyPath(cmd.key),
      headers,
      payload: Buffer.from(cmd.value),
    });
    if (r.kind !== 'ok') return r;
    return {
      kind: 'ok',
      value: { result: { type: 'put', ok: true, revision: r.value.json.revision }, changed: true },
    };
  }
  if (cmd.type === 'delete') {
    r = await httpRequest(w, life, { method: 'DELETE', url: keyPath(cmd.key) });
    if (r.kind !== 'ok') return r;
    const { revision, deleted } = r.value.json;
    const result = {
      type: 'delete',
      revision,
      prev: deleted ? ({} as KeyValue) : undefined,
    } as KvApplyResult;
    return { kind: 'ok', value: { result, changed: deleted === true } };
  }
  if (cmd.type !== 'txn') throw new Error(`no HTTP form for ${(cmd as KvCommand).type}`);
  const b64 = (v: Uint8Array) => ({ value: Buffer.from(v).toString('base64'), encoding: 'base64' });
  const op = (o: (typeof cmd.success)[number]) =>
    o.type === 'put' ? { type: 'put', key: o.key, ...b64(o.value) } : o;
  const body = {
    compare: cmd.compare.map((c) => {
      if (c.target !== 'value') return c;
      const { operand, ...rest } = c;
      return { ...rest, ...b64(operand as Uint8Array) };
    }),
    success: cmd.success.map(op),
    failure: cmd.failure.map(op),
  };
  r = await httpRequest(w, life, {
    method: 'POST',
    url: '/v1/txn',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(body),
  });
  if (r.kind !== 'ok') return r;
  const { succeeded, revision, responses } = r.value.json;
  const result = {
    type: 'txn',
    succeeded,
    revision,
    responses: (responses as { type: string; kv?: KeyValueJson; prev?: KeyValueJson }[]).map((x) => ({
      type: x.type,
      ...(x.kv ? { kv: fromJson(x.kv) } : {}),
      ...(x.prev ? { prev: fromJson(x.prev) } : {}),
    })),
  } as KvApplyResult;
  const writes = succeeded && cmd.success.some((o) => o.type === 'put');
  return { kind: 'ok', value: { result, changed: writes } };
}
