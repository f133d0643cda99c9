// The admin port's listener, the TLS files kept current on every listener and the peer transport,
// and the node's part in forming a cluster (self-bootstrap or a join), once everything listens.

import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildAdminApi } from '../api/admin-app.js';
import { adminCall } from '../api/admin-client.js';
import { adminTlsOf, applyTlsReloads, type NodeTls } from '../certs/node-tls.js';
import type { TlsReloader } from '../certs/reload.js';
import type { NodeConfig } from '../config.js';
import { splitHostPort } from '../shapes/address.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import type { AdminServices } from './admin-services.js';
import { connectionLimits } from './client-api.js';

/** Builds the admin API over `services` and listens on --admin-addr. */
export async function startAdminApi(
  config: NodeConfig,
  services: AdminServices,
  deps: { log: Logger; tlsReloader?: TlsReloader | undefined },
): Promise<{ admin: FastifyInstance; adminUrl: string }> {
  const { tlsReloader } = deps;
  const admin = buildAdminApi(services.context, {
    logger: deps.log.child({ component: 'admin' }),
    limits: connectionLimits(config),
    ...(tlsReloader ? { https: adminTlsOf(tlsReloader.current) } : {}),
  });
  const [adminHost, adminPort] = splitHostPort(config.adminAddr);
  await admin.listen({ host: adminHost, port: adminPort });
  const address = admin.server.address();
  const port = typeof address === 'object' && address ? address.port : adminPort;
  return { admin, adminUrl: `${tlsReloader ? 'https' : 'http'}://${adminHost}:${port}` };
}

/** Changed TLS files reach the client and admin servers, the transport and the node's own calls. */
export function watchTlsFiles(
  tlsReloader: TlsReloader,
  targets: { api: FastifyInstance; admin: FastifyInstance; transport: PeerTransport; clientTls: NodeTls },
  log: Logger,
): void {
  const servers = {
    servers: [targets.api.server as unknown as TlsServer],
    adminServers: [targets.admin.server as unknown as TlsServer],
  };
  applyTlsReloads(
    tlsReloader,
    { ...servers, transport: targets.transport, clientTls: targets.clientTls },
    log,
  );
}

/** Joins the cluster at --join, or bootstraps alone when this node is the one to. */
export function startFormation(config: NodeConfig, services: AdminServices, log: Logger): void {
  const { bootstrap, callOptions } = services;
  if (config.join) {
    const target = config.join;
    bootstrap.startJoining((body) => adminCall(target, 'POST', '/_internal/join', body, callOptions));
  }
  void bootstrap.bootstrapAlone().catch((err: unknown) => log.error({ err }, 'bootstrap failed'));
}
