// Membership changes: learners, joint consensus, one change at a time, removal of the leader,
// retired ids (Raft thesis §4.3; openraft's membership model).
import { describe, expect, it } from 'vitest';
import * as M from './membership.js';
import { bootstrap, put } from './sim/manual-network.js';

function addLearner(net: ReturnType<typeof bootstrap>, leader: string, id: string): void {
  net.add(id);
  net.on(leader, (c) => c.proposeMembership((m) => M.withLearner(m, id)));
  net.stabilize();
  net.tick(leader);
  net.stabilize();
}

describe('membership', () => {
  it('a learner receives the log but never votes, never campaigns and never counts for commit', () => {
    const net = bootstrap();
    addLearner(net, 'n1', 'n4');
    expect(net.core('n4').metrics().state).toBe('learner');
    expect(net.node('n4').sm.applied).toBe(net.node('n1').sm.applied);
    net.tick('n4', 100);
    expect(net.pending((m) => m.from === 'n4' && m.type === 'vote')).toEqual([]);
    // With both voting followers cut off, the learner's acknowledgement cannot commit anything.
    net.partition(['n1', 'n4'], ['n2', 'n3']);
    net.on('n1', (c) => c.propose(put('a', '1')));
    net.stabilize();
    expect(net.core('n4').log.lastIndex()).toBe(net.core('n1').log.lastIndex());
    expect(net.core('n1').log.committed).toBeLessThan(net.core('n1').log.lastIndex());
  });

  it('promoting a learner goes through a joint config and the leader leaves it on its own', () => {
    const net = bootstrap();
    addLearner(net, 'n1', 'n4');
    net.on('n1', (c) => c.proposeMembership((m) => M.enterJoint(m, ['n1', 'n2', 'n3', 'n4'], false)));
    const entries = net.core('n1').log.entries.filter((e) => e.type === 'membership');
    expect(entries.at(-1)).toMatchObject({
      membership: {
        configs: [
          ['n1', 'n2', 'n3'],
          ['n1', 'n2', 'n3', 'n4'],
        ],
      },
    });
    net.stabilize();
    net.tick('n1');
    net.stabilize();
    for (const id of ['n1', 'n2', 'n3', 'n4']) {
      expect(net.core(id).membership).toEqual({
        configs: [['n1', 'n2', 'n3', 'n4']],
        learners: [],
        retired: [],
        nodes: {},
        cluster: null,
      });
    }
  });

  it('only one membership change is in flight at a time', () => {
    const net = bootstrap();
    net.add('n4');
    net.add('n5');
    net.on('n1', (c) => c.proposeMembership((m) => M.withLearner(m, 'n4')));
    expect(() => net.core('n1').proposeMembership((m) => M.withLearner(m, 'n5'))).toThrow(/in flight/);
  });

  it('a voter must be a learner first', () => {
    const net = bootstrap();
    expect(() =>
      net.core('n1').proposeMembership((m) => M.enterJoint(m, ['n1', 'n2', 'n3', 'n9'], false)),
    ).toThrow(/as learner/);
  });

  it('removing the leader: it leads through the joint phase, steps down once the change commits, the rest elect', () => {
    const net = bootstrap();
    net.on('n1', (c) => c.proposeMembership((m) => M.enterJoint(m, ['n2', 'n3'], false)));
    net.stabilize();
    net.tick('n1');
    net.stabilize();
    expect(net.core('n1').role).toBe('follower');
    expect(net.core('n2').membership.retired).toEqual(['n1']);
    const leader = net.electAmong(['n2', 'n3']);
    net.on(leader, (c) => c.propose(put('after', 'removal')));
    net.stabilize();
    expect(net.node(leader === 'n2' ? 'n3' : 'n2').sm.get('after')).toBe('removal');
    // The removed node never campaigns again and its messages are ignored.
    net.tick('n1', 100);
    expect(net.pending((m) => m.from === 'n1' && m.type === 'vote')).toEqual([]);
  });

  it('a leader that removes itself hands over at once: its successor leads with no election timeout', () => {
    const net = bootstrap();
    net.on('n1', (c) => c.proposeMembership((m) => M.enterJoint(m, ['n2', 'n3'], false)));
    net.stabilize();
    net.tick('n1');
    net.stabilize();
    expect(net.core('n1').role).toBe('follower');
    // No follower ticked: only the TimeoutNow the old leader sent can have made a leader.
    const [leader] = net.leaders();
    expect(['n2', 'n3']).toContain(leader);
    net.on(leader as string, (c) => c.propose(put('after', 'handover')));
    net.stabilize();
    expect(net.node('n2').sm.get('after')).toBe('handover');
    expect(net.node('n3').sm.get('after')).toBe('handover');
  });

  it('a leadership transfer that times out during a joint change does not leave the cluster joint', () => {
    const net = bootstrap();
    addLearner(net, 'n1', 'n4');
    net.on('n1', (c) => c.proposeMembership((m) => M.enterJoint(m, ['n1', 'n2', 'n3', 'n4'], false)));
    // The transfer target never answers; the rest commit the joint configuration without it.
    net.isolate('n2');
    net.on('n1', (c) => c.transferLeader('n2'));
    net.stabilize();
    expect(M.isJoint(net.core('n1').membership)).toBe(true);
    for (let i = 0; i < 30 && net.core('n1').isTransferring(); i++) {
      net.tick('n1');
      net.stabilize();
    }
    expect(net.core('n1').isTransferring()).toBe(false);
    // No client write: leaving the joint configuration must not wait for one.
    net.stabilize();
    net.tick('n1');
    net.stabilize();
    expect(net.core('n1').role).toBe('leader');
    expect(M.isJoint(net.core('n1').membership)).toBe(false);
    expect(net.core('n1').membership.configs).toEqual([['n1', 'n2', 'n3', 'n4']]);
  });

  it('a removed id is retired: it can never be added again', () => {
    const net = bootstrap();
    net.on('n1', (c) => c.proposeMembership((m) => M.enterJoint(m, ['n1', 'n2'], false)));
    net.stabilize();
    net.tick('n1');
    net.stabilize();
    expect(net.core('n1').membership.retired).toEqual(['n3']);
    expect(() => net.core('n1').proposeMembership((m) => M.withLearner(m, 'n3'))).toThrow(/can never rejoin/);
  });

  it('a leader demoted with retain reports itself leader until the joint phase ends, then a learner', () => {
    const net = bootstrap();
    net.on('n1', (c) => c.proposeMembership((m) => M.enterJoint(m, ['n2', 'n3'], true)));
    expect(M.isJoint(net.core('n1').membership)).toBe(false);
    net.deliver();
    net.deliver();
    // The joint entry commits on the leader; it still leads in the joint configuration.
    expect(M.isJoint(net.core('n1').membership)).toBe(true);
    expect(net.core('n1').metrics()).toMatchObject({ state: 'leader', currentLeader: 'n1' });
    net.stabilize();
    net.tick('n1');
    net.stabilize();
    expect(net.core('n1').metrics().state).toBe('learner');
  });

  it('a demoted voter can be kept as a learner', () => {
    const m = M.enterJoint(M.initialMembership(['a', 'b', 'c']), ['a', 'b'], true);
    expect(M.leaveJoint(m)).toEqual({
      configs: [['a', 'b']],
      learners: ['c'],
      retired: [],
      nodes: {},
      cluster: null,
    });
  });
});
