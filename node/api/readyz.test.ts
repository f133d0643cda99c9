// /readyz of a node whose Raft node stopped on a fatal error: it must stop saying ready (a load
// balancer or a Kubernetes readiness probe would otherwise keep sending it clients it can never
// serve), and say why. The stop is real: the state machine throws while applying an entry.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcess } from '../../e2e/support/in-process-cluster.js';
import type { RunningNode } from '../server.js';

describe('/readyz after a fatal stop', () => {
  let node: RunningNode;
  let stop: () => Promise<void>;
  beforeAll(async () => {
    const cluster = await startInProcess(['solo']);
    node = cluster.nodes[0] as RunningNode;
    stop = () => cluster.stop();
  });
  afterAll(async () => {
    await stop();
  });

  it('answers 503 with the reason once the Raft node has stopped', async () => {
    const ready = await fetch(`${node.apiUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, state: 'leader' });
    expect(node.raft.stopReason()).toBeNull();

    node.kv.apply = () => {
      throw new Error('state machine failure injected by the test');
    };
    const put = await fetch(`${node.apiUrl}/v1/kv/k`, { method: 'PUT', body: 'v' });
    expect(put.status).toBeGreaterThanOrEqual(500);
    expect(node.raft.stopReason()?.message).toMatch(/injected by the test/);

    const after = await fetch(`${node.apiUrl}/readyz`);
    expect(after.status).toBe(503);
    // The last metrics still say leader: only the stop makes it unready.
    expect(await after.json()).toMatchObject({
      ready: false,
      state: 'leader',
      stopped: 'state machine failure injected by the test',
    });
  });
});
