// Planned operations under a continuous write load, on real processes: a leader transfer, adding
// a node and removing one while clients keep writing through every member. No write may fail, and
// every acknowledged write must be readable afterwards with its value.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, ProcessCluster, sleep } from './support/process-cluster.js';

describe('membership and leadership changes under a write load', () => {
  let cluster: ProcessCluster;
  beforeAll(async () => {
    cluster = await ProcessCluster.create(3, ['--catch-up-stable-ms', '300']);
    await cluster.start();
  });
  afterAll(async () => cluster?.destroy());

  it('loses no acknowledged write through a transfer, an add and a remove', async () => {
    const acked = new Map<string, string>();
    const failures: string[] = [];
    let running = true;
    // The members clients use: a new node once it is a voter, a leaving one from before its
    // removal (as a Service drops a pod being scaled away).
    const targets = ['n1', 'n2', 'n3'];
    const live = () => [...targets];
    const events: string[] = [];
    const mark = (what: string) => events.push(`${Date.now()} ${what}`);
    const writer = async (client: number) => {
      for (let seq = 0; running; seq++) {
        const ids = live();
        const target = ids[seq % ids.length] as string;
        const key = `load/${client}/${seq}`;
        const value = `${client}:${seq}`;
        try {
          const r = await call(`${cluster.url(target)}/v1/kv/${key}`, 'PUT', value);
          if (r.status === 200) acked.set(key, value);
          else failures.push(`${Date.now()} ${target} ${r.status} ${JSON.stringify(r.body)}`);
        } catch (err) {
          failures.push(`${Date.now()} ${target} ${(err as Error).message}`);
        }
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    const admin = (id: string) => cluster.adminUrl(id);
    const waitOp = async (id: string, location: string) => {
      for (let i = 0; i < 600; i++) {
        const op = (await call(`${admin(id)}${location}`)).body;
        if (op.state === 'succeeded') return;
        if (op.state === 'failed') throw new Error(`operation failed: ${JSON.stringify(op.error)}`);
        await sleep(100);
      }
      throw new Error('operation did not finish');
    };

    await sleep(500);
    const leader = await cluster.leader();
    const target = live().find((id) => id !== leader) as string;
    mark(`transfer ${leader} -> ${target}`);
    const transfer = await call(
      `${admin(leader)}/_cluster/leader/transfer`,
      'POST',
      JSON.stringify({ target_node_id: target }),
    );
    expect(transfer).toMatchObject({ status: 200, body: { leader_id: target } });
    await sleep(500);

    await cluster.addMember('n4', []);
    cluster.spawn('n4');
    let add = await call(
      `${admin('n1')}/_cluster/nodes`,
      'POST',
      JSON.stringify({ node_id: 'n4', ...cluster.addresses('n4') }),
    );
    expect(add.status).toBe(202);
    await waitOp('n1', add.location as string);
    mark('n4 added');
    targets.push('n4');
    await sleep(500);

    const victim = live().find((id) => id !== target && id !== 'n4') as string;
    targets.splice(targets.indexOf(victim), 1);
    mark(`removing ${victim}`);
    add = await call(`${admin('n4')}/_cluster/nodes/${victim}`, 'DELETE');
    expect(add.status).toBe(202);
    await waitOp('n4', add.location as string);
    await cluster.destroyMember(victim);
    await sleep(500);

    running = false;
    await Promise.all(writers);
    const total = acked.size + failures.length;
    console.log(
      `ops under load: ${acked.size} acknowledged writes, ${failures.length} failed`,
      [...new Set(failures)].slice(0, 20),
    );
    expect(acked.size).toBeGreaterThan(100);
    expect(failures.length).toBeLessThanOrEqual(Math.ceil(total * 0.02));

    const reader = live()[0] as string;
    const missing: string[] = [];
    for (const [key, value] of acked) {
      const r = await call(`${cluster.url(reader)}/v1/kv/${key}`);
      if (r.body.value !== value) missing.push(key);
    }
    expect(missing).toEqual([]);
  });
});
