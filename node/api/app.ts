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
import { type ApiContext, clientOf } from './context.js';
import { checkMinTerm, setFencingHeaders } from './fencing.js';
import { toHttpError } from './http-errors.js';
import { registerKvRoutes } from './kv-routes.js';
import { applyConnectionLimits, serverOptions } from './limits.js';
import { registerWatchRoutes } from './watch-routes.js';

export interface ApiServerOptions {
  logger: Logger;
  https?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer | (string | Buffer)[] };
  /** /metrics is served by a listener of its own (metrics-app.ts), not here. */
  metricsElsewhere?: boolean;
}

export async function buildClientApi(ctx: ApiContext, opts: ApiServerOptions): Promise<FastifyInstance> {
  // With TLS every caller is asked for a certificate and none is required: a member proxying a
  // request presents its node certificate, which lets the leader believe the client address it
  // forwards (client-address.ts); clients need none.
  const https = opts.https ? { ...opts.https, requestCert: true, rejectUnauthorized: false } : undefined;
  const serverOpts: FastifyServerOptions = {
    loggerInstance: opts.logger,
    logController: new LogController({ disableRequestLogging: true }),
    // Requests log nothing but their failures, which name the request themselves: a pino child per
    // request (fastify's default) would cost every request for the rare one that logs.
    childLoggerFactory: (logger) => logger,
    bodyLimit: ctx.limits.maxBodyBytes,
    frameworkErrors: badRequest,
    ...serverOptions(ctx.connections, https),
  };
  const app = Fastify(serverOpts) as unknown as FastifyInstance;
  applyConnectionLimits(app.server, ctx.connections, () =>
    ctx.metrics.limitRefusals.inc({ limit: 'connections' }),
  );
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  if (ctx.limits.rateLimitPerSecond) {
    // Keyed by the original client, also for requests a follower forwarded; health, readiness and
    // metrics are exempt (config.rateLimit: false below), so probes never fail under load.
    await app.register(rateLimit, {
      max: ctx.limits.rateLimitPerSecond,
      timeWindow: 1000,
      keyGenerator: (req) => clientOf(ctx, req),
      errorResponseBuilder: (_req, c) =>
        new ConfluxError('RATE_LIMITED', `more than ${c.max} requests per second`),
    });
  }

  // Hooks in callback form: they run for every request, and an async hook costs a promise and a
  // turn of the microtask queue each (a throw is the same refusal either way: fastify catches it).
  app.addHook('onRequest', (req, _reply, done) => {
    if (req.url.startsWith('/v1/')) checkMinTerm(ctx, req);
    done();
  });
  app.addHook('onSend', (_req, reply, payload, done) => {
    setFencingHeaders(ctx, reply);
    done(null, payload);
  });
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unknown';
    ctx.metrics.http.observe(
      { route, method: req.method, code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });

  app.setErrorHandler((err, req, reply) => {
    const mapped = toHttpError(fastifyError(err));
    const limit = LIMIT_CODES[mapped.body.error.code];
    if (limit) ctx.metrics.limitRefusals.inc({ limit });
    if (mapped.status >= 500 && mapped.body.error.code === 'INTERNAL')
      req.log.error({ err, reqId: req.id }, 'request failed');
    return reply.status(mapped.status).type('application/json').send(mapped.body);
  });
  app.setNotFoundHandler((req, reply) => {
    const { status, body } = toHttpError(
      new ConfluxError('ROUTE_NOT_FOUND', `no route for ${req.method} ${req.url.split('?')[0]}`),
    );
    return reply.status(status).send(body);
  });

  registerProbeRoutes(app, ctx, !opts.metricsElsewhere);
  registerKvRoutes(app, ctx);
  registerWatchRoutes(app, ctx);
  return app;
}

/** /healthz, /readyz and, when `metrics`, /metrics: never rate limited, so probes never fail under load. */
export function registerProbeRoutes(app: FastifyInstance, ctx: ApiContext, metrics: boolean): void {
  const exempt = { config: { rateLimit: false } };
  app.get('/healthz', exempt, async () => ({ status: 'ok', node: ctx.nodeId }));
  app.get('/readyz', exempt, async (_req, reply) => {
    const r = readiness(ctx);
    return reply.status(r.ready ? 200 : 503).send(r);
  });
  if (!metrics) return;
  app.get('/metrics', exempt, async (_req, reply) =>
    reply.type(ctx.metrics.registry.contentType).send(await scrape(ctx)),
  );
}

/** /readyz: a member of an initialized cluster with a known leader (or a learner), not stopped. */
function readiness(ctx: ApiContext) {
  const m = ctx.raft.metrics();
  // A Raft node stopped by a fatal error keeps its last metrics (it may still say leader): it
  // will never serve again, so it is not ready, and says why.
  const stopped = ctx.raft.stopReason();
  const member = M.isInitialized(m.membership) && M.members(m.membership).includes(ctx.nodeId);
  // A data directory deleted under the running node: what it holds is no longer durable.
  const dataDir = ctx.dataDir?.problem() ?? null;
  const ready = !stopped && !dataDir && member && (m.currentLeader !== null || m.state === 'learner');
  return {
    ready,
    node: ctx.nodeId,
    state: m.state,
    leader: m.currentLeader,
    term: m.currentTerm,
    ...(stopped ? { stopped: stopped.message } : {}),
    ...(dataDir ? { dataDir } : {}),
  };
}

/** /metrics: the gauges read at scrape time, then the registry's text. */
function scrape(ctx: ApiContext): Promise<string> {
  ctx.metrics.observeRaft(ctx.raft.metrics());
  ctx.metrics.observeLimits({
    storedBytes: ctx.quota.usedBytes,
    quotaBytes: ctx.quota.quotaBytes,
    alarm: ctx.quota.alarm,
    watchers: ctx.watchers.count,
  });
  return ctx.metrics.registry.metrics();
}

/** Refusals counted in conflux_limit_refusals_total, by the limit that refused. */
const LIMIT_CODES: Partial<Record<string, string>> = {
  RATE_LIMITED: 'rate',
  RESPONSE_TOO_LARGE: 'response_bytes',
  NO_SPACE: 'quota',
  TOO_MANY_WATCHERS: 'watchers',
  BODY_TOO_LARGE: 'body_bytes',
};

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
