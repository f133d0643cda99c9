// The Kubernetes-level scenarios on a real kind cluster with the operator installed and MinIO as
// the object store. Run by `npm run e2e:kind` (run.mjs prepares the cluster); not part of npm test.

import { lifecycleSuite } from '../scenarios/lifecycle.js';
import { kindEnv } from './kind-env.js';

lifecycleSuite('Conflux on kind', async () => kindEnv(), { scale: 2, resyncMs: 30_000 });
