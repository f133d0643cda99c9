// What the API handlers need from the node, and the two rules every request path shares:
// where a request that needs the leader goes, and how long anything may take.

import type { FastifyReply, FastifyRequest } from 'fastify';
import { ConfluxError } from '../errors.js';
import type { KvStore } from '../kv/store.js';
import type { KvApplyResult } from '../kv/types.js';
import type { NodeMetrics } from '../metrics.js';
import type { RaftNode } from '../raft/raft-node.js';
import { clientAddress } from './client-address.js';
import {
  FORWARDED_BY,
  type ForwardOptions,
  proxyToLeader,
  redirectToLeader,
  UNPROPOSED_CODES,
} from './forward.js';
import type { ConnectionLimits, WatcherLimits } from './limits.js';
import type { StorageQuota } from './quota.js';

export interface ApiContext {
  nodeId: string;
  raft: RaftNode<KvApplyResult>;
  kv: KvStore;
  metrics: NodeMetrics;
  limits: {
    maxKeyBytes: number;
    maxValueBytes: number;
    maxBodyBytes: number;
    /** Answer bytes of keys and values (kv/answer-size.ts) one answer may carry. */
    maxResponseBytes: number;
    rateLimitPerSecond?: number;
  };
  connections: ConnectionLimits;
  quota: StorageQuota;
  watchers: WatcherLimits;
  requestTimeoutMs: number;
  /** Answer 307 with the leader's address instead of proxying. */
  followerRedirect: boolean;
  /** Whether peers' APIs speak HTTPS. */
  https: boolean;
  forward: ForwardOptions;
  /** The client API address of a member, as it advertises it. */
  apiAddressOf(id: string): string | undefined;
  /** The clock and timers of the request paths; the process's own when absent (node/sim drives them). */
  timers?: ApiTimers;
  /** Whether the data directory is still the one the node opened (node/storage/dir-watch.ts). */
  dataDir?: { problem(): string | null };
}

/** Time as the request paths see it. */
export interface ApiTimers {
  now(): number;
  /** Run `fn` after `ms`; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void;
}

export const processTimers: ApiTimers = {
  now: () => Date.now(),
  after: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** Reject with TIMEOUT when `p` takes longer than `ms` (the operation itself may still happen). */
export function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  what: string,
  timers: ApiTimers = processTimers,
): Promise<T> {
  // One promise and one timer per call (every write and linearizable read), not a race of two.
  return new Promise<T>((resolve, reject) => {
    const cancel = timers.after(ms, () =>
      reject(new ConfluxError('TIMEOUT', `${what} did not finish within ${ms} ms`)),
    );
    p.then(
      (value) => {
        cancel();
        resolve(value);
      },
      (err: unknown) => {
        cancel();
        reject(err);
      },
    );
  });
}

/**
 * Run `fn` here when this node leads; otherwise proxy the request to the leader (or redirect).
 * Returns undefined when the answer was produced elsewhere.
 *
 * A request refused before anything was proposed (no leader known, a leadership transfer in
 * progress, the leader just stepped down) waits for the next leader and is tried again, within
 * the request timeout: planned operations cost clients latency, not errors. Anything that may
 * have been proposed is never sent twice.
 */
export async function onLeader<T>(
  ctx: ApiContext,
  req: FastifyRequest,
  reply: FastifyReply,
  fn: () => Promise<T>,
): Promise<T | undefined> {
  const timers = ctx.timers ?? processTimers;
  const deadline = timers.now() + ctx.requestTimeoutMs;
  for (;;) {
    try {
      return await routeToLeader(ctx, req, reply, fn);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const left = deadline - timers.now();
      // A forwarded request is answered at once: the node that forwarded it does the waiting.
      const forwarded = req.headers[FORWARDED_BY] !== undefined;
      if (reply.sent || forwarded || typeof code !== 'string' || !UNPROPOSED_CODES.has(code) || left <= 0)
        throw err;
      await nextLeader(ctx, Math.min(left, LEADER_WAIT_SLICE_MS));
    }
  }
}

/** How long one wait for a leader lasts before the node's view is looked at again. */
const LEADER_WAIT_SLICE_MS = 100;

async function routeToLeader<T>(
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
  else await proxyToLeader(req, reply, addr, ctx.forward, clientOf(ctx, req));
  return undefined;
}

/** Resolves when this node learns of a (new) leader, or after `ms`. */
function nextLeader(ctx: ApiContext, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const cancel = (ctx.timers ?? processTimers).after(ms, done);
    const off = ctx.raft.onLeaderChange((leader) => {
      if (leader !== null) done();
    });
    function done() {
      cancel();
      off();
      resolve();
    }
  });
}

/** The client a request is from (the original one for a request a member forwarded). */
export function clientOf(ctx: ApiContext, req: FastifyRequest): string {
  return clientAddress(req, { selfId: ctx.nodeId, tls: ctx.https, apiAddressOf: ctx.apiAddressOf });
}
