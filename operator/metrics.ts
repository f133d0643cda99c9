// The operator's own Prometheus metrics and its health endpoints (/metrics, /healthz, /readyz),
// on a small HTTP server separate from anything the clusters serve.

import { createServer, type Server } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { PHASES } from './api/cluster.js';
import type { Action } from './reconcile/types.js';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: 'conflux_operator_reconciles_total',
    help: 'Reconcile passes by cluster, the step taken and the outcome',
    labelNames: ['cluster', 'action', 'outcome'],
    registers: [this.registry],
  });
  readonly reconcileSeconds = new Histogram({
    name: 'conflux_operator_reconcile_seconds',
    help: 'Duration of a reconcile pass (observe, plan, act, status)',
    labelNames: ['action'],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly phase = new Gauge({
    name: 'conflux_operator_cluster_phase',
    help: '1 for the phase each cluster is in, 0 for the others',
    labelNames: ['cluster', 'phase'],
    registers: [this.registry],
  });
  readonly leading = new Gauge({
    name: 'conflux_operator_leader',
    help: '1 while this operator replica holds the leader Lease',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'conflux_operator_process_' });
  }

  /** For Reconciler's onPass. */
  pass(cluster: string, action: Action, error: Error | null, ms: number): void {
    this.reconciles.inc({ cluster, action: action.type, outcome: error ? 'error' : 'ok' });
    this.reconcileSeconds.observe({ action: action.type }, ms / 1000);
  }

  setPhase(cluster: string, phase: string | undefined): void {
    for (const p of PHASES) this.phase.set({ cluster, phase: p }, p === phase ? 1 : 0);
  }
}

/** Serve /metrics, /healthz (the process runs) and /readyz (`ready()` says it can work). */
export function serveMetrics(
  metrics: OperatorMetrics,
  ready: () => boolean,
  host: string,
  port: number,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
      return;
    }
    if (path === '/healthz') return void res.writeHead(200).end('ok');
    if (path === '/readyz') return void res.writeHead(ready() ? 200 : 503).end(ready() ? 'ok' : 'not ready');
    res.writeHead(404).end();
  });
  return new Promise((ok) => server.listen(port, host, () => ok(server)));
}
