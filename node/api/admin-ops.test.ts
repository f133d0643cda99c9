// Membership, initialize and join through the admin API of in-process nodes (plain HTTP,
// --dev-insecure): the safe add flow, idempotency, the quorum guard, forwarding to the leader.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type InProcessCluster,
  startInProcess,
  startPristine,
} from '../../e2e/support/in-process-cluster.js';
import { sleep } from '../../e2e/support/process-cluster.js';
import * as M from '../raft/membership.js';
import type { RunningNode } from '../server.js';

type Json = Record<string, unknown> & { error?: { code: string } };

async function call(
  url: string,
  method = 'GET',
  body?: unknown,
): Promise<{ status: number; body: Json; location: string | null }> {
  const res = await fetch(url, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, body: (await res.json()) as Json, location: res.headers.get('location') };
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const FAST_CATCH_UP = ['--catch-up-stable-ms', '200'];

describe('POST/DELETE /_cluster/nodes', () => {
  let cluster: InProcessCluster;
  const extra: RunningNode[] = [];
  beforeAll(async () => {
    cluster = await startInProcess(['a', 'b', 'c'], { args: () => FAST_CATCH_UP });
  });
  afterAll(async () => {
    for (const n of extra) await n.stop();
    await cluster.stop();
  });

  const leader = () => cluster.leader() as RunningNode;
  const follower = () => cluster.nodes.find((n) => n !== leader()) as RunningNode;

  async function finished(node: RunningNode, location: string) {
    return until('operation to finish', async () => {
      const op = await call(`${node.adminUrl}${location}`);
      return op.body.state === 'succeeded' || op.body.state === 'failed' ? op.body : undefined;
    });
  }

  it('adds a node learner-first through any member, idempotently, and it catches up as a voter', async () => {
    for (let i = 0; i < 50; i++) {
      await fetch(`${leader().apiUrl}/v1/kv/k${i}`, { method: 'PUT', body: `v${i}` });
    }
    const d = await startPristine('d', cluster.dir, FAST_CATCH_UP);
    extra.push(d);
    const req = { node_id: 'd', ...d.addresses };
    const first = await call(`${follower().adminUrl}/_cluster/nodes`, 'POST', req);
    expect(first.status).toBe(202);
    expect(first.location).toBe(`/_cluster/operations/${first.body.id}`);
    const again = await call(`${leader().adminUrl}/_cluster/nodes`, 'POST', req);
    expect([again.status, again.body.id]).toEqual([202, first.body.id]);

    const op = await finished(leader(), first.location as string);
    expect(op).toMatchObject({ state: 'succeeded', kind: 'add-node', node_id: 'd' });
    const m = leader().raft.metrics().membership;
    expect(M.isVoter(m, 'd')).toBe(true);
    expect(m.nodes.d).toEqual({
      api: d.addresses.api_address,
      raft: d.addresses.raft_address,
      admin: d.addresses.admin_address,
    });
    await until('d to apply the data', () => d.kv.get('k49') !== undefined || undefined);
    expect(d.raft.metrics().membership.cluster?.id).toBe(m.cluster?.id);

    const done = await call(`${leader().adminUrl}/_cluster/nodes`, 'POST', req);
    expect(done).toMatchObject({ status: 200, body: { state: 'succeeded', step: 'already a voter' } });
    const status = await call(`${d.adminUrl}/_cluster/status`);
    expect(status.body).toMatchObject({ voters: 4, fault_tolerance: 1, healthy: true });
    const metrics = await (await fetch(`${leader().apiUrl}/metrics`)).text();
    expect(metrics).toMatch(/conflux_membership_changes_total\{kind="add-node",outcome="succeeded"\} 1/);
    expect(metrics).toMatch(/conflux_cluster_members\{role="voter"\} 4/);
  });

  it('refuses to add a node that belongs to another cluster, or whose id is not the one asked for', async () => {
    const other = await startInProcess(['x'], { dir: mkdtempSync(join(tmpdir(), 'conflux-other-')) });
    try {
      const x = other.nodes[0] as RunningNode;
      const addresses = {
        api_address: x.apiUrl.replace('http://', ''),
        raft_address: `127.0.0.1:${other.ports[0]?.raft}`,
        admin_address: `127.0.0.1:${other.ports[0]?.admin}`,
      };
      const foreign = await call(`${leader().adminUrl}/_cluster/nodes`, 'POST', {
        node_id: 'x',
        ...addresses,
      });
      const op = await finished(leader(), foreign.location as string);
      expect(op).toMatchObject({ state: 'failed', error: { code: 'CLUSTER_MISMATCH' } });
      const wrongId = await call(`${leader().adminUrl}/_cluster/nodes`, 'POST', {
        node_id: 'y',
        ...addresses,
      });
      expect(await finished(leader(), wrongId.location as string)).toMatchObject({ state: 'failed' });
      expect(M.members(leader().raft.metrics().membership)).not.toContain('x');
      expect(M.members(leader().raft.metrics().membership)).not.toContain('y');
    } finally {
      await other.stop();
    }
  });

  it('removes a follower, and a removed id can never be added again', async () => {
    const res = await call(`${leader().adminUrl}/_cluster/nodes/d`, 'DELETE');
    expect(res.status).toBe(202);
    expect(await finished(leader(), res.location as string)).toMatchObject({ state: 'succeeded' });
    expect(M.members(leader().raft.metrics().membership)).not.toContain('d');
    const again = await call(`${leader().adminUrl}/_cluster/nodes/d`, 'DELETE');
    expect(again).toMatchObject({ status: 200, body: { step: 'already removed' } });
    const back = await call(`${leader().adminUrl}/_cluster/nodes`, 'POST', {
      node_id: 'd',
      ...(extra[0] as RunningNode & { addresses: Record<string, string> }).addresses,
    });
    expect([back.status, back.body.error?.code]).toEqual([409, 'RETIRED_NODE_ID']);
  });

  it('removing the leader hands leadership over first', async () => {
    const old = leader();
    const res = await call(`${old.adminUrl}/_cluster/nodes/${old.id}`, 'DELETE');
    expect(res.body).toMatchObject({ kind: 'remove-node' });
    expect(res.status).toBe(202);
    const next = leader();
    expect(next.id).not.toBe(old.id);
    expect(await finished(next, res.location as string)).toMatchObject({ state: 'succeeded' });
    expect(M.members(next.raft.metrics().membership)).not.toContain(old.id);
  });

  it('refuses a removal that would leave no reachable quorum unless forced', async () => {
    // Two voters left; stop the follower: removing the leader's only peer is fine (it heals),
    // but with three voters and one down, removing a live one is refused.
    const lead = leader();
    const voters = M.voters(lead.raft.metrics().membership);
    expect(voters).toHaveLength(2);
    const e = await startPristine('e', cluster.dir, FAST_CATCH_UP);
    extra.push(e);
    const add = await call(`${lead.adminUrl}/_cluster/nodes`, 'POST', { node_id: 'e', ...e.addresses });
    expect(await finished(lead, add.location as string)).toMatchObject({ state: 'succeeded' });
    const live = voters.find((v) => v !== lead.id) as string;
    await e.stop();
    await until('e to be silent', () => {
      const ago = lead.raft.metrics().replication?.e?.lastContactTicksAgo ?? 0;
      return ago > 20 || undefined;
    });
    const refused = await call(`${lead.adminUrl}/_cluster/nodes/${live}`, 'DELETE');
    expect([refused.status, refused.body.error?.code]).toEqual([409, 'QUORUM_AT_RISK']);
    expect(M.voters(lead.raft.metrics().membership)).toContain(live);
    // Removing the dead one is what an SRE does instead; it is allowed.
    const heal = await call(`${lead.adminUrl}/_cluster/nodes/e`, 'DELETE');
    expect(await finished(lead, heal.location as string)).toMatchObject({ state: 'succeeded' });
  });

  it('answers 404 for unknown operations and members', async () => {
    const op = await call(`${leader().adminUrl}/_cluster/operations/op-00000000-0000-0000-0000-000000000000`);
    expect([op.status, op.body.error?.code]).toEqual([404, 'OPERATION_NOT_FOUND']);
    const node = await call(`${leader().adminUrl}/_cluster/nodes/nobody`, 'DELETE');
    expect([node.status, node.body.error?.code]).toEqual([404, 'NODE_NOT_FOUND']);
  });
});

describe('POST /_cluster/initialize and self-bootstrap joins', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-init-'));
  const nodes: RunningNode[] = [];
  afterAll(async () => {
    for (const n of nodes) await n.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('initializes once: the same request again is 200 with the same id, another one 409', async () => {
    const [p, q, r] = [
      await startPristine('p', dir),
      await startPristine('q', dir),
      await startPristine('r', dir),
    ];
    nodes.push(p, q, r);
    const members = { p: p.addresses, q: q.addresses, r: r.addresses };
    const first = await call(`${p.adminUrl}/_cluster/initialize`, 'POST', { members });
    expect(first.status).toBe(200);
    expect(first.body.cluster_id).toMatch(/^[0-9a-f-]{36}$/);
    await until('a leader', () => nodes.find((n) => n.raft.metrics().state === 'leader'));
    const again = await call(`${p.adminUrl}/_cluster/initialize`, 'POST', {
      members: { r: r.addresses, q: q.addresses, p: p.addresses },
    });
    expect(again).toMatchObject({ status: 200, body: { cluster_id: first.body.cluster_id } });
    const other = await call(`${p.adminUrl}/_cluster/initialize`, 'POST', { members: { p: p.addresses } });
    expect([other.status, other.body.error?.code]).toEqual([409, 'CLUSTER_MISMATCH']);
    const member = await call(`${q.adminUrl}/_cluster/initialize`, 'POST', { members: { q: q.addresses } });
    expect([member.status, member.body.error?.code]).toEqual([409, 'NOT_EMPTY']);
    for (const n of [p, q, r]) {
      await until(
        `${n.id} to know the cluster`,
        () => n.raft.metrics().membership.cluster?.id === first.body.cluster_id || undefined,
      );
    }
  });

  it('--bootstrap-expect and --join form one cluster; a join from another cluster is refused', async () => {
    const zero = await startPristine('s0', dir, ['--bootstrap-expect', '3']);
    nodes.push(zero);
    const join = ['--join', zero.addresses.admin_address];
    const one = await startPristine('s1', dir, join);
    const two = await startPristine('s2', dir, join);
    nodes.push(one, two);
    const all = [zero, one, two];
    await until('three voters with one leader', () =>
      all.every((n) => M.voters(n.raft.metrics().membership).length === 3) &&
      all.some((n) => n.raft.metrics().state === 'leader')
        ? true
        : undefined,
    );
    const ids = new Set(all.map((n) => n.raft.metrics().membership.cluster?.id));
    expect(ids.size).toBe(1);
    const foreign = await call(`${zero.adminUrl}/_internal/join`, 'POST', {
      node_id: 'stranger',
      cluster_id: 'another-cluster',
      ...one.addresses,
    });
    expect([foreign.status, foreign.body.error?.code]).toEqual([409, 'CLUSTER_MISMATCH']);
    // A late joiner goes through the add flow and becomes a voter too.
    const three = await startPristine('s3', dir, [...join, ...FAST_CATCH_UP]);
    nodes.push(three);
    await until('s3 to be a voter', () => M.isVoter(zero.raft.metrics().membership, 's3') || undefined);
  });

  it('node 0 restarting before or after it initialized never makes a second cluster', async () => {
    const zero = await startPristine('b0', dir, ['--bootstrap-expect', '3']);
    const join = ['--join', zero.addresses.admin_address];
    const one = await startPristine('b1', dir, join);
    nodes.push(one);
    await sleep(300); // b1's join reached b0, which waits for a third member
    await zero.stop();
    const zeroAgain = await startPristine('b0', dir, ['--bootstrap-expect', '3'], zero.addresses);
    const two = await startPristine('b2', dir, join);
    nodes.push(two);
    const all = () => [zeroAgain, one, two];
    await until('three voters', () =>
      all().every((n) => M.voters(n.raft.metrics().membership).length === 3) ? true : undefined,
    );
    const id = zeroAgain.raft.metrics().membership.cluster?.id;
    expect(new Set(all().map((n) => n.raft.metrics().membership.cluster?.id))).toEqual(new Set([id]));
    await zeroAgain.stop();
    const third = await startPristine('b0', dir, ['--bootstrap-expect', '3'], zero.addresses);
    nodes.push(third);
    await sleep(300);
    expect(third.raft.metrics().membership.cluster?.id).toBe(id);
    expect(M.voters(third.raft.metrics().membership)).toEqual(['b0', 'b1', 'b2']);
    await until('a leader among the three', () =>
      [third, one, two].find((n) => n.raft.metrics().state === 'leader'),
    );
  });
});
