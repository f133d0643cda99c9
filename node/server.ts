// One Conflux node, composed from named builders (docs/ARCHITECTURE.md §1): the durable core
// (storage, the key-value state machine, the peer transport and the Raft node), the client API,
// the cluster operations behind the admin API, and the listeners with their TLS files.
// `startNode` returns once every port listens.

import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { nodeTlsOf, openTlsReloader } from './certs/node-tls.js';
import type { NodeConfig } from './config.js';
import type { KvStore } from './kv/store.js';
import type { KvApplyResult } from './kv/types.js';
import { NodeMetrics } from './metrics.js';
import type { RaftNode } from './raft/raft-node.js';
import type { NodeId } from './raft/types.js';
import { loadOrCreateNodeId } from './storage/index.js';
import type { PeerTransport } from './transport/peer-transport.js';
import { buildAdminServices } from './wiring/admin-services.js';
import { startClientApi } from './wiring/client-api.js';
import { startCore } from './wiring/core.js';
import { startAdminApi, startFormation, watchTlsFiles } from './wiring/listeners.js';

export interface RunningNode {
  id: NodeId;
  raft: RaftNode<KvApplyResult>;
  kv: KvStore;
  api: FastifyInstance;
  admin: FastifyInstance;
  transport: PeerTransport;
  apiUrl: string;
  adminUrl: string;
  stop(): Promise<void>;
}

export async function startNode(config: NodeConfig, rootLogger: Logger): Promise<RunningNode> {
  const id = loadOrCreateNodeId(config.dataDir, config.nodeId, config.nodeIdPrefix);
  const log = rootLogger.child({ nodeId: id });
  const metrics = new NodeMetrics();
  // TLS files are checked now and then polled; `tls` is updated in place when they change.
  const tlsReloader = openTlsReloader(config, log, metrics.registry);
  const tls = tlsReloader ? nodeTlsOf(tlsReloader.current) : undefined;

  const core = await startCore(config, { id, log, metrics, tls });
  const { api, apiUrl, quota } = await startClientApi(config, core, { metrics, tls, log });
  const services = buildAdminServices(config, core, { metrics, log, quota, tls, tlsReloader });
  core.clusterIdFrom(() => services.bootstrap.clusterId());
  const { admin, adminUrl } = await startAdminApi(config, services, { log, tlsReloader });
  if (tlsReloader && tls)
    watchTlsFiles(tlsReloader, { api, admin, transport: core.transport, clientTls: tls }, log);

  const started = { api: apiUrl, admin: adminUrl, raft: config.advertiseRaftAddr, dataDir: config.dataDir };
  log.info({ ...started, quotaBytes: quota.quotaBytes }, 'node started');
  startFormation(config, services, log);

  return {
    id,
    raft: core.raft,
    kv: core.kv,
    api,
    admin,
    transport: core.transport,
    apiUrl,
    adminUrl,
    stop: async () => {
      tlsReloader?.stop();
      services.bootstrap.stop();
      await admin.close();
      await api.close();
      await core.stop();
      log.info('node stopped');
      metrics.close();
    },
  };
}
