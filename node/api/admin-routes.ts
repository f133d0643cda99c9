// The admin endpoints (docs/ARCHITECTURE.md §7). Requests are parsed with the contract's zod schemas; every
// refusal is a catalogued error. Operations that only the leader can run are redirected (307) to
// the leader's admin address when they reach a follower: the caller repeats them there with its
// own certificate, so no member ever acts on an admin's behalf and no header can make a member
// certificate an admin (a member that proxied would have to be believed about who called).

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { authChangesRequestSchema, getAuth, postAuth } from '../auth/admin.js';
import type { AuthState } from '../auth/permissions.js';
import { ConfluxError } from '../errors.js';
import type { NodeMetrics } from '../metrics.js';
import type { AddressBook } from '../ops/address-book.js';
import type { Bootstrap } from '../ops/bootstrap.js';
import { bestTransferTarget, type MembershipOps, toAddresses } from '../ops/membership.js';
import { type OperationQueue, operationNotFound } from '../ops/operations.js';
import { RaftError } from '../raft/errors.js';
import type { RaftNode } from '../raft/raft-node.js';
import type { NodeId } from '../raft/types.js';
import {
  addNodeRequestSchema,
  backupRequestSchema,
  type ClusterStatus,
  forceNewClusterRequestSchema,
  type InternalStatus,
  initializeRequestSchema,
  joinRequestSchema,
  nodeIdSchema,
  prepareRequestSchema,
  restoreRequestSchema,
  transferRequestSchema,
} from './admin-contract.js';
import { parseJson } from './kv-routes.js';
import { parse } from './parse.js';

export interface AdminContext {
  nodeId: NodeId;
  raft: RaftNode<unknown>;
  addresses: AddressBook;
  membership: MembershipOps;
  bootstrap: Bootstrap;
  queue: OperationQueue;
  backup: { run(req: z.output<typeof backupRequestSchema>): Promise<unknown> };
  restore: { run(req: z.output<typeof restoreRequestSchema>): Promise<unknown> };
  /** Quorum-loss recovery on this node (absent: the endpoint answers ROUTE_NOT_FOUND). */
  recovery?: { run(req: z.output<typeof forceNewClusterRequestSchema>): Promise<unknown> };
  internalStatus(): InternalStatus;
  clusterStatus(): Promise<ClusterStatus>;
  /** Whether the admin port speaks HTTPS (the scheme of a redirect to the leader's admin port). */
  tls: boolean;
  transferTimeoutMs: number;
  electionTicks: number;
  metrics?: NodeMetrics;
  /** The applied users and roles of client authorization (absent: /_cluster/auth is not offered). */
  authState?: () => AuthState;
}

const idParams = z.object({ id: nodeIdSchema });
const opParams = z.object({ id: z.string().regex(/^op-[0-9a-f-]{36}$/, 'not an operation id') });
const removeQuery = z.object({ force: z.enum(['true', 'false']).optional() });

/** The JSON body, `{}` when there is none (every admin body is optional or validated after). */
function body(req: FastifyRequest): unknown {
  return Buffer.isBuffer(req.body) && req.body.byteLength > 0 ? parseJson(req.body) : {};
}

export function registerAdminRoutes(app: FastifyInstance, ctx: AdminContext): void {
  const onLeader = (req: FastifyRequest, reply: FastifyReply, fn: () => Promise<unknown>) =>
    leaderOrRedirect(ctx, req, reply, fn);

  app.get('/_internal/status', async () => ctx.internalStatus());

  app.post('/_internal/prepare', async (req) =>
    ctx.bootstrap.prepare(parse(prepareRequestSchema, body(req), 'body')),
  );

  app.post('/_internal/join', async (req, reply) => {
    const join = parse(joinRequestSchema, body(req), 'body');
    return onLeader(req, reply, async () => {
      const answer = await ctx.bootstrap.join(join);
      return reply.status(answer.status).send(answer.body);
    });
  });

  app.get('/_cluster/status', async () => ctx.clusterStatus());

  app.get('/_cluster/leader', async () => leaderDocument(ctx));

  app.post('/_cluster/leader/transfer', async (req, reply) => {
    const { target_node_id } = parse(transferRequestSchema, body(req), 'body');
    return onLeader(req, reply, () => transferLeadership(ctx, target_node_id));
  });

  app.post('/_cluster/nodes', async (req, reply) => {
    const add = parse(addNodeRequestSchema, body(req), 'body');
    return onLeader(req, reply, async () => accepted(reply, ctx.membership.addNode(add)));
  });

  app.delete('/_cluster/nodes/:id', async (req, reply) => {
    const { id } = parse(idParams, req.params, 'path');
    const force = parse(removeQuery, req.query, 'query').force === 'true';
    return onLeader(req, reply, async () => removeNode(ctx, reply, id, force));
  });

  app.get('/_cluster/operations/:id', async (req, reply) => {
    const { id } = parse(opParams, req.params, 'path');
    return onLeader(req, reply, async () => {
      const op = ctx.queue.get(id);
      if (op) return op;
      const m = ctx.raft.metrics();
      // Operations live on the leader that accepted them: ask the current leader.
      if (m.state !== 'leader' && m.currentLeader)
        throw new RaftError('NOT_LEADER', 'ask the leader', m.currentLeader);
      throw operationNotFound(id);
    });
  });

  registerAuthRoutes(app, ctx, onLeader);

  app.post('/_cluster/initialize', async (req) =>
    ctx.bootstrap.initialize(parse(initializeRequestSchema, body(req), 'body')),
  );

  app.post('/_cluster/backup', async (req, reply) => {
    const backup = parse(backupRequestSchema, body(req), 'body');
    return onLeader(req, reply, () => ctx.backup.run(backup));
  });

  app.post('/_cluster/restore', async (req) =>
    ctx.restore.run(parse(restoreRequestSchema, body(req), 'body')),
  );

  // Acts on the node that receives it, never on the leader: after a quorum loss there is none.
  app.post('/_cluster/force-new-cluster', async (req) => {
    const request = parse(forceNewClusterRequestSchema, body(req), 'body');
    if (!ctx.recovery) throw new ConfluxError('ROUTE_NOT_FOUND', 'this node does not offer recovery');
    return ctx.recovery.run(request);
  });
}

