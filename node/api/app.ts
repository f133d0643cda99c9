// The client API server: fastify with raw-body parsing (values are bytes; JSON bodies are parsed
// by the routes with zod), fencing headers on every answer, the error table, limits, health,
// readiness and Prometheus metrics.

import rateLimit from '@fastify/rate-limit';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { ConfluxError } from '../errors.js';
import * as M from '../raft/membership.js';
import type { ApiContext } from './context.js';
import { checkMinTerm, setFencingHeaders } from './fencing.js';
import { toHttpError } from './http-errors.js';
import { registerKvRoutes } from './kv-routes.js';
import { registerWatchRoutes } from './watch-routes.js';

export interface ApiServerOptions {
  logger: Logger;
  https?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer | (string | Buffer)[] };
}

export async function buildClientApi(ctx: ApiContext, opts: ApiServerOptions): Promise<FastifyInstance> {
  const serverOpts: FastifyServerOptions = {
    loggerInstance: opts.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: ctx.limits.maxBodyBytes,
    frameworkErrors: badRequest,
    ...(opts.https ? { https: opts.https } : {}),
  };
  const app = Fastify(serverOpts) as unknown as FastifyInstance;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  if (ctx.limits.rateLimitPerSecond) {
    await app.register(rateLimit, {
      max: ctx.limits.rateLimitPerSecond,
      timeWindow: 1000,
      errorResponseBuilder: (_req, c) =>
        new ConfluxError('RATE_LIMITED', `more than ${c.max} requests per second`),
    });
  }

  app.addHook('onRequest', async (req) => {
    if (req.url.startsWith('/v1/')) checkMinTerm(ctx, req);
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    setFencingHeaders(ctx, reply);
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unknown';
    ctx.metrics.http.observe(
      { route, method: req.method, code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  app.setErrorHandler((err, req, reply) => {
    const mapped = toHttpError(fastifyError(err));
    if (mapped.status >= 500 && mapped.body.error.code === 'INTERNAL')
      req.log.error({ err }, 'request failed');
    return reply.status(mapped.status).type('application/json').send(mapped.body);
  });
  app.setNotFoundHandler((req, reply) => {
    const { status, body } = toHttpError(
      new ConfluxError('ROUTE_NOT_FOUND', `no route for ${req.method} ${req.url.split('?')[0]}`),
    );
    return reply.status(status).send(body);
  });

  app.get('/healthz', async () => ({ status: 'ok', node: ctx.nodeId }));
  app.get('/readyz', async (_req, reply) => {
    const m = ctx.raft.metrics();
    const member = M.isInitialized(m.membership) && M.members(m.membership).includes(ctx.nodeId);
    const ready = member && (m.currentLeader !== null || m.state === 'learner');
    return reply
      .status(ready ? 200 : 503)
      .send({ ready, node: ctx.nodeId, state: m.state, leader: m.currentLeader, term: m.currentTerm });
  });
  app.get('/metrics', async (_req, reply) => {
    ctx.metrics.observeRaft(ctx.raft.metrics());
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  registerKvRoutes(app, ctx);
  registerWatchRoutes(app, ctx);
  return app;
}

/** Errors fastify raises before routing (an undecodable URL): INVALID_REQUEST from the catalogue. */
export function badRequest(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toHttpError(new ConfluxError('INVALID_REQUEST', err.message));
  reply.status(status).send(body);
}

/** Fastify's own refusals (body too large, bad content) in the catalogue's terms. */
export function fastifyError(err: unknown): unknown {
  const code = (err as { code?: string }).code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new ConfluxError('BODY_TOO_LARGE', (err as Error).message);
  if (typeof code === 'string' && code.startsWith('FST_ERR_CTP'))
    return new ConfluxError('INVALID_REQUEST', (err as Error).message);
  if ((err as { statusCode?: number }).statusCode === 429)
    return new ConfluxError('RATE_LIMITED', (err as Error).message);
  return err;
}
