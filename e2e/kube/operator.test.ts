// The Kubernetes-level scenarios on the API stand-in: the real operator process, kubectl, and real
// conflux-node processes run by the pod runner — driven only through the Kubernetes API and the
// members' client APIs, as a user would. The same scenarios run on kind (npm run e2e:kind).

import { lifecycleSuite } from '../scenarios/lifecycle.js';
import { startStandIn } from './kube-env.js';

// The operator resyncs a converged cluster every 10 s: the drift check outlasts one resync.
lifecycleSuite('Conflux on the Kubernetes API stand-in', startStandIn, { scale: 1, resyncMs: 12_000 });
