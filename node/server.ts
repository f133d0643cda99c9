// One Conflux node: durable storage, the peer transport, the Raft node, the key-value state
// machine and the client API, wired together. `startNode` returns once every port listens.

import { randomInt } from 'node:crypto';
import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { buildAdminApi } from './api/admin-app.js';
import { adminCall, adminCallParsed } from './api/admin-client.js';
import { internalStatusSchema, type PrepareRequest } from './api/admin-contract.js';
import { buildClientApi } from './api/app.js';
import type { ApiContext } from './api/context.js';
import { splitHostPort } from './api/forward.js';
import { type ConnectionLimits, WatcherLimits } from './api/limits.js';
import { defaultQuotaBytes, StorageQuota } from './api/quota.js';
import { adminTlsOf, applyTlsReloads, nodeTlsOf, openTlsReloader } from './certs/node-tls.js';
import type { NodeConfig } from './config.js';
import { KvStore } from './kv/store.js';
import type { KvApplyResult } from './kv/types.js';
import { NodeMetrics } from './metrics.js';
import { AddressBook } from './ops/address-book.js';
import { BackupService } from './ops/backup-service.js';
import { Bootstrap, staticClusterId } from './ops/bootstrap.js';
import { MembershipOps } from './ops/membership.js';
import { OperationQueue } from './ops/operations.js';
import { RecoveryService } from './ops/recovery.js';
import { RestoreService } from './ops/restore-service.js';
import { collectClusterStatus, internalStatus } from './ops/status.js';
import { DEFAULT_CONFIG } from './raft/raft.js';
import { RaftNode, realClock } from './raft/raft-node.js';
import { SeededRng } from './raft/rng.js';
import type { NodeId, NodeInfo } from './raft/types.js';

/** How long /_cluster/status waits for each member. */
const STATUS_TIMEOUT_MS = 1_000;

