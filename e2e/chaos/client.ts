// The client side of the chaos workload: one HTTP call per operation of the KV model
// (node/raft/sim/kv-model.ts). Reads are linearizable GETs; put is PUT; compare-and-set on the
// value is a transaction (compare value = expected, or exists = false for "absent").
//
// Outcomes: an answer the API documents is definite. A refusal with a code the API promises was
// never proposed (NOT_LEADER, NO_LEADER, TRANSFER_IN_PROGRESS) is definite too: the write did not
// happen, and the checker holds Conflux to that; so is a refused connection. Anything else (timeout, reset connection, another
// error) is unknown: the write may or may not have happened.

import { z } from 'zod';
import type { KvInput, KvOutput } from '../../node/raft/sim/kv-model.js';

export const NOT_PROPOSED = new Set(['NOT_LEADER', 'NO_LEADER', 'TRANSFER_IN_PROGRESS']);

export type Outcome =
  | { kind: 'ok'; output: KvOutput }
  /** Definitely did not take effect. */
  | { kind: 'refused'; code: string }
  | { kind: 'unknown'; reason: string };

const errorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const getBody = z.object({ value: z.string() });
const txnBody = z.object({ succeeded: z.boolean() });
const putBody = z.object({ revision: z.number() });

export type ReadConsistency = 'linearizable' | 'serializable';

export async function callKv(
  baseUrl: string,
  input: KvInput,
  timeoutMs: number,
  consistency: ReadConsistency = 'linearizable',
): Promise<Outcome> {
  const key = encodeURIComponent(input.key).replace(/%2F/g, '/');
  let res: Response;
  let text: string;
  try {
    const signal = AbortSignal.timeout(timeoutMs);
    res = await send(`${baseUrl}/v1`, key, input, signal, consistency);
    text = await res.text();
  } catch (err) {
    // A refused connection never carried the request: definitely not applied.
    const cause = (err as { cause?: { code?: unknown } }).cause?.code;
    if (cause === 'ECONNREFUSED') return { kind: 'refused', code: 'ECONNREFUSED' };
    if ((err as Error).name === 'TimeoutError') return { kind: 'unknown', reason: 'timeout' };
    return { kind: 'unknown', reason: typeof cause === 'string' ? cause : 'connection' };
  }
  const body = safeJson(text);
  if (res.status === 200) {
    if (input.op === 'get') {
      const v = getBody.safeParse(body);
      if (v.success) return { kind: 'ok', output: { value: v.data.value } };
    } else if (input.op === 'cas') {
      const t = txnBody.safeParse(body);
      if (t.success) return { kind: 'ok', output: { ok: t.data.succeeded } };
    } else if (putBody.safeParse(body).success) return { kind: 'ok', output: { ok: true } };
    return { kind: 'unknown', reason: `unexpected body ${text.slice(0, 100)}` };
  }
  const err = errorBody.safeParse(body);
  const code = err.success ? err.data.error.code : `HTTP_${res.status}`;
  if (input.op === 'get' && code === 'KEY_NOT_FOUND') return { kind: 'ok', output: { value: null } };
  if (NOT_PROPOSED.has(code)) return { kind: 'refused', code };
  return { kind: 'unknown', reason: code };
}

function send(
  base: string,
  key: string,
  input: KvInput,
  signal: AbortSignal,
  consistency: ReadConsistency,
): Promise<Response> {
  switch (input.op) {
    case 'get':
      return fetch(`${base}/kv/${key}?consistency=${consistency}`, { signal });
    case 'put':
      return fetch(`${base}/kv/${key}`, { method: 'PUT', body: input.value, signal });
    case 'delete':
      return fetch(`${base}/kv/${key}`, { method: 'DELETE', signal });
    case 'cas': {
      const compare =
        input.expected === null
          ? [{ key: input.key, target: 'exists', op: '=', operand: false }]
          : [{ key: input.key, target: 'value', op: '=', value: input.expected }];
      const success = [{ type: 'put', key: input.key, value: input.value }];
      return fetch(`${base}/txn`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ compare, success, failure: [] }),
        signal,
      });
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
