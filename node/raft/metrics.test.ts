// Metrics shaped like openraft's RaftMetrics.
import { describe, expect, it } from 'vitest';
import { bootstrap, put } from './sim/manual-network.js';

describe('metrics', () => {
  it('report role, term, indexes, membership and per-peer replication on the leader', () => {
    const net = bootstrap();
    net.on('n1', (c) => c.propose(put('a', '1')));
    net.stabilize();
    net.tick('n1', 3);
    net.stabilize();
    const m = net.core('n1').metrics();
    expect(m).toMatchObject({
      id: 'n1',
      state: 'leader',
      currentTerm: 2,
      vote: 'n1',
      lastLogIndex: 3,
      committed: 3,
      lastApplied: 3,
      currentLeader: 'n1',
      membership: { configs: [['n1', 'n2', 'n3']], learners: [], retired: [], nodes: {}, cluster: null },
      snapshot: null,
    });
    expect(m.replication).toEqual({
      n2: { matched: 3, lastContactTicksAgo: 0, state: 'replicate' },
      n3: { matched: 3, lastContactTicksAgo: 0, state: 'replicate' },
    });
    net.isolate('n3');
    net.tick('n1', 4);
    expect(net.core('n1').metrics().replication?.n3?.lastContactTicksAgo).toBe(4);
  });

  it('a follower reports its leader and no replication', () => {
    const net = bootstrap();
    expect(net.core('n2').metrics()).toMatchObject({
      state: 'follower',
      currentLeader: 'n1',
      replication: null,
    });
  });
});