/** Hands leadership to `target` (or the most up-to-date reachable voter); answers the new leader. */
async function transferLeadership(ctx: AdminContext, target_node_id: NodeId | undefined) {
  const m = ctx.raft.metrics();
  if (m.state !== 'leader') throw new RaftError('NOT_LEADER', 'not the leader', m.currentLeader);
  const target = target_node_id ?? bestTransferTarget(m, ctx.electionTicks);
  if (!target)
    throw new RaftError('INVALID_TRANSFER_TARGET', 'no other reachable voter to hand leadership to');
  await transfer(ctx, target);
  return leaderDocument(ctx);
}

/** /_cluster/auth: client authorization's users and roles, read and changed on the leader. */
function registerAuthRoutes(
  app: FastifyInstance,
  ctx: AdminContext,
  onLeader: (req: FastifyRequest, reply: FastifyReply, fn: () => Promise<unknown>) => Promise<unknown>,
): void {
  const auth = () => {
    const authState = ctx.authState;
    if (!authState)
      throw new ConfluxError('ROUTE_NOT_FOUND', 'this node does not offer client authorization');
    return { raft: ctx.raft, authState, tls: ctx.tls };
  };
  app.get('/_cluster/auth', async (req, reply) => onLeader(req, reply, () => getAuth(auth())));
  app.post('/_cluster/auth', async (req, reply) => {
    const changes = parse(authChangesRequestSchema, body(req), 'body');
    return onLeader(req, reply, () => postAuth(auth(), changes));
  });
}

/** Run `fn` here; if only the leader can, and this is not it, redirect the caller to the leader. */
async function leaderOrRedirect(
  ctx: AdminContext,
  req: FastifyRequest,
  reply: FastifyReply,
  fn: () => Promise<unknown>,
): Promise<unknown> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof RaftError && err.code === 'NOT_LEADER')) throw err;
    const leader = ctx.raft.metrics().currentLeader;
    const address = leader && leader !== ctx.nodeId ? ctx.addresses.get(leader)?.admin : undefined;
    if (!leader || !address)
      throw new ConfluxError('NO_LEADER', 'no leader is known right now; retry shortly');
    const location = `${ctx.tls ? 'https' : 'http'}://${address}${req.url}`;
    return reply
      .status(307)
      .header('location', location)
      .send({
        error: {
          code: 'NOT_LEADER',
          message: `${ctx.nodeId} does not lead; repeat the request at the leader ${leader} (${location})`,
          leader,
          leader_admin_address: address,
        },
      });
  }
}

/** The safe remove; a leader asked to remove itself hands leadership over first (the new leader removes it). */
async function removeNode(ctx: AdminContext, reply: FastifyReply, id: string, force: boolean) {
  const m = ctx.raft.metrics();
  if (id === ctx.nodeId && m.state === 'leader') {
    // The seed's rule: never remove a leader; hand leadership over, then the new leader removes.
    const target = bestTransferTarget(m, ctx.electionTicks);
    if (!target) {
      throw new ConfluxError('QUORUM_AT_RISK', `${id} leads and no other voter is reachable to take over`);
    }
    await transfer(ctx, target);
    throw new RaftError('NOT_LEADER', `leadership handed to ${target}`, target);
  }
  return accepted(reply, await ctx.membership.removeNode(id, force));
}

function accepted(reply: FastifyReply, a: { status: 200 | 202; operation: { id: string } }) {
  if (a.status === 202) reply.header('location', `/_cluster/operations/${a.operation.id}`);
  return reply.status(a.status).send(a.operation);
}

async function transfer(ctx: AdminContext, target: NodeId): Promise<void> {
  if (target === ctx.nodeId) return;
  const end = ctx.metrics?.transferSeconds.startTimer();
  try {
    await ctx.raft.transferLeader(target, ctx.transferTimeoutMs);
    end?.();
    ctx.metrics?.transfers.inc({ outcome: 'succeeded' });
  } catch (err) {
    ctx.metrics?.transfers.inc({ outcome: 'failed' });
    throw err;
  }
}

function leaderDocument(ctx: AdminContext) {
  const m = ctx.raft.metrics();
  if (!m.currentLeader) throw new ConfluxError('NO_LEADER', 'no leader is known right now; retry shortly');
  const info = ctx.addresses.get(m.currentLeader);
  const a = info ? toAddresses(info) : null;
  return {
    leader_id: m.currentLeader,
    term: m.currentTerm,
    api_address: a?.api_address ?? null,
    raft_address: a?.raft_address ?? null,
    admin_address: a?.admin_address ?? null,
  };
}
