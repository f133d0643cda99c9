// The client key-value API (docs/ARCHITECTURE.md §6): get, put, delete, paged prefix range, transactions.
// Reads are linearizable by default (ReadIndex on the leader; followers forward), and
// `?consistency=serializable` reads this node's state as it is.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { authorizeRequest } from '../auth/enforce.js';
import { txnNeeds } from '../auth/permissions.js';
import { ConfluxError } from '../errors.js';
import { txnAnswerBytes, txnAnswerEstimate } from '../kv/answer-size.js';
import { encodeCommand, type KvCommand, type PutCommand } from '../kv/commands.js';
import type { KvApplyResult } from '../kv/types.js';
import { validateKey, validatePrefix } from '../kv/validate.js';
import { RaftError } from '../raft/errors.js';
import { isInitialized } from '../raft/membership.js';
import { type ApiContext, onLeader, withTimeout } from './context.js';
import { checkMinRevision } from './fencing.js';
import { decodeValue, kvJson } from './json.js';
import { parse, queryParser } from './parse.js';

const readQuery = queryParser(
  z.strictObject({
    consistency: z.enum(['linearizable', 'serializable']).default('linearizable'),
    encoding: z.enum(['utf8', 'base64']).optional(),
    raw: z.enum(['true', 'false', '1', '0']).optional(),
  }),
);
const revision = z.coerce.number().int().nonnegative();
const writeQuery = queryParser(
  z.strictObject({ cas: revision.optional(), prev: z.enum(['true', 'false']).optional() }),
);
const rangeQuery = z.strictObject({
  prefix: z.string().default(''),
  after: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
  consistency: z.enum(['linearizable', 'serializable']).default('linearizable'),
  encoding: z.enum(['utf8', 'base64']).optional(),
});

const valueField = { value: z.string(), encoding: z.enum(['utf8', 'base64']).default('utf8') };
const opSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('put'), key: z.string(), ...valueField }),
  z.strictObject({ type: z.literal('delete'), key: z.string() }),
  z.strictObject({ type: z.literal('get'), key: z.string() }),
]);
const compareSchema = z.union([
  z.strictObject({
    key: z.string(),
    target: z.enum(['modRevision', 'createRevision', 'version']),
    op: z.enum(['=', '!=', '<', '>']),
    operand: revision,
  }),
  z.strictObject({
    key: z.string(),
    target: z.literal('value'),
    op: z.enum(['=', '!=', '<', '>']),
    ...valueField,
  }),
  z.strictObject({
    key: z.string(),
    target: z.literal('exists'),
    op: z.enum(['=', '!=']),
    operand: z.boolean(),
  }),
]);
const txnBody = z.strictObject({
  compare: z.array(compareSchema).default([]),
  success: z.array(opSchema).default([]),
  failure: z.array(opSchema).default([]),
});

export function keyOf(req: FastifyRequest, ctx: ApiContext): string {
  const key = (req.params as { '*': string })['*'];
  validateKey(key, ctx.kv.limits);
  return key;
}

/** A linearizable read runs after a ReadIndex barrier on the leader; a serializable one here. */
async function read<T>(
  ctx: ApiContext,
  req: FastifyRequest,
  reply: FastifyReply,
  consistency: 'linearizable' | 'serializable',
  fn: () => T,
): Promise<T | undefined> {
  const local = () => {
    checkMinRevision(ctx, req);
    return fn();
  };
  if (consistency === 'serializable') {
    // A node that belongs to no cluster (one whose data was lost, started again empty) has nothing
    // to serve: an empty answer would look like a cluster without the keys.
    if (!isInitialized(ctx.raft.metrics().membership))
      throw new RaftError('NOT_INITIALIZED', `node ${ctx.nodeId} belongs to no cluster (yet): ask a member`);
    return local();
  }
  return onLeader(ctx, req, reply, async () => {
    await withTimeout(
      ctx.raft.ensureLinearizable(),
      ctx.requestTimeoutMs,
      'the linearizable read',
      ctx.timers,
    );
    return local();
  });
}

/**
 * Propose a command on the leader (forwarding from followers); undefined when answered elsewhere.
 * On the leader, right before proposing: `check` (a refusal that needs the leader's state), then
 * the storage quota.
 */
