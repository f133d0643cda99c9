// Followers hand leader work on: proxied by default, or a 307 to the leader with --follower-redirect.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessCluster, startInProcess } from '../../e2e/support/in-process-cluster.js';
import type { RunningNode } from '../server.js';

describe('a follower with --follower-redirect', () => {
  let cluster: InProcessCluster;
  let nodes: RunningNode[];
  beforeAll(async () => {
    cluster = await startInProcess(['a', 'b', 'c'], { args: () => ['--follower-redirect'] });
    nodes = cluster.nodes;
  });
  afterAll(async () => cluster.stop());

  it('answers writes and linearizable reads with 307 to the leader, serves serializable reads itself', async () => {
    const leader = nodes.find((n) => n.raft.metrics().state === 'leader') as RunningNode;
    const follower = nodes.find((n) => n !== leader) as RunningNode;
    const put = await fetch(`${follower.apiUrl}/v1/kv/k`, { method: 'PUT', body: 'v', redirect: 'manual' });
    expect(put.status).toBe(307);
    expect(put.headers.get('location')).toBe(`${leader.apiUrl}/v1/kv/k`);
    const followed = await fetch(`${follower.apiUrl}/v1/kv/k`, { method: 'PUT', body: 'v' });
    expect(followed.status).toBe(200);
    const { revision } = (await followed.json()) as { revision: number };
    const read = await fetch(`${follower.apiUrl}/v1/kv/k`, { redirect: 'manual' });
    expect(read.status).toBe(307);
    for (let i = 0; i < 100 && follower.kv.revision < revision; i++)
      await new Promise((r) => setTimeout(r, 10));
    const local = await fetch(`${follower.apiUrl}/v1/kv/k?consistency=serializable`);
    expect(await local.json()).toMatchObject({ value: 'v', modRevision: revision });
    expect(local.headers.get('x-conflux-node')).toBe(follower.id);
  });
});
