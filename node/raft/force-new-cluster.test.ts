// Quorum-loss recovery (etcd's --force-new-cluster): a survivor becomes the only voter of a new
// cluster that keeps its whole log, committed or not, and never hears the old members again.
import { describe, expect, it } from 'vitest';
import { RaftError } from './errors.js';
import * as M from './membership.js';
import { bootstrap, ManualNetwork, put } from './sim/manual-network.js';
import type { ClusterIdentity, NodeInfo } from './types.js';

const info: NodeInfo = { raft: '127.0.0.1:1', api: '127.0.0.1:2', admin: '127.0.0.1:3' };
const newCluster: ClusterIdentity = {
  id: 'c-new',
  restoredFrom: null,
  recoveredFrom: { clusterId: 'c-old', nodeId: 'n1', index: 0, at: '2026-01-01T00:00:00.000Z' },
};

/** A 3-node cluster with `a=1` committed everywhere, then n2 and n3 gone for good. */
function lostQuorum(): ManualNetwork {
  const net = bootstrap();
  net.on('n1', (c) => c.propose(put('a', '1')));
  net.stabilize();
  net.tick('n1');
  net.stabilize();
  net.isolate('n2');
  net.isolate('n3');
  return net;
}

describe('forceNewCluster', () => {
  it('makes the survivor the only voter of a new cluster that elects it and takes writes', () => {
    const net = lostQuorum();
    const before = net.core('n1').term;
    net.on('n1', (c) => c.forceNewCluster(newCluster, info));
    const core = net.core('n1');
    expect(core.role).toBe('leader');
    expect(core.term).toBeGreaterThan(before);
    expect(core.membership.configs).toEqual([['n1']]);
    expect(core.membership.learners).toEqual([]);
    expect(core.membership.cluster).toEqual(newCluster);
    expect(core.membership.nodes).toEqual({ n1: info });
    net.on('n1', (c) => c.propose(put('b', '2')));
    expect(net.node('n1').sm.get('a')).toBe('1');
    expect(net.node('n1').sm.get('b')).toBe('2');
  });

  it('commits the entries the survivor holds that the old cluster never committed', () => {
    const net = lostQuorum();
    // n1 still leads but cannot reach a quorum: this write stays uncommitted.
    net.on('n1', (c) => c.propose(put('pending', 'x')));
    net.stabilize();
    const pendingIndex = net.core('n1').log.lastIndex();
    expect(net.core('n1').log.committed).toBeLessThan(pendingIndex);
    expect(net.node('n1').sm.get('pending')).toBeNull();
    net.on('n1', (c) => c.forceNewCluster(newCluster, info));
    expect(net.core('n1').log.committed).toBeGreaterThan(pendingIndex);
    expect(net.node('n1').sm.get('pending')).toBe('x');
  });

  it('retires every other member of the old cluster, so their messages are ignored for good', () => {
    const net = lostQuorum();
    net.on('n1', (c) => c.forceNewCluster(newCluster, info));
    expect(net.core('n1').membership.retired).toEqual(['n2', 'n3']);
    const term = net.core('n1').term;
    // An old member that comes back with a higher term cannot depose or disturb the new leader.
    net.heal();
    net.on('n2', (c) => c.campaign(true));
    net.on('n3', (c) => c.campaign(true));
    net.stabilize();
    expect(net.core('n1').role).toBe('leader');
    expect(net.core('n1').term).toBe(term);
    expect(() => M.withLearner(net.core('n1').membership, 'n2')).toThrow(/can never rejoin/);
  });

  it('also works on a follower, and survives a restart', () => {
    const net = lostQuorum();
    net.heal();
    net.isolate('n1');
    net.isolate('n3');
    // n2 is a follower that holds everything n1 committed.
    expect(net.core('n2').role).toBe('follower');
    net.on('n2', (c) => c.forceNewCluster({ ...newCluster, id: 'c-2' }, info));
    expect(net.core('n2').role).toBe('leader');
    net.restart('n2');
    const core = net.core('n2');
    expect(core.membership.configs).toEqual([['n2']]);
    expect(core.membership.cluster?.id).toBe('c-2');
    net.tick('n2', 30);
    expect(net.core('n2').role).toBe('leader');
    expect(net.node('n2').sm.get('a')).toBe('1');
  });

  it('is refused on a pristine node and without a new cluster id', () => {
    const net = new ManualNetwork(['n1']);
    expect(() => net.core('n1').forceNewCluster(newCluster, info)).toThrow(RaftError);
    expect(() => net.core('n1').forceNewCluster(newCluster, info)).toThrow(/holds no cluster/);
    const live = bootstrap(['n1', 'n2', 'n3']);
    const same = { ...newCluster, id: 'same' };
    live.on('n1', (c) => c.forceNewCluster(same, info));
    expect(() => live.core('n1').forceNewCluster(same, info)).toThrow(/new cluster id/);
  });
});
