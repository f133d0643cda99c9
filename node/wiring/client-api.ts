// The client API of a node (docs/ARCHITECTURE.md §6): its limits from the configuration, the
// storage quota, and the HTTP(S) server listening on --api-addr (with, under --metrics-addr,
// the metrics and probes listener beside it).

import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildClientApi } from '../api/app.js';
import type { ApiContext } from '../api/context.js';
import { type ConnectionLimits, WatcherLimits } from '../api/limits.js';
import { buildMetricsApi } from '../api/metrics-app.js';
import { defaultQuotaBytes, StorageQuota } from '../api/quota.js';
import type { NodeTls } from '../certs/node-tls.js';
import type { NodeConfig } from '../config.js';
import type { NodeMetrics } from '../metrics.js';
import { splitHostPort } from '../shapes/address.js';
import { type DataDirWatch, watchDataDir } from '../storage/dir-watch.js';
import type { NodeCore } from './core.js';

export interface ClientApi {
  api: FastifyInstance;
  /** The advertised URL of the client API. */
  apiUrl: string;
  quota: StorageQuota;
}

/** The connection caps and timeouts every listener of a node applies (client and admin port). */
export function connectionLimits(config: NodeConfig): ConnectionLimits {
  return {
    maxConnections: config.maxConnections,
    maxConnectionsPerClient: config.maxConnectionsPerClient,
    maxNewConnectionsPerSecond: config.maxNewConnectionsPerSecond,
    readHeaderTimeoutMs: config.readHeaderTimeoutMs,
    readTimeoutMs: config.readTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
  };
}

/** Everything the client API's routes read: the node's parts and its limits. */
export function apiContext(
  config: NodeConfig,
  core: NodeCore,
  deps: { metrics: NodeMetrics; tls?: NodeTls | undefined; quota: StorageQuota },
): ApiContext {
  const { tls } = deps;
  return {
    nodeId: core.id,
    raft: core.raft,
    kv: core.kv,
    metrics: deps.metrics,
    limits: {
      maxKeyBytes: config.maxKeyBytes,
      maxValueBytes: config.maxValueBytes,
      maxBodyBytes: config.maxBodyBytes,
      maxResponseBytes: config.maxResponseBytes,
      ...(config.rateLimitPerSecond ? { rateLimitPerSecond: config.rateLimitPerSecond } : {}),
    },
    connections: connectionLimits(config),
    quota: deps.quota,
    watchers: new WatcherLimits(config.maxWatchers, config.maxWatchersPerClient),
    requestTimeoutMs: config.requestTimeoutMs,
    followerRedirect: config.followerRedirect,
    https: tls !== undefined,
    forward: { selfId: core.id, timeoutMs: config.requestTimeoutMs, ...(tls ? { tls } : {}) },
    apiAddressOf: (peer) => core.addresses.get(peer)?.api,
  };
}

/** Builds the client API over `core` and listens on --api-addr. */
export async function startClientApi(
  config: NodeConfig,
  core: NodeCore,
  deps: { metrics: NodeMetrics; tls?: NodeTls | undefined; log: Logger },
): Promise<ClientApi> {
  const quota = new StorageQuota(
    core.kv,
    config.quotaBytes ?? defaultQuotaBytes(process.constrainedMemory?.()),
  );
  const ctx = apiContext(config, core, { ...deps, quota });
  ctx.dataDir = watchDataDir(config.dataDir, deps.log.child({ component: 'storage' }));
  const api = await buildClientApi(ctx, {
    logger: deps.log.child({ component: 'api' }),
    ...(deps.tls ? { https: deps.tls } : {}),
    metricsElsewhere: config.metricsAddr !== undefined,
  });
  api.addHook('onClose', async () => (ctx.dataDir as DataDirWatch).stop());
  if (config.metricsAddr !== undefined) {
    // Closed with the client API, whose context it reads.
    const metricsApi = await buildMetricsApi(ctx, deps.log.child({ component: 'metrics' }));
    api.addHook('onClose', async () => metricsApi.close());
    const [host, port] = splitHostPort(config.metricsAddr);
    await metricsApi.listen({ host, port });
  }
  const [apiHost, apiPort] = splitHostPort(config.apiAddr);
  await api.listen({ host: apiHost, port: apiPort });
  return { api, apiUrl: `${deps.tls ? 'https' : 'http'}://${config.advertiseApiAddr}`, quota };
}