export function propose(
  ctx: ApiContext,
  req: FastifyRequest,
  reply: FastifyReply,
  cmd: KvCommand,
  check?: () => void,
) {
  ctx.kv.validate(cmd);
  const data = encodeCommand(cmd);
  return onLeader(ctx, req, reply, async (): Promise<KvApplyResult> => {
    check?.();
    const release = ctx.quota.admit(cmd);
    try {
      const { response } = await withTimeout(
        ctx.raft.clientWrite(data),
        ctx.requestTimeoutMs,
        'the write',
        ctx.timers,
      );
      ctx.metrics.proposals.inc({ outcome: 'applied' });
      return response;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      ctx.metrics.proposals.inc({ outcome: typeof code === 'string' ? code : 'error' });
      throw err;
    } finally {
      release();
    }
  });
}

export function registerKvRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/v1/kv/*', (req, reply) => getKey(ctx, req, reply));
  app.put('/v1/kv/*', (req, reply) => putKey(ctx, req, reply));
  app.delete('/v1/kv/*', (req, reply) => deleteKey(ctx, req, reply));
  app.get('/v1/kv', (req, reply) => rangeKeys(ctx, req, reply));
  app.post('/v1/txn', (req, reply) => transaction(ctx, req, reply));
}

/** GET /v1/kv/{key}: one key, or its raw bytes. */
async function getKey(ctx: ApiContext, req: FastifyRequest, reply: FastifyReply) {
  const key = keyOf(req, ctx);
  const q = readQuery(req.query);
  authorizeRequest(ctx.kv.auth, req, [{ key, access: 'read' }]);
  const kv = await read(ctx, req, reply, q.consistency, () => ctx.kv.get(key));
  if (reply.sent) return reply;
  if (!kv) throw new ConfluxError('KEY_NOT_FOUND', `key ${JSON.stringify(key)} does not exist`);
  if (q.raw === 'true' || q.raw === '1')
    return reply.type('application/octet-stream').send(Buffer.from(kv.value));
  return kvJson(kv, q.encoding);
}

/** PUT /v1/kv/{key}: write a value, optionally compare-and-set on modRevision. */
async function putKey(ctx: ApiContext, req: FastifyRequest, reply: FastifyReply) {
  const key = keyOf(req, ctx);
  const q = writeQuery(req.query);
  authorizeRequest(ctx.kv.auth, req, [{ key, access: 'write' }]);
  const value = Buffer.isBuffer(req.body) ? new Uint8Array(req.body) : new Uint8Array(0);
  const cmd: PutCommand = { type: 'put', key, value };
  if (q.cas !== undefined) cmd.expectModRevision = q.cas;
  const r = await propose(ctx, req, reply, cmd);
  if (!r) return reply;
  if (r.type !== 'put') throw new Error(`put answered with ${r.type}`);
  if (!r.ok) {
    throw new ConfluxError('COMPARE_FAILED', `key ${JSON.stringify(key)} is not at modRevision ${q.cas}`, {
      revision: r.revision,
      currentModRevision: r.current?.modRevision ?? 0,
    });
  }
  return { revision: r.revision, ...(q.prev === 'true' && r.prev ? { prev: kvJson(r.prev) } : {}) };
}

/** DELETE /v1/kv/{key}, optionally compare-and-set on modRevision. */
async function deleteKey(ctx: ApiContext, req: FastifyRequest, reply: FastifyReply) {
  const key = keyOf(req, ctx);
  const q = writeQuery(req.query);
  authorizeRequest(ctx.kv.auth, req, [{ key, access: 'write' }]);
  const cmd: KvCommand =
    q.cas === undefined
      ? { type: 'delete', key }
      : {
          type: 'txn',
          compare: [{ key, target: 'modRevision', op: '=', operand: q.cas }],
          success: [{ type: 'delete', key }],
          failure: [],
        };
  const r = await propose(ctx, req, reply, cmd);
  if (!r) return reply;
  if (r.type === 'txn' && !r.succeeded) {
    throw new ConfluxError('COMPARE_FAILED', `key ${JSON.stringify(key)} is not at modRevision ${q.cas}`, {
      revision: r.revision,
    });
  }
  const prev =
    r.type === 'delete'
      ? r.prev
      : r.type === 'txn' && r.responses[0]?.type === 'delete'
        ? r.responses[0].prev
        : undefined;
  return {
    revision: r.revision,
    deleted: prev !== undefined,
    ...(q.prev === 'true' && prev ? { prev: kvJson(prev) } : {}),
  };
}

