import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClusterStatus } from '../api/admin-contract.js';
import { ConfluxError } from '../errors.js';
import { RecoveryService } from './recovery.js';
import { aggregateStatus, internalStatus, type Probe } from './status.js';
import { put, TEST_NODE_INFO, type TestNode, TestNodes, until } from './test-node.js';

const nodes = new TestNodes('conflux-recovery-');
beforeEach(() => nodes.setUp());
afterEach(() => nodes.reset());

const silent = { info: () => {}, warn: () => {} };
const AT = new Date('2026-03-01T12:00:00.000Z');

/** The aggregated status as `node` sees it when none of `others` answers. */
function statusOf(node: TestNode, others: string[]): () => Promise<ClusterStatus> {
  return async () => {
    const probes: Record<string, Probe> = Object.fromEntries(
      others.map((id) => [id, { ok: false, error: 'unreachable' }]),
    );
    return aggregateStatus(internalStatus(node.raft.metrics(), { tickMs: 2 }), probes, { lagThreshold: 100 });
  };
}

function service(node: TestNode, others: string[], id = 'c-new'): RecoveryService {
  return new RecoveryService({
    raft: node.raft,
    nodeId: node.id,
    selfInfo: TEST_NODE_INFO,
    clusterStatus: statusOf(node, others),
    logger: silent,
    mintClusterId: () => id,
    now: () => AT,
  });
}

/** n1 alone of a 3-voter cluster `c-old` whose other voters never answer: no quorum, no leader. */
async function survivor(): Promise<TestNode> {
  const node = await nodes.open('a', 'n1');
  await node.raft.initialize(['n1', 'n2', 'n3'], {
    nodes: { n1: TEST_NODE_INFO },
    cluster: { id: 'c-old', restoredFrom: null },
  });
  return node;
}

const code = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (err: unknown) => (err instanceof ConfluxError ? err.code : String(err)),
  );

describe('POST /_cluster/force-new-cluster (RecoveryService)', () => {
  it('rebuilds a one-voter cluster with a new id that records where it came from', async () => {
    const node = await survivor();
    const answer = await service(node, ['n2', 'n3']).run({ node_id: 'n1', expected_cluster_id: 'c-old' });
    expect(answer).toMatchObject({
      cluster_id: 'c-new',
      node_id: 'n1',
      recovered_from: { cluster_id: 'c-old', node_id: 'n1', index: 1, at: AT.toISOString() },
    });
    const m = node.raft.metrics();
    expect(m.state).toBe('leader');
    expect(m.membership.configs).toEqual([['n1']]);
    expect(m.membership.retired).toEqual(['n2', 'n3']);
    expect(internalStatus(m, { tickMs: 2 }).recovered_from).toEqual(answer.recovered_from);
    await put(node, 'k', 'v');
    expect(node.kv.get('k')?.value).toBeDefined();
  });

  it('keeps the new cluster across a restart', async () => {
    const node = await survivor();
    await service(node, ['n2', 'n3']).run({ node_id: 'n1' });
    await put(node, 'after', 'x');
    await node.stop();
    const again = await nodes.open('a', 'n1');
    await until(() => again.raft.metrics().state === 'leader');
    const m = again.raft.metrics();
    expect(m.membership.cluster).toMatchObject({
      id: 'c-new',
      recoveredFrom: { clusterId: 'c-old', nodeId: 'n1' },
    });
    // The write is committed: the restarted leader applies it again from its log.
    await until(() => again.kv.get('after') !== undefined);
  });

  it("compacts the log behind the new cluster's first membership: a node added later never replays the old cluster id", async () => {
    const node = await survivor();
    // The survivor's log still holds the old cluster's memberships (cluster c-old) ...
    expect(node.raft.metrics().snapshot).toBeNull();
    // ... and a periodic snapshot of that old state is under way when the recovery starts.
    const periodic = node.raft.triggerSnapshot();
    const answer = await service(node, ['n2', 'n3']).run({ node_id: 'n1' });
    expect((await periodic)?.index).toBeLessThan(answer.log_index);
    // ... and afterwards starts at a snapshot at or after the recovery entry (cluster c-new), which
    // is what a node added later receives first.
    const m = node.raft.metrics();
    expect(m.snapshot?.index).toBeGreaterThanOrEqual(answer.log_index);
    expect(m.lastLogIndex).toBe(m.snapshot?.index);
    expect(m.membership.cluster?.id).toBe('c-new');
  });

  it('answers a retried request with the same document', async () => {
    const node = await survivor();
    const svc = service(node, ['n2', 'n3']);
    const first = await svc.run({ node_id: 'n1', expected_cluster_id: 'c-old' });
    const second = await service(node, [], 'c-other').run({ node_id: 'n1', expected_cluster_id: 'c-old' });
    expect(second.cluster_id).toBe(first.cluster_id);
    expect(second.recovered_from).toEqual(first.recovered_from);
  });

  it('refuses while the voters still have a reachable quorum, unless forced', async () => {
    const node = await nodes.cluster('c-live');
    expect(await code(service(node, []).run({ node_id: 'n1' }))).toBe('QUORUM_INTACT');
    expect(node.raft.metrics().membership.cluster?.id).toBe('c-live');
    const forced = await service(node, []).run({ node_id: 'n1', force: true });
    expect(forced.recovered_from.cluster_id).toBe('c-live');
  });

  it('refuses a request that names another node, a pristine node, and another cluster', async () => {
    const node = await survivor();
    expect(await code(service(node, ['n2', 'n3']).run({ node_id: 'n2' }))).toBe('INVALID_REQUEST');
    expect(
      await code(service(node, ['n2', 'n3']).run({ node_id: 'n1', expected_cluster_id: 'c-else' })),
    ).toBe('CLUSTER_MISMATCH');
    expect(node.raft.metrics().membership.cluster?.id).toBe('c-old');
    const empty = await nodes.open('b', 'p1');
    expect(await code(service(empty, []).run({ node_id: 'p1' }))).toBe('NOTHING_TO_RECOVER');
  });
});
