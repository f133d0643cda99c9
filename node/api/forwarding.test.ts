// Followers hand leader work on: proxied by default, or a 307 to the leader with --follower-redirect.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../e2e/support/process-cluster.js';
import { loadConfig } from '../config.js';
import { type RunningNode, startNode } from '../server.js';

describe('a follower with --follower-redirect', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-fwd-'));
  const nodes: RunningNode[] = [];
  beforeAll(async () => {
    const ids = ['a', 'b', 'c'];
    const ports = await Promise.all(ids.map(async () => ({ api: await freePort(), raft: await freePort() })));
    const initial = ids
      .map((id, i) => `${id}=127.0.0.1:${ports[i]?.raft}/127.0.0.1:${ports[i]?.api}`)
      .join(',');
    for (const [i, id] of ids.entries()) {
      const p = ports[i] as { api: number; raft: number };
      const args = [
        '--dev-insecure',
        '--node-id',
        id,
        '--data-dir',
        join(dir, id),
        '--api-addr',
        `127.0.0.1:${p.api}`,
      ];
      args.push(
        '--raft-addr',
        `127.0.0.1:${p.raft}`,
        '--initial-cluster',
        initial,
        '--tick-ms',
        '10',
        '--follower-redirect',
        '--admin-addr',
        '127.0.0.1:0',
      );
      nodes.push(await startNode(loadConfig(args, {}), pino({ level: 'silent' })));
    }
    for (let i = 0; i < 300 && !nodes.some((n) => n.raft.metrics().state === 'leader'); i++)
      await new Promise((r) => setTimeout(r, 10));
  });
  afterAll(async () => {
    for (const n of nodes) await n.stop();
    rmSync(dir, { recursive: true, force: true });
  });

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
