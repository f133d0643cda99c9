// Leader transfer (Raft thesis §3.10): stop proposals, catch the target up, TimeoutNow, abort.
import { describe, expect, it } from 'vitest';
import { bootstrap, put } from './sim/manual-network.js';

describe('leader transfer', () => {
  it('to an up-to-date voter: TimeoutNow at once, the target campaigns without PreVote', () => {
    const net = bootstrap();
    net.tick('n1');
    net.stabilize();
    net.on('n1', (c) => c.transferLeader('n2'));
    expect(net.deliver()).toEqual(['n1->n2 timeout-now t2']);
    expect(net.deliver()).toEqual(['n2->n1 vote t3 transfer last=2/2', 'n2->n3 vote t3 transfer last=2/2']);
    net.stabilize();
    expect(net.leaders()).toEqual(['n2']);
  });

  it('to a lagging target: proposals are refused while it is caught up, then it takes over', () => {
    const net = bootstrap();
    net.isolate('n3');
    for (let i = 0; i < 5; i++) net.on('n1', (c) => c.propose(put('k', `${i}`)));
    net.stabilize();
    net.heal();
    net.on('n1', (c) => c.transferLeader('n3'));
    expect(() => net.core('n1').propose(put('k', 'late'))).toThrow(/being transferred/);
    net.stabilize();
    net.tick('n1');
    net.stabilize();
    expect(net.leaders()).toEqual(['n3']);
    expect(net.node('n3').sm.get('k')).toBe('4');
  });

  it('is abandoned after an election timeout when the target cannot take over', () => {
    const net = bootstrap();
    net.isolate('n3');
    net.on('n1', (c) => c.transferLeader('n3'));
    expect(net.core('n1').isTransferring()).toBe(true);
    net.heal();
    net.isolate('n3');
    for (let i = 0; i < 10; i++) {
      net.tick('n1');
      net.tick('n2');
      net.stabilize();
    }
    expect(net.core('n1').isTransferring()).toBe(false);
    expect(net.core('n1').role).toBe('leader');
    expect(() => net.on('n1', (c) => c.propose(put('k', 'v')))).not.toThrow();
  });

  it('only a follower acts on TimeoutNow: a campaigning node keeps its PreVote', () => {
    const net = bootstrap();
    net.isolate('n2');
    for (let i = 0; i < 40 && net.core('n2').role === 'follower'; i++) net.tick('n2');
    expect(net.core('n2').role).toBe('pre-candidate');
    net.drop(() => true);
    const term = net.core('n2').term;
    net.on('n2', (c) => c.step({ type: 'timeout-now', from: 'n1', to: 'n2', term }));
    expect(net.core('n2').role).toBe('pre-candidate');
    expect(net.core('n2').term).toBe(term);
    expect(net.pending((m) => m.from === 'n2' && m.type === 'vote' && !m.pre)).toEqual([]);
  });

  it('a learner cannot be the target', () => {
    const net = bootstrap();
    expect(() => net.core('n1').transferLeader('n9')).toThrow(/not a voter/);
  });
});
