// One operator replica's leader election in a process of its own, so that leader-election.test.ts
// can kill it (SIGKILL: no release, no last word) as a crashed operator pod dies. It prints one
// line per change, `started` or `stopped`, and otherwise only runs the elector.
//
// Usage: node --import tsx e2e/cluster/lease-candidate.ts <kubeconfig> <namespace> <lease> <identity>
//        <leaseDurationMs> <renewDeadlineMs> <retryPeriodMs>

import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { kubernetesLeaseApi, LeaderElector } from '../../operator/platform/leader-election.js';

const [kubeconfig, namespace, lease, identity, ...timings] = process.argv.slice(2);
const [leaseDurationMs, renewDeadlineMs, retryPeriodMs] = timings.map(Number);
if (!kubeconfig || !namespace || !lease || !identity || !retryPeriodMs) {
  console.error(
    'usage: lease-candidate.ts <kubeconfig> <namespace> <lease> <identity> <leaseDurationMs> <renewDeadlineMs> <retryPeriodMs>',
  );
  process.exit(2);
}
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const elector = new LeaderElector({
  lease: kubernetesLeaseApi(kc, namespace, lease),
  identity,
  ...(leaseDurationMs ? { leaseDurationMs } : {}),
  ...(renewDeadlineMs ? { renewDeadlineMs } : {}),
  retryPeriodMs,
  logger: pino({ level: 'warn' }, pino.destination(2)),
  onStartedLeading: () => {
    process.stdout.write('started\n');
  },
  onStoppedLeading: () => {
    process.stdout.write('stopped\n');
  },
});
elector.start();
