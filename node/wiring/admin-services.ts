// The cluster operations behind a node's admin API (docs/ARCHITECTURE.md §7): membership changes,
// bootstrap and joins, backup and restore, quorum-loss recovery and the status documents, built
// over the node's core. Calls to other members present this node's certificate.

import type { Logger } from 'pino';
import { z } from 'zod';
import { adminCallParsed } from '../api/admin-client.js';
import { internalStatusSchema, type PrepareRequest } from '../api/admin-contract.js';
import type { AdminContext } from '../api/admin-routes.js';
import type { StorageQuota } from '../api/quota.js';
import type { NodeTls } from '../certs/node-tls.js';
import type { TlsReloader } from '../certs/reload.js';
import type { NodeConfig } from '../config.js';
import type { NodeMetrics } from '../metrics.js';
import { BackupService } from '../ops/backup-service.js';
import { Bootstrap } from '../ops/bootstrap.js';
import { MembershipOps } from '../ops/membership.js';
import { OperationQueue } from '../ops/operations.js';
import { RecoveryService } from '../ops/recovery.js';
import { RestoreService } from '../ops/restore-service.js';
import { collectClusterStatus, internalStatus } from '../ops/status.js';
import type { NodeInfo } from '../raft/types.js';
import type { NodeCore } from './core.js';

/** How long /_cluster/status waits for each member. */
const STATUS_TIMEOUT_MS = 1_000;

export interface AdminServicesDeps {
  metrics: NodeMetrics;
  log: Logger;
  quota: StorageQuota;
  tls?: NodeTls | undefined;
  tlsReloader?: TlsReloader | undefined;
}

export interface AdminServices {
  /** What the admin API's routes act on. */
  context: AdminContext;
  bootstrap: Bootstrap;
  /** Options of this node's calls to other members' admin APIs. */
  callOptions: { timeoutMs: number; tls?: NodeTls };
}

export function buildAdminServices(
  config: NodeConfig,
  core: NodeCore,
  deps: AdminServicesDeps,
): AdminServices {
  const { metrics, log } = deps;
  const callOptions = { timeoutMs: config.requestTimeoutMs, ...(deps.tls ? { tls: deps.tls } : {}) };
  const prepare = async (target: NodeInfo, body: PrepareRequest) => {
    await adminCallParsed(z.unknown(), target.admin, 'POST', '/_internal/prepare', body, callOptions);
  };
  const queue = new OperationQueue();
  const membership = new MembershipOps({
    raft: core.raft,
    nodeId: core.id,
    addresses: core.addresses,
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
    raft: core.raft,
    nodeId: core.id,
    self: core.self,
    dataDir: config.dataDir,
    addresses: core.addresses,
    membership,
    prepare,
    ...(config.bootstrapExpect ? { bootstrapExpect: config.bootstrapExpect } : {}),
    log: log.child({ component: 'bootstrap' }),
  });
  const status = statusDocuments(config, core, { ...deps, callOptions });
  const recovery = new RecoveryService({
    raft: core.raft,
    nodeId: core.id,
    selfInfo: core.self,
    clusterStatus: status.clusterStatus,
    logger: log.child({ component: 'recovery' }),
  });
  const context: AdminContext = {
    nodeId: core.id,
    raft: core.raft,
    addresses: core.addresses,
    membership,
    bootstrap,
    queue,
    ...backupServices(config, core, deps),
    recovery,
    ...status,
    tls: deps.tlsReloader !== undefined,
    transferTimeoutMs: config.requestTimeoutMs,
    electionTicks: config.electionTicks,
    metrics,
    authState: () => core.kv.auth,
  };
  return { context, bootstrap, callOptions };
}

/** `POST /_cluster/backup` and `/_cluster/restore`, with the S3 settings and retention. */
export function backupServices(
  config: NodeConfig,
  core: NodeCore,
  deps: { metrics: NodeMetrics; log: Logger },
): { backup: BackupService; restore: RestoreService } {
  const backupOptions = {
    // A backup inside the data directory would count against the quota and vanish with the data.
    protectedDirs: [config.dataDir],
    connection: {
      ...(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {}),
      ...(config.s3Region ? { region: config.s3Region } : {}),
      ...(config.s3PathStyle ? { forcePathStyle: true } : {}),
    },
  };
  const backup = new BackupService({
    raft: core.raft,
    kv: core.kv,
    nodeId: core.id,
    metrics: deps.metrics,
    logger: deps.log.child({ component: 'backup' }),
    backupOptions,
    ...(config.backupDestination ? { defaultDestination: config.backupDestination } : {}),
    retention: {
      ...(config.backupKeepLast ? { keepLast: config.backupKeepLast } : {}),
      ...(config.backupMaxAgeDays ? { maxAgeDays: config.backupMaxAgeDays } : {}),
    },
  });
  const restore = new RestoreService({
    raft: core.raft,
    kv: core.kv,
    nodeId: core.id,
    selfInfo: core.self,
    metrics: deps.metrics,
    logger: deps.log.child({ component: 'restore' }),
    backupOptions,
  });
  return { backup, restore };
}

/** This node's `/_internal/status` document, and `/_cluster/status` gathered from every member's. */
export function statusDocuments(
  config: NodeConfig,
  core: NodeCore,
  deps: { quota: StorageQuota; tlsReloader?: TlsReloader | undefined; callOptions: { timeoutMs: number } },
): Pick<AdminContext, 'internalStatus' | 'clusterStatus'> {
  const { quota } = deps;
  const internal = () => ({
    ...internalStatus(core.raft.metrics(), { tickMs: config.tickMs }),
    tls: deps.tlsReloader?.status() ?? null,
    quota: { db_bytes: quota.usedBytes, quota_bytes: quota.quotaBytes, alarm: quota.alarm },
  });
  const clusterStatus = () =>
    collectClusterStatus(
      internal(),
      (_peer, address) =>
        adminCallParsed(internalStatusSchema, address, 'GET', '/_internal/status', undefined, {
          ...deps.callOptions,
          timeoutMs: STATUS_TIMEOUT_MS,
        }),
      { timeoutMs: STATUS_TIMEOUT_MS, lagThreshold: config.catchUpMaxLag * 10 },
    );
  return { internalStatus: internal, clusterStatus };
}
