// The client HTTP API in the simulation: each process of a node gets the real fastify app
// (node/api/app.ts with the kv and watch routes) with an ApiContext like node/server.ts's, and clients
// call it with fastify's inject() (no socket). The seams that keep it deterministic:
// - `ApiContext.timers` runs the request timeouts and the wait for a new leader on the node's
//   simulated clock (skewed, paused with the process);
// - `ForwardOptions.dispatch` carries a follower's forwarded request to the leader over the
//   simulated network (delay, TCP retransmission after loss, partitions, a dead or restarted
//   leader), where the leader's own app answers it.

import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { buildClientApi } from '../api/app.js';
import type { ApiContext, ApiTimers } from '../api/context.js';
import type { ForwardDispatcher } from '../api/forward.js';
import { WatcherLimits } from '../api/limits.js';
import { StorageQuota } from '../api/quota.js';
import { NodeMetrics } from '../metrics.js';
import { type Life, nodeInfo } from './cluster.js';

/** How long a follower waits for the leader's answer to a forwarded request. */
export const FORWARD_TIMEOUT_MS = 250;
/** The API's request timeout (a write or linearizable read, and the wait for a leader). */
export const REQUEST_TIMEOUT_MS = 300;

const silent = pino({ level: 'silent' });

// Building a fastify app costs ~10-20 ms, more than a whole seed may take, so one app serves
// every simulated process of this worker: its ApiContext is a view of the context of the process
// the request is for, which AsyncLocalStorage carries through the request's continuations
// (timers and promises included). The routes and hooks read the context on every request
// (node/api/app.ts), so each process answers with its own Raft node, store and clock.
const current = new AsyncLocalStorage<ApiContext>();
const contexts = new WeakMap<Life, ApiContext>();
/** Contexts of runs with the json-drops-bom mutation (mutations.ts). */
const dropsBom = new WeakSet<ApiContext>();
const view = new Proxy({} as ApiContext, {
  get(_, field) {
    const ctx = current.getStore();
    if (!ctx) throw new Error(`the simulated API read ctx.${String(field)} outside a request`);
    return ctx[field as keyof ApiContext];
  },
});
let shared: Promise<FastifyInstance> | null = null;

function contextOf(life: Life): ApiContext {
  let ctx = contexts.get(life);
  if (!ctx) {
    ctx = build(life);
    contexts.set(life, ctx);
    if (life.env.mutations.has('json-drops-bom')) dropsBom.add(ctx);
  }
  return ctx;
}

/** Run `fn` as part of a request to `life`'s API. */
function within<T>(life: Life, fn: (app: FastifyInstance) => Promise<T>): Promise<T> {
  const ctx = contextOf(life);
  // The app reads a few settings while it is built (the body limit, connection limits): the
  // same constants for every process.
  shared ??= current.run(ctx, async () => {
    const app = await buildClientApi(view, { logger: silent });
    app.addHook('onSend', async (_req, _reply, payload) => {
      const mine = current.getStore();
      if (!mine || !dropsBom.has(mine) || typeof payload !== 'string') return payload;
      return payload.replaceAll('"key":"\uFEFF', '"key":"').replaceAll('"value":"\uFEFF', '"value":"');
    });
    return app;
  });
  return current.run(ctx, () => (shared as Promise<FastifyInstance>).then(fn));
}

function build(life: Life): ApiContext {
  const raft = life.raft;
  const kv = life.kv;
  if (!raft || !kv) throw new Error(`${life.id} has no running Raft node`);
  const timers: ApiTimers = {
    now: () => life.clock.nowMs(),
    after: (ms, fn) => {
      const t = life.clock.setTimeout(fn, ms);
      return () => t.cancel();
    },
  };
  const dispatch: ForwardDispatcher = (req) => {
    life.env.coverage.forwarded++;
    const to = req.host.replace(/\.sim$/, '');
    return life.env.net.exchange(
      life,
      to,
      async (server) => {
        const res = await inject(server as Life, {
          method: req.method as InjectOptions['method'],
          url: req.path,
          headers: req.headers,
          ...(req.body ? { payload: req.body } : {}),
        });
        return { status: res.statusCode, headers: res.headers, body: res.rawPayload };
      },
      FORWARD_TIMEOUT_MS,
    );
  };
  return {
    nodeId: life.id,
    raft,
    kv,
    metrics: new NodeMetrics(false),
    limits: {
      maxKeyBytes: kv.limits.maxKeyBytes,
      maxValueBytes: kv.limits.maxValueBytes,
      maxBodyBytes: 1 << 20,
      maxResponseBytes: 1 << 20,
    },
    connections: {
      maxConnections: 1000,
      maxConnectionsPerClient: 1000,
      readHeaderTimeoutMs: 10_000,
      readTimeoutMs: 10_000,
      idleTimeoutMs: 10_000,
    },
    quota: new StorageQuota(kv, 1 << 30),
    watchers: new WatcherLimits(1000, 1000),
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    followerRedirect: false,
    https: false,
    forward: { selfId: life.id, timeoutMs: FORWARD_TIMEOUT_MS, dispatch },
    apiAddressOf: (peer) => nodeInfo(peer).api,
    timers,
  };
}

/** A request to the process's API, handled when the process runs (not while it is paused). */
export function inject(life: Life, opts: InjectOptions): Promise<LightMyRequestResponse> {
  return new Promise((resolve, reject) => {
    life.post(0, () => {
      within(life, (app) => app.inject(opts)).then(resolve, reject);
    });
  });
}

/** The URL path of a key, as the CLI builds it (operator/cli/kv.ts). */
export const keyPath = (key: string): string => `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`;
