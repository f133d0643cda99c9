// The cluster-operations (admin) API on its own port: HTTPS with client certificates checked by
// admin-auth.ts, or plain HTTP on loopback with --dev-insecure. Every refusal is logged as an
// audit line, and so is every change a caller makes. The routes are in admin-routes.ts.

import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import { ConfluxError } from '../errors.js';
import { authorize } from './admin-auth.js';
import { type AdminContext, registerAdminRoutes } from './admin-routes.js';
import { badRequest, fastifyError } from './app.js';
import { toHttpError } from './http-errors.js';
import { applyConnectionLimits, type ConnectionLimits, serverOptions } from './limits.js';

export type { AdminContext } from './admin-routes.js';

export interface AdminServerOptions {
  logger: Logger;
  limits: ConnectionLimits;
  /** Server certificate and the CAs whose client certificates are accepted (admin CA, cluster CA). */
  https?: { cert: string | Buffer; key: string | Buffer; ca: (string | Buffer)[] };
}

/** Admin request bodies are small documents. */
const ADMIN_BODY_LIMIT = 256 * 1024;

export function buildAdminApi(ctx: AdminContext, opts: AdminServerOptions): FastifyInstance {
  const tls = opts.https !== undefined;
  const https = opts.https ? { ...opts.https, requestCert: true, rejectUnauthorized: false } : undefined;
  const app = Fastify({
    loggerInstance: opts.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: ADMIN_BODY_LIMIT,
    frameworkErrors: badRequest,
    ...serverOptions(opts.limits, https, true),
  }) as unknown as FastifyInstance;
  applyConnectionLimits(app.server, opts.limits);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  const audit = opts.logger.child({ audit: true });

  app.addHook('onRequest', async (req) => {
    try {
      const caller = authorize(req, tls);
      if (req.method !== 'GET') {
        audit.info(
          {
            caller: caller.subject,
            ...(caller.fingerprint ? { serial: caller.serial, fingerprint: caller.fingerprint } : {}),
            remote: req.ip,
            method: req.method,
            path: req.url,
          },
          'admin request',
        );
      }
      req.caller = caller.subject;
    } catch (err) {
      audit.warn(
        { remote: req.ip, method: req.method, path: req.url, reason: (err as Error).message },
        'admin request refused',
      );
      throw err;
    }
  });
  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toHttpError(fastifyError(err));
    if (status >= 500 && body.error.code === 'INTERNAL') req.log.error({ err }, 'admin request failed');
    return reply.status(status).type('application/json').send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    const { status, body } = toHttpError(
      new ConfluxError('ROUTE_NOT_FOUND', `no route for ${req.method} ${req.url.split('?')[0]}`),
    );
    return reply.status(status).send(body);
  });

  registerAdminRoutes(app, ctx);
  return app;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Subject of the authorized client certificate (`dev-insecure` without TLS). */
    caller?: string;
  }
}
