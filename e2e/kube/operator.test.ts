// The Kubernetes-level scenarios on the API stand-in: the real operator process, kubectl, and real
// conflux-node processes run by the pod runner — driven only through the Kubernetes API and the
// members' client APIs, as a user would. The same scenarios run on kind (npm run e2e:kind).

import { afterAll, beforeAll, describe, it } from 'vitest';
import {
  backupAndRestore,
  createCluster,
  reapplyChangesNothing,
  scaleDown,
  scaleUp,
  survivesKills,
} from '../scenarios/lifecycle.js';
import { type StandIn, startStandIn } from './kube-env.js';

describe('Conflux on the Kubernetes API stand-in', () => {
  let env: StandIn;
  beforeAll(async () => {
    env = await startStandIn();
  }, 60_000);
  afterAll(async () => env?.stop(), 60_000);

  it('creates a cluster that becomes Ready with a leader', () => createCluster(env, 'demo'), 180_000);
  it('kubectl scale 3 -> 4 adds a voting follower', () => scaleUp(env, 'demo'), 180_000);
  it('kubectl scale 4 -> 3 removes the member and stays healthy', () => scaleDown(env, 'demo'), 180_000);
  it('re-applying the same spec writes nothing', () => reapplyChangesNothing(env, 'demo', 12_000), 60_000);
  it(
    'backs up, loses everything and restores into a new cluster',
    () => backupAndRestore(env, 'demo', 'copy'),
    300_000,
  );
  it('survives a killed pod and a killed operator mid-operation', () => survivesKills(env, 'copy'), 300_000);
});
