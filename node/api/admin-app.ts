// The cluster-operations (admin) API on its own port: HTTPS with client certificates checked by
// admin-auth.ts, or plain HTTP on loopback with --dev-insecure. Every refusal is logged as an
// audit line, and so is every change a caller makes.

import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ConfluxError } from '../errors.js';
import * as M from '../raft/membership.js';
import type { RaftNode } from '../raft/raft-node.js';
import type { NodeId } from '../raft/types.js';
import { authorize } from './admin-auth.js';
import { badRequest } from './app.js';
import { toHttpError } from './http-errors.js';
import { parseJson } from './kv-routes.js';
import { parse } from './parse.js';

export interface AdminContext {
  nodeId: NodeId;
  raft: RaftNode<unknown>;
  /** Client API and Raft addresses of a member, as advertised. */
  addressesOf(id: NodeId): { api: string; raft: string } | undefined;
  transferTimeoutMs: number;
}

export interface AdminServerOptions {
  logger: Logger;
  /** Server certificate and the CAs whose client certificates are accepted (admin CA, cluster CA). */
  https?: { cert: string | Buffer; key: string | Buffer; ca: (string | Buffer)[] };
}

const transferBody = z.strictObject({ target_node_id: z.string().min(1).optional() });

export function buildAdminApi(ctx: AdminContext, opts: AdminServerOptions): FastifyInstance {
  const tls = opts.https !== undefined;
  const app = Fastify({
    loggerInstance: opts.logger,
    logController: new LogController({ disableRequestLogging: true }),
    frameworkErrors: badRequest,
    ...(opts.https ? { https: { ...opts.https, requestCert: true, rejectUnauthorized: false } } : {}),
  }) as unknown as FastifyInstance;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  const audit = opts.logger.child({ audit: true });

  app.addHook('onRequest', async (req) => {
    try {
      const caller = authorize(req, tls);
      if (req.method !== 'GET')
        audit.info({ caller: caller.subject, method: req.method, path: req.url }, 'admin request');
    } catch (err) {
      audit.warn(
        { remote: req.ip, method: req.method, path: req.url, reason: (err as Error).message },
        'admin request refused',
      );
      throw err;
    }
  });
  app.setErrorHandler((err, _req, reply) => {
    const { status, body } = toHttpError(err);
    return reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    const { status, body } = toHttpError(
      new ConfluxError('ROUTE_NOT_FOUND', `no route for ${req.method} ${req.url.split('?')[0]}`),
    );
    return reply.status(status).send(body);
  });

  app.get('/_internal/status', async () => ctx.raft.metrics());

  app.get('/_cluster/leader', async () => leaderDocument(ctx));

  app.post('/_cluster/leader/transfer', async (req) => {
    const body = parse(
      transferBody,
      req.body && (req.body as Buffer).length > 0 ? parseJson(req.body) : {},
      'body',
    );
    const m = ctx.raft.metrics();
    if (m.state !== 'leader') {
      throw new ConfluxError(
        'NO_LEADER',
        `node ${ctx.nodeId} is not the leader; ask ${m.currentLeader ?? 'the leader'}`,
        {
          leader_id: m.currentLeader,
        },
      );
    }
    const target = body.target_node_id ?? bestTarget(ctx);
    if (target !== ctx.nodeId) await ctx.raft.transferLeader(target, ctx.transferTimeoutMs);
    return leaderDocument(ctx);
  });

  return app;
}

function leaderDocument(ctx: AdminContext) {
  const m = ctx.raft.metrics();
  if (!m.currentLeader) throw new ConfluxError('NO_LEADER', 'no leader is known right now; retry shortly');
  const addresses = ctx.addressesOf(m.currentLeader);
  return {
    leader_id: m.currentLeader,
    term: m.currentTerm,
    api_address: addresses?.api ?? null,
    raft_address: addresses?.raft ?? null,
  };
}

/** The voter that will stay, holding the most of the log (ties: the lowest id, deterministic). */
function bestTarget(ctx: AdminContext): NodeId {
  const m = ctx.raft.metrics();
  const stays = m.membership.configs.at(-1) ?? [];
  const candidates = stays
    .filter((id) => id !== ctx.nodeId && M.isVoter(m.membership, id))
    .map((id) => ({ id, matched: m.replication?.[id]?.matched ?? 0 }))
    .sort((a, b) => b.matched - a.matched || a.id.localeCompare(b.id));
  const best = candidates[0];
  if (!best) throw new ConfluxError('INVALID_REQUEST', 'there is no other voter to hand leadership to');
  return best.id;
}
