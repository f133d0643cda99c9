#!/usr/bin/env node
// The operator process as it runs in a Kubernetes cluster: it watches ConfluxCluster and
// ConfluxBackup resources and reconciles them on the Kubernetes platform, while it holds the
// leader Lease (two replicas never act at once). /metrics, /healthz and /readyz on --metrics-addr.
// Settings are flags or CONFLUX_OPERATOR_* environment variables (settings.ts).

import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { type Logger, pino } from 'pino';
import { OperatorMetrics, serveMetrics } from './metrics.js';
import { KubeCache } from './platform/kube-cache.js';
import { KubernetesPlatform } from './platform/kubernetes.js';
import { KubernetesStore } from './platform/kubernetes-store.js';
import { kubernetesLeaseApi, LeaderElector } from './platform/leader-election.js';
import { Reconciler } from './reconcile/reconciler.js';
import { loadOperatorConfig, type OperatorConfig } from './settings.js';

async function main(): Promise<void> {
  const c = loadOperatorConfig(process.argv.slice(2), process.env, hostname());
  const logger = pino({ level: c.logLevel }).child({ component: 'operator', identity: c.identity });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const metrics = new OperatorMetrics();
  // One LIST+WATCH per kind the clusters own; passes read from it (docs/ARCHITECTURE.md §8).
  const cache = new KubeCache({
    kubeConfig,
    logger,
    ...(c.namespace ? { namespace: c.namespace } : {}),
    ...(c.networkPolicy ? {} : { without: ['NetworkPolicy' as const] }),
  });
  const store = new KubernetesStore({
    kubeConfig,
    logger,
    cache,
    ...(c.namespace ? { namespace: c.namespace } : {}),
  });
  const platform = kubernetesPlatform(c, kubeConfig, logger, cache);
  const reconciler = new Reconciler({
    store,
    platform,
    logger,
    onPass: (key, action, error, ms) => metrics.pass(key, action, error, ms),
    onStatus: (key, status) => metrics.setPhase(key, status.phase),
  });
  let reconciling = false;
  // A stop (SIGTERM) releases the Lease on purpose: that is no loss of leadership.
  let stopping = false;
  const startReconciling = async () => {
    reconciling = true;
    cache.start();
    metrics.leading.set(1);
    await reconciler.start();
    logger.info('reconciling');
  };
  const elector = c.leaderElect
    ? new LeaderElector({
        lease: kubernetesLeaseApi(kubeConfig, c.leaseNamespace, c.leaseName),
        identity: c.identity,
        logger,
        onStartedLeading: startReconciling,
        // A replica that lost the Lease may still be acting on stale observations: start afresh.
        onStoppedLeading: () => {
          if (stopping) return;
          logger.warn('lost the leader Lease; exiting so a fresh process waits for it');
          process.exit(1);
        },
        onNewLeader: (identity) => logger.info({ leader: identity }, 'another replica leads'),
      })
    : null;
  const [host = '0.0.0.0', port = '8080'] = c.metricsAddr.split(/:(?=\d+$)/);
  const server = await serveMetrics(
    metrics,
    () => reconciling || (elector !== null && !elector.isLeader()),
    host,
    Number(port),
  );
  if (elector) elector.start();
  else await startReconciling();

  const shutdown = async () => {
    stopping = true;
    logger.info('stopping');
    await reconciler.stop();
    cache.stop();
    await elector?.stop();
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());
}

/** The Kubernetes platform as the settings ask: NetworkPolicies, and how members are reached. */
function kubernetesPlatform(
  c: OperatorConfig,
  kubeConfig: KubeConfig,
  logger: Logger,
  cache: KubeCache,
): KubernetesPlatform {
  return new KubernetesPlatform({
    kubeConfig,
    logger,
    cache,
    // The operator's pods carry app.kubernetes.io/name=conflux-operator (its chart, config/manager).
    ...(c.networkPolicy
      ? {
          networkPolicy: {
            namespace: c.podNamespace,
            podLabels: { 'app.kubernetes.io/name': 'conflux-operator' },
          },
        }
      : {}),
    // Pod IPs: for an operator outside the cluster network's DNS (a laptop, an API stand-in).
    ...(c.memberAddress === 'pod-ip'
      ? {
          memberHost: (_c: unknown, pod: { status?: { podIP?: string } } | undefined, name: string) =>
            pod?.status?.podIP ?? name,
          // Certificates name pods by DNS only: a TLS cluster is refused, saying so (Stalled).
          podIpAddresses: true,
        }
      : {}),
  });
}

main().catch((err: unknown) => {
  console.error(`conflux-operator: ${(err as Error).message}`);
  process.exit(1);
});
