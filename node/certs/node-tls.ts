// A node's TLS: the files named by --tls-cert/--tls-key/--tls-ca (and --admin-ca), reloaded while
// the node runs and applied to everything that uses them: the client API and admin API servers
// (new handshakes), the peer transport (new and re-established connections) and the node's own
// outgoing HTTPS calls (forwarding, admin calls to other members).

import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket, Server as TlsServer } from 'node:tls';
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

const colonless = (fingerprint: string) => fingerprint.replaceAll(':', '').toLowerCase();

/** SHA-256 fingerprints of the chain a client's certificate was verified through, leaf first. */
function chainFingerprints(socket: TLSSocket): string[] {
  const out: string[] = [];
  let cert: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  while (cert?.fingerprint256 && !out.includes(colonless(cert.fingerprint256))) {
    out.push(colonless(cert.fingerprint256));
    cert = cert.issuerCertificate;
  }
  return out;
}

/**
 * The authenticated connections of an HTTPS server, so that after a trust change the ones whose
 * client certificate chains to no CA trusted any more can be dropped: a keep-alive connection
 * verified under a retired CA must not outlive it.
 */
function trackClientConnections(server: TlsServer): (cas: Buffer[], log: Logger) => void {
  const sockets = new Set<TLSSocket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    if (!socket.authorized) return; // refused per request by the admin API, never trusted
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return (cas, log) => {
    const trusted = new Set(cas.map((pem) => colonless(new X509Certificate(pem).fingerprint256)));
    for (const socket of sockets) {
      if (chainFingerprints(socket).some((f) => trusted.has(f))) continue;
      log.info(
        { remote: socket.remoteAddress },
        'dropped a connection whose client certificate is no longer trusted',
      );
      sockets.delete(socket);
      socket.destroy();
    }
  };
}

/** From now on every change the reloader accepts is applied to `targets`; polling starts. */
export function applyTlsReloads(reloader: TlsReloader, targets: TlsTargets, log: Logger): void {
  const recheck = targets.adminServers.map(trackClientConnections);
  reloader.onChange((m) => {
    const tls = nodeTlsOf(m);
    Object.assign(targets.clientTls, tls);
    for (const server of targets.servers) server.setSecureContext(tls);
    for (const server of targets.adminServers) server.setSecureContext(adminTlsOf(m));
    for (const drop of recheck) drop(adminTlsOf(m).ca, log);
    targets.transport.setTls(tls);
    log.info(
      { cert: m.summary.cert.fingerprint_sha256, notAfter: m.summary.cert.not_after },
      'TLS material applied to the API servers and the peer transport',
    );
  });
  reloader.start();
}
