// Fencing (the headers that let clients and scripts detect stale answers): every response names
// the term, the store revision and the leader it was produced under, and a request can demand a
// minimum term or revision; a node that cannot honour it refuses rather than answers stale.

import type { FastifyReply, FastifyRequest } from 'fastify';
import { ConfluxError } from '../errors.js';
import type { ApiContext } from './context.js';

export const MIN_TERM = 'x-conflux-min-term';
export const MIN_REVISION = 'x-conflux-min-revision';

function headerNumber(req: FastifyRequest, name: string): number | undefined {
  const raw = req.headers[name];
  if (raw === undefined) return undefined;
  const n = Number(Array.isArray(raw) ? raw[0] : raw);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new ConfluxError('INVALID_REQUEST', `${name} must be a non-negative integer`);
  return n;
}

export function fencingHeaders(ctx: ApiContext): Record<string, string> {
  const m = ctx.raft.metrics();
  return {
    'x-conflux-term': String(m.currentTerm),
    'x-conflux-revision': String(ctx.kv.revision),
    'x-conflux-leader': m.currentLeader ?? '',
    'x-conflux-node': ctx.nodeId,
  };
}

export function setFencingHeaders(ctx: ApiContext, reply: FastifyReply): void {
  reply.headers(fencingHeaders(ctx));
}

/** A node whose term is older than one the client already saw may be a deposed leader. */
export function checkMinTerm(ctx: ApiContext, req: FastifyRequest): void {
  const min = headerNumber(req, MIN_TERM);
  if (min === undefined) return; // the node's term is read only when a request asks
  const term = ctx.raft.metrics().currentTerm;
  if (term < min) {
    throw new ConfluxError('STALE_TERM', `this node is at term ${term}, older than the requested ${min}`, {
      term,
    });
  }
}

/** Call where the answer is about to be read from the local store. */
export function checkMinRevision(ctx: ApiContext, req: FastifyRequest): void {
  const min = headerNumber(req, MIN_REVISION);
  const revision = ctx.kv.revision;
  if (min !== undefined && revision < min) {
    throw new ConfluxError(
      'REVISION_NOT_REACHED',
      `this node has applied revision ${revision}, older than the requested ${min}`,
      {
        revision,
      },
    );
  }
}
