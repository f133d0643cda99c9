// Watch a key or a prefix from a revision: Server-Sent Events when the client asks for
// `text/event-stream`, otherwise a long-poll that answers as soon as events exist (or after
// `timeout_ms` with none). Watches are served from this node's own state, in revision order; a
// revision older than the kept history answers 410 COMPACTED with the oldest one available.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { KeyFilter } from '../kv/types.js';
import { validateKey, validatePrefix } from '../kv/validate.js';
import type { ApiContext } from './context.js';
import { checkMinRevision, fencingHeaders } from './fencing.js';
import { eventJson } from './json.js';
import { parse } from './parse.js';

const watchQuery = z
  .strictObject({
    key: z.string().optional(),
    prefix: z.string().optional(),
    from_revision: z.coerce.number().int().positive().optional(),
    timeout_ms: z.coerce.number().int().min(0).max(120_000).default(30_000),
    limit: z.coerce.number().int().min(1).max(10_000).default(1_000),
    encoding: z.enum(['utf8', 'base64']).optional(),
  })
  .refine((q) => (q.key === undefined) !== (q.prefix === undefined), 'give exactly one of key and prefix');

const KEEPALIVE_MS = 15_000;

export function registerWatchRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/v1/watch', async (req, reply) => {
    const q = parse(watchQuery, req.query, 'query');
    const filter: KeyFilter = q.key !== undefined ? { key: q.key } : { prefix: q.prefix ?? '' };
    if ('key' in filter) validateKey(filter.key, ctx.kv.limits);
    else validatePrefix(filter.prefix, ctx.kv.limits);
    checkMinRevision(ctx, req);
    const from = q.from_revision ?? ctx.kv.revision + 1;
    if (String(req.headers.accept ?? '').includes('text/event-stream'))
      return stream(ctx, req, reply, filter, from, q.encoding);
    let page = ctx.kv.eventsSince(filter, from, q.limit);
    if (page.events.length === 0 && q.timeout_ms > 0) {
      const abort = AbortSignal.any([AbortSignal.timeout(q.timeout_ms), closedSignal(req)]);
      page = await ctx.kv.waitForEvents(filter, from, q.limit, abort);
    }
    return {
      events: page.events.map((e) => eventJson(e, q.encoding)),
      nextRevision: page.nextRevision,
      revision: page.revision,
    };
  });
}

function closedSignal(req: FastifyRequest): AbortSignal {
  const ac = new AbortController();
  req.raw.once('close', () => ac.abort());
  return ac.signal;
}

function stream(
  ctx: ApiContext,
  req: FastifyRequest,
  reply: FastifyReply,
  filter: KeyFilter,
  from: number,
  encoding: 'utf8' | 'base64' | undefined,
): FastifyReply {
  // Validate the start before committing to a stream, so a too-old revision is a plain 410.
  ctx.kv.eventsSince(filter, from, 1);
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    ...fencingHeaders(ctx),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  res.write(': watching\n\n');
  let open = true;
  const end = (event?: string) => {
    if (!open) return;
    open = false;
    clearInterval(keepalive);
    cancel();
    if (event) res.write(event);
    res.end();
  };
  const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
  const cancel = ctx.kv.watch(
    filter,
    from,
    (e) => {
      if (!open) return;
      const more = res.write(
        `id: ${e.revision}\nevent: ${e.type}\ndata: ${JSON.stringify(eventJson(e, encoding))}\n\n`,
      );
      // A slow client holds its watcher back (which then falls back to history) instead of
      // growing this socket's buffer without bound.
      if (!more) return new Promise<void>((resume) => res.once('drain', resume).once('close', resume));
    },
    {
      // The client resumes with from_revision = nextRevision (and gets COMPACTED if that is gone).
      onClose: (c) =>
        end(`event: close\ndata: ${JSON.stringify({ reason: c.reason, nextRevision: c.nextRevision })}\n\n`),
    },
  );
  req.raw.once('close', () => end());
  return reply;
}
