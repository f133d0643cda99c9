// Prometheus metrics of a node's TLS material: when the served certificate and each trusted CA
// expire, and how reloads went.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { TlsReloader } from './reload.js';

export interface TlsMetrics {
  reloads: Counter<'outcome'>;
}

/** Registers the TLS metrics for `reloader` on `registry`; the gauges read it at scrape time. */
export function registerTlsMetrics(registry: Registry, reloader: TlsReloader): TlsMetrics {
  new Gauge({
    name: 'conflux_tls_cert_not_after_seconds',
    help: 'Expiry (Unix seconds) of the TLS certificates in use: the served one (role=cert) and each trusted CA',
    labelNames: ['role', 'fingerprint'],
    registers: [registry],
    collect() {
      this.reset();
      const status = reloader.status();
      const seconds = (iso: string) => Date.parse(iso) / 1000;
      this.set(
        { role: 'cert', fingerprint: status.cert.fingerprint_sha256.slice(0, 16) },
        seconds(status.cert.not_after),
      );
      for (const ca of status.ca) {
        this.set({ role: 'ca', fingerprint: ca.fingerprint_sha256.slice(0, 16) }, seconds(ca.not_after));
      }
    },
  });
  const reloads = new Counter({
    name: 'conflux_tls_reloads_total',
    help: 'Changed TLS files seen, by outcome (applied, or refused and the previous material kept)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const outcome of ['applied', 'refused']) reloads.inc({ outcome }, 0);
  return { reloads };
}
