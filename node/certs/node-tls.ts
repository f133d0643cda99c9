// A node's TLS: the files named by --tls-cert/--tls-key/--tls-ca (and --admin-ca), reloaded while
// the node runs and applied to everything that uses them: the client API and admin API servers
// (new handshakes), the peer transport (new and re-established connections) and the node's own
// outgoing HTTPS calls (forwarding, admin calls to other members).

import type { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { TlsReloader } from './reload.js';
import type { TlsMaterial } from './tls-material.js';
import { registerTlsMetrics } from './tls-metrics.js';

export const DEFAULT_TLS_RELOAD_INTERVAL_MS = 10_000;

export interface NodeTlsConfig {
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsCa?: string | undefined;
  adminCa?: string | undefined;
  tlsReloadIntervalMs?: number | undefined;
}

/** TLS options as Node's https/tls take them: this node's certificate and the CAs it trusts. */
export interface NodeTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer[];
}

export function nodeTlsOf(m: TlsMaterial): NodeTls {
  return { cert: m.cert, key: m.key, ca: m.ca };
}

/** The admin API also trusts the admin CA (--admin-ca), for administrators' certificates. */
export function adminTlsOf(m: TlsMaterial): NodeTls {
  return { cert: m.cert, key: m.key, ca: [...m.ca, ...m.extraCa] };
}

/** Loads and checks the TLS files (throws when unusable); undefined when the node runs without TLS. */
export function openTlsReloader(
  config: NodeTlsConfig,
  logger: Logger,
  registry: Registry,
): TlsReloader | undefined {
  if (!config.tlsCert || !config.tlsKey || !config.tlsCa) return undefined;
  let metrics: ReturnType<typeof registerTlsMetrics> | undefined;
  const reloader = new TlsReloader(
    {
      cert: config.tlsCert,
      key: config.tlsKey,
      ca: config.tlsCa,
      ...(config.adminCa ? { extraCa: [config.adminCa] } : {}),
    },
    {
      intervalMs: config.tlsReloadIntervalMs ?? DEFAULT_TLS_RELOAD_INTERVAL_MS,
      logger,
      onOutcome: (outcome) => metrics?.reloads.inc({ outcome }),
    },
  );
  metrics = registerTlsMetrics(registry, reloader);
  return reloader;
}

export interface TlsTargets {
  /** HTTPS servers that verify clients against the cluster CA bundle (the client API). */
  servers: TlsServer[];
  /** HTTPS servers that also trust the admin CA (the admin API). */
  adminServers: TlsServer[];
  transport: { setTls(tls: NodeTls): void };
  /**
   * The options object this node's own HTTPS calls use: updated in place, so every holder of it
   * dials with the current certificate.
   */
  clientTls: NodeTls;
}

/** From now on every change the reloader accepts is applied to `targets`; polling starts. */
export function applyTlsReloads(reloader: TlsReloader, targets: TlsTargets, log: Logger): void {
  reloader.onChange((m) => {
    const tls = nodeTlsOf(m);
    Object.assign(targets.clientTls, tls);
    for (const server of targets.servers) server.setSecureContext(tls);
    for (const server of targets.adminServers) server.setSecureContext(adminTlsOf(m));
    targets.transport.setTls(tls);
    log.info(
      { cert: m.summary.cert.fingerprint_sha256, notAfter: m.summary.cert.not_after },
      'TLS material applied to the API servers and the peer transport',
    );
  });
  reloader.start();
}
