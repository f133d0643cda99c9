// What the API handlers need from the node, and the two rules every request path shares:
// where a request that needs the leader goes, and how long anything may take.

import type { FastifyReply, FastifyRequest } from 'fastify';
import { ConfluxError } from '../errors.js';
import type { KvStore } from '../kv/store.js';
import type { KvApplyResult } from '../kv/types.js';
import type { NodeMetrics } from '../metrics.js';
import type { RaftNode } from '../raft/raft-node.js';
import { type ForwardOptions, proxyToLeader, redirectToLeader } from './forward.js';

export interface ApiContext {
  nodeId: string;
  raft: RaftNode<KvApplyResult>;
  kv: KvStore;
  metrics: NodeMetrics;
  limits: { maxKeyBytes: number; maxValueBytes: number; maxBodyBytes: number; rateLimitPerSecond?: number };
  requestTimeoutMs: number;
  /** Answer 307 with the leader's address instead of proxying. */
  followerRedirect: boolean;
  /** Whether peers' APIs speak HTTPS. */
  https: boolean;
  forward: ForwardOptions;
  /** The client API address of a member, as it advertises it. */
  apiAddressOf(id: string): string | undefined;
}

/** Reject with TIMEOUT when `p` takes longer than `ms` (the operation itself may still happen). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ConfluxError('TIMEOUT', `${what} did not finish within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Run `fn` here when this node leads; otherwise proxy the request to the leader (or redirect).
 * Returns undefined when the answer was produced elsewhere.
 */
export async function onLeader<T>(
  ctx: ApiContext,
  req: FastifyRequest,
  reply: FastifyReply,
  fn: () => Promise<T>,
): Promise<T | undefined> {
  const m = ctx.raft.metrics();
  if (m.state === 'leader') return fn();
  const leader = m.currentLeader;
  if (!leader) throw new ConfluxError('NO_LEADER', 'no leader is known right now; retry shortly');
  const addr = ctx.apiAddressOf(leader);
  if (!addr) throw new ConfluxError('LEADER_UNREACHABLE', `the address of leader ${leader} is unknown`);
  if (ctx.followerRedirect) redirectToLeader(req, reply, addr, ctx.https);
  else await proxyToLeader(req, reply, addr, ctx.forward);
  return undefined;
}
