// The Kubernetes-level scenarios on a real kind cluster with the operator installed and MinIO as
// the object store. Run by `npm run e2e:kind` (run.mjs prepares the cluster); not part of npm test.

import { afterAll, describe, it } from 'vitest';
import {
  backupAndRestore,
  createCluster,
  reapplyChangesNothing,
  scaleDown,
  scaleUp,
  survivesKills,
} from '../scenarios/lifecycle.js';
import { kindEnv } from './kind-env.js';

describe('Conflux on kind', () => {
  const env = kindEnv();
  afterAll(() => env.stop());

  it('creates a cluster that becomes Ready with a leader', () => createCluster(env, 'demo'), 300_000);
  it('kubectl scale 3 -> 4 adds a voting follower', () => scaleUp(env, 'demo'), 300_000);
  it('kubectl scale 4 -> 3 removes the member and stays healthy', () => scaleDown(env, 'demo'), 300_000);
  it('re-applying the same spec writes nothing', () => reapplyChangesNothing(env, 'demo', 30_000), 120_000);
  it(
    'backs up, loses everything and restores into a new cluster',
    () => backupAndRestore(env, 'demo', 'copy'),
    600_000,
  );
  it('survives a killed pod and a killed operator mid-operation', () => survivesKills(env, 'copy'), 600_000);
});
