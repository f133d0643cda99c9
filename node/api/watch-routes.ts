// Watch a key or a prefix from a revision: Server-Sent Events when the client asks for
// `text/event-stream`, otherwise a long-poll that answers as soon as events exist (or after
// `timeout_ms` with none). Watches are served from this node's own state, in revision order; a
// revision older than the kept history answers 410 COMPACTED: the events in between are gone, so
// the client re-reads the keys it follows and watches from the revision of that read.
//
// SSE event ids are `<revision>.<n>`: the n-th event of that revision this watch delivered (one
// transaction is one revision with several events). A reconnecting EventSource sends the last id
// as `Last-Event-ID`, and the stream resumes right after that event: the rest of a half-delivered
// transaction comes again, nothing is skipped or repeated. The filter is part of the URL, so the
// same reconnect sees the same events of each revision in the same order.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { authorizeRequest } from '../auth/enforce.js';
import type { KeyFilter } from '../kv/types.js';
import { validateKey, validatePrefix } from '../kv/validate.js';
import { type ApiContext, clientOf } from './context.js';
import { checkMinRevision, fencingHeaders } from './fencing.js';
import { eventJson } from './json.js';
import { keepaliveIntervalMs } from './limits.js';
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

export function registerWatchRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/v1/watch', async (req, reply) => {
    const q = parse(watchQuery, req.query, 'query');
    const filter: KeyFilter = q.key !== undefined ? { key: q.key } : { prefix: q.prefix ?? '' };
    if ('key' in filter) validateKey(filter.key, ctx.kv.limits);
    else validatePrefix(filter.prefix, ctx.kv.limits);
    // A prefix watch needs one permission covering the whole prefix (node/auth/permissions.ts).
    authorizeRequest(ctx.kv.auth, req, [{ ...filter, access: 'read' }]);
    checkMinRevision(ctx, req);
    if (String(req.headers.accept ?? '').includes('text/event-stream')) {
      const resume = lastEventId(req.headers['last-event-id']);
      const start = resume ?? { revision: q.from_revision ?? ctx.kv.revision + 1, skip: 0 };
      return stream(ctx, req, reply, filter, start, q.encoding);
    }
    const from = q.from_revision ?? ctx.kv.revision + 1;
    // A page holds whole revisions within --max-response-bytes (at least one revision).
    const maxBytes = ctx.limits.maxResponseBytes;
    let page = ctx.kv.eventsSince(filter, from, q.limit, maxBytes);
    if (page.events.length === 0 && q.timeout_ms > 0) {
      // A waiting long-poll is a watch: it counts against the watch limits, and its socket may
      // stay silent for timeout_ms beyond the idle timeout (and no longer).
      const release = ctx.watchers.acquire(clientOf(ctx, req));
      const socket = req.raw.socket;
      socket.setTimeout(q.timeout_ms + ctx.connections.idleTimeoutMs);
      // A plain timer, not AbortSignal.timeout: Node 20 may collect a timeout signal that only
      // AbortSignal.any refers to, and then the long-poll would never answer.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), q.timeout_ms);
      const onClose = () => abort.abort();
      req.raw.once('close', onClose);
      try {
        page = await ctx.kv.waitForEvents(filter, from, q.limit, abort.signal, maxBytes);
      } finally {
        clearTimeout(timer);
        req.raw.off('close', onClose);
        release();
        socket.setTimeout(ctx.connections.idleTimeoutMs);
      }
    }
    return {
      events: page.events.map((e) => eventJson(e, q.encoding)),
      nextRevision: page.nextRevision,
      revision: page.revision,
    };
  });
}

/** Where an SSE stream resumes: from `revision`, after its first `skip` events. */
interface StreamStart {
  revision: number;
  skip: number;
}

const eventIdSchema = z
  .string()
  .regex(/^\d{1,15}(\.\d{1,9})?$/, 'Last-Event-ID must be <revision>.<n> as this server sent it')
  .transform((id) => {
    const [revision, n] = id.split('.').map(Number) as [number, number | undefined];
    // A bare revision (an id of an older server) means that revision was delivered in full.
    return n === undefined ? { revision: revision + 1, skip: 0 } : { revision, skip: n };
  })
  .refine((s) => s.revision >= 1, 'Last-Event-ID must name a revision of 1 or more');

function lastEventId(header: string | string[] | undefined): StreamStart | undefined {
  if (header === undefined) return undefined;
  return parse(eventIdSchema, Array.isArray(header) ? header[0] : header, 'Last-Event-ID');
}

function stream(
  ctx: ApiContext,
  req: FastifyRequest,
  reply: FastifyReply,
  filter: KeyFilter,
  start: StreamStart,
  encoding: 'utf8' | 'base64' | undefined,
): FastifyReply {
  // Validate the start before committing to a stream, so a too-old revision is a plain 410.
  ctx.kv.eventsSince(filter, start.revision, 1);
  const release = ctx.watchers.acquire(clientOf(ctx, req));
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
    release();
    if (event) res.write(event);
    res.end();
  };
  // Written well within the idle timeout: a live stream never goes idle, while one whose client
  // stopped reading stops completing writes, goes idle and is closed (which ends the watch).
  const keepalive = setInterval(() => res.write(': keepalive\n\n'), keepaliveIntervalMs(ctx.connections));
  // Position within the current revision: events of `start.revision` up to `start.skip` were
  // delivered before the reconnect.
  let revision = start.revision;
  let n = 0;
  const cancel = ctx.kv.watch(
    filter,
    start.revision,
    (e) => {
      if (!open) return;
      if (e.revision !== revision) {
        revision = e.revision;
        n = 0;
      }
      n++;
      if (e.revision === start.revision && n <= start.skip) return;
      const more = res.write(
        `id: ${e.revision}.${n}\nevent: ${e.type}\ndata: ${JSON.stringify(eventJson(e, encoding))}\n\n`,
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