import {
  type DiskStorage,
  loadOrCreateNodeId,
  nodeStorageHooks,
  openStorage,
  reportOpenFailure,
} from './storage/index.js';
import { MembershipAdmission } from './transport/membership-admission.js';
import { PeerTransport } from './transport/peer-transport.js';

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

  const storageLog = log.child({ component: 'storage' });
  const { storage, state } = await openStorage(config.dataDir, {
    logger: storageLog,
    onFsync: (ms) => metrics.fsync.observe(ms / 1000),
    // Fail-stop: a failed write or fsync exits the process before anything is acknowledged.
    ...nodeStorageHooks(process.env, storageLog),
  }).catch((err: unknown) => reportOpenFailure(err, storageLog));
  const kv = new KvStore({
    maxKeyBytes: config.maxKeyBytes,
    maxValueBytes: config.maxValueBytes,
    historyRevisions: config.watchHistory,
    logger: log.child({ component: 'kv' }),
  });
  // The transport delivers into the Raft node, asks the bootstrap service for the cluster id and
  // the address book for the members it was told of; all are created after it, and until then
  // it admits nobody (peers redial).
  let raft: RaftNode<KvApplyResult> | null = null;
  let bootstrapRef: Bootstrap | null = null;
  let addressesRef: AddressBook | null = null;
  const admission = new MembershipAdmission(id, (peer) => addressesRef?.get(peer)?.raft);
  const transport = new PeerTransport({
    selfId: id,
    onMessage: (m) => raft?.step(m),
    admission,
    clusterId: () => bootstrapRef?.clusterId() ?? raft?.metrics().membership.cluster?.id ?? null,
    advertisedAddress: config.advertiseRaftAddr,
    ...(tls ? { tls } : {}),
    logger: log.child({ component: 'transport' }),
    metrics: { protocolError: (reason) => metrics.peerProtocolErrors.inc({ reason }) },
  });
  const [raftHost, raftPort] = splitHostPort(config.raftAddr);
  await transport.listen(raftHost, raftPort);

  raft = RaftNode.start({
    config: {
      ...DEFAULT_CONFIG,
      id,
      rng: new SeededRng(randomInt(2 ** 31)),
      electionTicks: config.electionTicks,
    },
    state,
    storage,
    stateMachine: kv,
    transport,
    clock: realClock,
    tickMs: config.tickMs,
    onApplied: (_entries, ms) => metrics.apply.observe(ms / 1000),
  });
  const node = raft;

  const self: NodeInfo = {
    raft: config.advertiseRaftAddr,
    api: config.advertiseApiAddr,
    admin: config.advertiseAdminAddr,
  };
  const addresses = new AddressBook(id, self, (peers) => transport.setPeers(peers));
  addressesRef = addresses;
  // Admission first: the transport forgets the addresses of retired ids when its peers change.
  admission.update(node.metrics().membership);
  addresses.learn(node.metrics().membership);
  if (config.initialCluster) addresses.hint(config.initialCluster);
  let knownMembership = node.metrics().membership;
  node.watchMetrics((m) => {
    if (m.membership === knownMembership) return;
    knownMembership = m.membership;
    admission.update(m.membership);
    addresses.learn(m.membership);
  });

  const fresh = state.hardState.term === 0 && state.entries.length === 0 && state.snapshot === null;
  if (fresh && config.initialCluster) {
    // Every member of a static initial cluster writes the same first entry, so they agree on it.
    node
      .initialize(Object.keys(config.initialCluster), {
        nodes: config.initialCluster,
        cluster: { id: staticClusterId(config.initialCluster), restoredFrom: null },
      })
      .catch((err: unknown) => log.error({ err }, 'initialize failed'));
  }

  keepSnapshotting(node, config.snapshotEntries, metrics, log);
  node.watchMetrics((m) => metrics.observeRaft(m));
  node.onLeaderChange((leader, term) => log.info({ leader, term }, leader ? 'leader known' : 'no leader'));

  const connections: ConnectionLimits = {
    maxConnections: config.maxConnections,
    maxConnectionsPerClient: config.maxConnectionsPerClient,
    readHeaderTimeoutMs: config.readHeaderTimeoutMs,
    readTimeoutMs: config.readTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
  };
  const quota = new StorageQuota(kv, config.quotaBytes ?? defaultQuotaBytes(process.constrainedMemory?.()));
  const ctx: ApiContext = {
    nodeId: id,
    raft: node,
    kv,
    metrics,
    limits: {
      maxKeyBytes: config.maxKeyBytes,
      maxValueBytes: config.maxValueBytes,
      maxBodyBytes: config.maxBodyBytes,
      maxResponseBytes: config.maxResponseBytes,
      ...(config.rateLimitPerSecond ? { rateLimitPerSecond: config.rateLimitPerSecond } : {}),
    },
    connections,
    quota,
    watchers: new WatcherLimits(config.maxWatchers, config.maxWatchersPerClient),
    requestTimeoutMs: config.requestTimeoutMs,
    followerRedirect: config.followerRedirect,
    https: tls !== undefined,
    forward: { selfId: id, timeoutMs: config.requestTimeoutMs, ...(tls ? { tls } : {}) },
    apiAddressOf: (peer) => addresses.get(peer)?.api,
  };
  const api = await buildClientApi(ctx, {
    logger: log.child({ component: 'api' }),
    ...(tls ? { https: tls } : {}),
  });
  const [apiHost, apiPort] = splitHostPort(config.apiAddr);
  await api.listen({ host: apiHost, port: apiPort });
  const apiUrl = `${tls ? 'https' : 'http'}://${config.advertiseApiAddr}`;

  // Calls to other members' admin APIs present this node's certificate (`tls`, kept current).
  const adminCallOpts = { timeoutMs: config.requestTimeoutMs, ...(tls ? { tls } : {}) };
  const prepare = async (target: NodeInfo, body: PrepareRequest) => {
    await adminCallParsed(z.unknown(), target.admin, 'POST', '/_internal/prepare', body, adminCallOpts);
  };
  const queue = new OperationQueue();
  const membership = new MembershipOps({
    raft: node,
    nodeId: id,
    addresses,
    queue,
    prepare,
    metrics,
    log: log.child({ component: 'membership' }),
    catchUp: {
      maxLag: config.catchUpMaxLag,
      stableMs: config.catchUpStableMs,
      timeoutMs: config.catchUpTimeoutMs,
      pollMs: 100,
    },
    electionTicks: config.electionTicks,
    electionTimeoutMs: config.electionTicks * config.tickMs,
  });
  const bootstrap = new Bootstrap({
    raft: node,
    nodeId: id,
    self,
    dataDir: config.dataDir,
    addresses,
    membership,
    prepare,
    ...(config.bootstrapExpect ? { bootstrapExpect: config.bootstrapExpect } : {}),
    log: log.child({ component: 'bootstrap' }),
  });
  bootstrapRef = bootstrap;
  const backupOptions = {
    connection: {
      ...(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {}),
      ...(config.s3Region ? { region: config.s3Region } : {}),
      ...(config.s3PathStyle ? { forcePathStyle: true } : {}),
    },
  };
  const backup = new BackupService({
    raft: node,
    kv,
    nodeId: id,
    metrics,
    logger: log.child({ component: 'backup' }),
    backupOptions,
    ...(config.backupDestination ? { defaultDestination: config.backupDestination } : {}),
    retention: {
      ...(config.backupKeepLast ? { keepLast: config.backupKeepLast } : {}),
      ...(config.backupMaxAgeDays ? { maxAgeDays: config.backupMaxAgeDays } : {}),
    },
  });
  const restore = new RestoreService({
    raft: node,
    kv,
    nodeId: id,
    selfInfo: self,
    metrics,
    logger: log.child({ component: 'restore' }),
    backupOptions,
  });
  const internal = () => ({
    ...internalStatus(node.metrics(), { tickMs: config.tickMs }),
    tls: tlsReloader?.status() ?? null,
    quota: { db_bytes: quota.usedBytes, quota_bytes: quota.quotaBytes, alarm: quota.alarm },
  });
  const clusterStatus = () =>
    collectClusterStatus(
      internal(),
      (_peer, address) =>
        adminCallParsed(internalStatusSchema, address, 'GET', '/_internal/status', undefined, {
          ...adminCallOpts,
          timeoutMs: STATUS_TIMEOUT_MS,
        }),
      { timeoutMs: STATUS_TIMEOUT_MS, lagThreshold: config.catchUpMaxLag * 10 },
    );
  const recovery = new RecoveryService({
    raft: node,
    nodeId: id,
    selfInfo: self,
    clusterStatus,
    logger: log.child({ component: 'recovery' }),
  });
  const admin = buildAdminApi(
    {
      nodeId: id,
      raft: node,
      addresses,
      membership,
      bootstrap,
      queue,
      backup,
      restore,
      recovery,
      internalStatus: internal,
      clusterStatus,
      tls: tlsReloader !== undefined,
      transferTimeoutMs: config.requestTimeoutMs,
      electionTicks: config.electionTicks,
      metrics,
    },
    {
      logger: log.child({ component: 'admin' }),
      limits: connections,
      ...(tlsReloader ? { https: adminTlsOf(tlsReloader.current) } : {}),
    },
  );
  const [adminHost, adminPort] = splitHostPort(config.adminAddr);
  await admin.listen({ host: adminHost, port: adminPort });
  const adminAddress = admin.server.address();
  if (tlsReloader && tls) {
    const servers = {
      servers: [api.server as unknown as TlsServer],
      adminServers: [admin.server as unknown as TlsServer],
    };
    applyTlsReloads(tlsReloader, { ...servers, transport, clientTls: tls }, log);
  }
  const adminUrl = `${tls ? 'https' : 'http'}://${adminHost}:${typeof adminAddress === 'object' && adminAddress ? adminAddress.port : adminPort}`;
  log.info(
    {
      api: apiUrl,
      admin: adminUrl,
      raft: config.advertiseRaftAddr,
      dataDir: config.dataDir,
      quotaBytes: quota.quotaBytes,
    },
    'node started',
  );
  if (config.join) {
    const target = config.join;
    bootstrap.startJoining((body) => adminCall(target, 'POST', '/_internal/join', body, adminCallOpts));
  }
  void bootstrap.bootstrapAlone().catch((err: unknown) => log.error({ err }, 'bootstrap failed'));

  return {
    id,
    raft: node,
    kv,
    api,
    admin,
    transport,
    apiUrl,
    adminUrl,
    stop: async () => {
      tlsReloader?.stop();
      bootstrap.stop();
      await admin.close();
      await stop(api, node, transport, storage, log);
      metrics.close();
    },
  };
}

/** Snapshot every `everyEntries` applied entries, so the log stays short and restarts fast. */
function keepSnapshotting(
  raft: RaftNode<KvApplyResult>,
  everyEntries: number,
  metrics: NodeMetrics,
  log: Logger,
): void {
  let busy = false;
  raft.watchMetrics((m) => {
    if (busy || m.lastApplied - (m.snapshot?.index ?? 0) < everyEntries) return;
    busy = true;
    const end = metrics.snapshotSeconds.startTimer();
    raft
      .triggerSnapshot()
      .then((meta) => {
        end();
        if (meta) metrics.snapshots.inc();
      })
      .catch((err: unknown) => log.warn({ err }, 'snapshot failed'))
      .finally(() => {
        busy = false;
      });
  });
}

async function stop(
  api: FastifyInstance,
  raft: RaftNode<KvApplyResult>,
  transport: PeerTransport,
  storage: DiskStorage,
  log: Logger,
): Promise<void> {
  await api.close();
  await raft.shutdown();
  await transport.close();
  await storage.close();
  log.info('node stopped');
}
