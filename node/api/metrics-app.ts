// The optional metrics listener (--metrics-addr): /metrics, /healthz and /readyz in plain HTTP
// on an address of their own, so Prometheus and the kubelet need neither the client port nor a
// client certificate, and the client port, which then no longer serves /metrics, can be
// admitted to applications only (README "Security"). It answers nothing else: no key, no
// write, nothing about the data but the counters /metrics already shows. It applies the same
// connection caps, accept rate and timeouts as the other listeners (limits.ts).

import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import { ConfluxError } from '../errors.js';
import { registerProbeRoutes } from './app.js';
import type { ApiContext } from './context.js';
import { toHttpError } from './http-errors.js';
import { applyConnectionLimits, serverOptions } from './limits.js';

export async function buildMetricsApi(ctx: ApiContext, logger: Logger): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    ...serverOptions(ctx.connections, undefined),
  }) as unknown as FastifyInstance;
  applyConnectionLimits(app.server, ctx.connections, () =>
    ctx.metrics.limitRefusals.inc({ limit: 'connections' }),
  );
  app.setNotFoundHandler((req, reply) => {
    const { status, body } = toHttpError(
      new ConfluxError('ROUTE_NOT_FOUND', `no route for ${req.method} ${req.url.split('?')[0]}`),
    );
    return reply.status(status).send(body);
  });
  registerProbeRoutes(app, ctx, true);
  return app;
}