/** GET /v1/kv?prefix=: one page of keys in byte order. */
async function rangeKeys(ctx: ApiContext, req: FastifyRequest, reply: FastifyReply) {
  const q = parse(rangeQuery, req.query, 'query');
  validatePrefix(q.prefix, ctx.kv.limits);
  authorizeRequest(ctx.kv.auth, req, [{ prefix: q.prefix, access: 'read' }]);
  // The page also ends where its keys and values reach --max-response-bytes (`more`, `next`).
  const page = await read(ctx, req, reply, q.consistency, () =>
    ctx.kv.range({
      prefix: q.prefix,
      limit: q.limit,
      maxBytes: ctx.limits.maxResponseBytes,
      ...(q.after !== undefined ? { after: q.after } : {}),
    }),
  );
  if (!page) return reply;
  const last = page.kvs.at(-1);
  return {
    kvs: page.kvs.map((kv) => kvJson(kv, q.encoding)),
    more: page.more,
    ...(page.more && last ? { next: last.key } : {}),
    revision: page.revision,
  };
}

/** POST /v1/txn: compares, then the success or the failure branch. */
async function transaction(ctx: ApiContext, req: FastifyRequest, reply: FastifyReply) {
  const body = parse(txnBody, parseJson(req.body), 'body');
  const ops = (branch: 'success' | 'failure') =>
    body[branch].map((o, i) =>
      o.type === 'put'
        ? {
            type: 'put' as const,
            key: o.key,
            value: decodeValue(o.value, o.encoding, `body.${branch}.${i}.value`),
          }
        : o,
    );
  const compare = body.compare.map((c, i) =>
    'value' in c
      ? {
          key: c.key,
          target: 'value' as const,
          op: c.op,
          operand: decodeValue(c.value, c.encoding, `body.compare.${i}.value`),
        }
      : c,
  );
  const cmd = { type: 'txn' as const, compare, success: ops('success'), failure: ops('failure') };
  authorizeRequest(ctx.kv.auth, req, txnNeeds(cmd)); // every key of both branches, or nothing runs
  const budget = ctx.limits.maxResponseBytes;
  // Refused before it is proposed when its answer could not fit, counted on the value sizes
  // alone; the count after apply covers a state that grew meanwhile, and no JSON is built then.
  const r = await propose(ctx, req, reply, cmd, () => {
    const estimate = txnAnswerEstimate(cmd, (key) => ctx.kv.valueBytes(key));
    if (estimate > budget) throw tooLarge(estimate, budget);
  });
  if (!r) return reply;
  if (r.type !== 'txn') throw new Error(`txn answered with ${r.type}`);
  const bytes = txnAnswerBytes(r.responses);
  if (bytes > budget) {
    throw tooLarge(bytes, budget, {
      revision: r.revision,
      succeeded: r.succeeded,
      note: 'the transaction was applied; only its answer is refused',
    });
  }
  return {
    succeeded: r.succeeded,
    revision: r.revision,
    responses: r.responses.map((res) => {
      if (res.type === 'get') return { type: 'get', ...(res.kv ? { kv: kvJson(res.kv) } : {}) };
      return { type: res.type, ...(res.prev ? { prev: kvJson(res.prev) } : {}) };
    }),
  };
}

function tooLarge(bytes: number, budget: number, details: Record<string, unknown> = {}): ConfluxError {
  return new ConfluxError(
    'RESPONSE_TOO_LARGE',
    `the answer would carry ${bytes} bytes of keys and values, more than --max-response-bytes ` +
      `(${budget}); ask for less in one transaction`,
    { responseBytes: bytes, maxResponseBytes: budget, ...details },
  );
}

export function parseJson(body: unknown): unknown {
  if (!Buffer.isBuffer(body) || body.byteLength === 0)
    throw new ConfluxError('INVALID_REQUEST', 'a JSON body is required');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new ConfluxError('INVALID_REQUEST', 'the body is not valid JSON');
  }
}
