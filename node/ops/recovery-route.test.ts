// POST /_cluster/force-new-cluster through the admin API of in-process nodes (plain HTTP): the
// refusals, a recovery after two of three members stopped for good, and an old member that comes
// back on its old data being kept out of the new cluster.

import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type InProcessCluster,
  startInProcess,
  startPristine,
} from '../../e2e/support/in-process-cluster.js';
import { sleep } from '../../e2e/support/process-cluster.js';
import { loadConfig } from '../config.js';
import { type RunningNode, startNode } from '../server.js';

type Json = Record<string, unknown> & { error?: { code: string; message: string } };

async function post(node: RunningNode, body: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${node.adminUrl}/_cluster/force-new-cluster`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('POST /_cluster/force-new-cluster', () => {
  let cluster: InProcessCluster;
  const extra: RunningNode[] = [];
  beforeAll(async () => {
    cluster = await startInProcess(['a', 'b', 'c']);
  });
  afterAll(async () => {
    for (const n of extra) await n.stop();
    await cluster.stop();
  });
  const node = (id: string) => cluster.nodes.find((n) => n.id === id) as RunningNode;

  it('refuses a body naming another node, a malformed body, and a cluster that keeps its quorum', async () => {
    const a = node('a');
    const other = await post(a, { node_id: 'b' });
    expect(other.status).toBe(400);
    expect(other.body.error?.code).toBe('INVALID_REQUEST');
    const malformed = await post(a, { node_id: 'a', surprise: true });
    expect(malformed.status).toBe(400);
    const intact = await post(a, { node_id: 'a' });
    expect(intact.status).toBe(409);
    expect(intact.body.error?.code).toBe('QUORUM_INTACT');
    expect(a.raft.metrics().membership.configs).toEqual([['a', 'b', 'c']]);
  });

  it('refuses a pristine node', async () => {
    const p = await startPristine('p', cluster.dir);
    extra.push(p);
    const answer = await post(p, { node_id: 'p' });
    expect(answer.status).toBe(409);
    expect(answer.body.error?.code).toBe('NOTHING_TO_RECOVER');
  });

  it('rebuilds a one-voter cluster from a survivor, which an old member can never rejoin', async () => {
    const a = node('a');
    const put = await fetch(`${(cluster.leader() as RunningNode).apiUrl}/v1/kv/kept`, {
      method: 'PUT',
      body: 'yes',
    });
    expect(put.status).toBe(200);
    const oldId = a.raft.metrics().membership.cluster?.id as string;
    await until('a to hold the write', () => a.kv.get('kept') !== undefined);
    await node('b').stop();
    await node('c').stop();

    const answer = await post(a, { node_id: 'a', expected_cluster_id: oldId });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.recovered_from).toMatchObject({ cluster_id: oldId, node_id: 'a' });
    const newId = answer.body.cluster_id as string;
    expect(newId).not.toBe(oldId);
    expect(a.raft.metrics()).toMatchObject({ state: 'leader', membership: { configs: [['a']] } });
    const write = await fetch(`${a.apiUrl}/v1/kv/after`, { method: 'PUT', body: 'ok' });
    expect(write.status).toBe(200);
    expect(((await (await fetch(`${a.apiUrl}/v1/kv/kept`)).json()) as { value: string }).value).toBe('yes');

    // A retry answers the same document.
    const again = await post(a, { node_id: 'a', expected_cluster_id: oldId });
    expect(again.status).toBe(200);
    expect(again.body.cluster_id).toBe(newId);

    // c comes back on its old data: it belongs to the old cluster and stays out of the new one.
    const i = cluster.nodes.findIndex((n) => n.id === 'c');
    const p = cluster.ports[i] as { api: number; raft: number; admin: number };
    const c = await startNode(
      loadConfig(
        [
          '--dev-insecure',
          '--node-id',
          'c',
          '--data-dir',
          join(cluster.dir, 'c'),
          '--api-addr',
          `127.0.0.1:${p.api}`,
          '--raft-addr',
          `127.0.0.1:${p.raft}`,
          '--admin-addr',
          `127.0.0.1:${p.admin}`,
          '--tick-ms',
          '10',
        ],
        {},
      ),
      pino({ level: 'silent' }),
    );
    extra.push(c);
    await sleep(1_500);
    expect(a.raft.metrics().membership.configs).toEqual([['a']]);
    expect(a.raft.metrics().state).toBe('leader');
    expect(c.raft.metrics().membership.cluster?.id).toBe(oldId);
    expect(c.raft.metrics().state).not.toBe('leader');
    const status = (await (await fetch(`${a.adminUrl}/_cluster/status`)).json()) as Json;
    expect(status.cluster_id).toBe(newId);
    expect(Object.keys(status.nodes as object)).toEqual(['a']);
  }, 60_000);
});
