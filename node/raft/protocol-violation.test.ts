// Input that no correct peer sends in a node's state is refused before it changes anything
// (ProtocolViolation): a leader's message in the node's term from a second leader, or a message
// claiming the node's own id. Locally caused impossible states still stop the node.
import { describe, expect, it } from 'vitest';
import { ProtocolViolation } from './errors.js';
import { bootstrap, put } from './sim/manual-network.js';
import type { Message } from './types.js';

const stateOf = (net: ReturnType<typeof bootstrap>, id: string) => {
  const c = net.core(id);
  return { role: c.role, term: c.term, leader: c.leader, last: c.log.lastIndex(), commit: c.log.committed };
};

function violation(fn: () => void): ProtocolViolation {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProtocolViolation) return err;
    throw err;
  }
  throw new Error('no ProtocolViolation thrown');
}

describe('messages no correct peer sends', () => {
  it('a heartbeat at the leader’s own term from another node is refused, and the leader leads on', () => {
    const net = bootstrap();
    const before = stateOf(net, 'n1');
    const forged: Message = {
      type: 'heartbeat',
      from: 'n2',
      to: 'n1',
      term: before.term,
      commit: 0,
      readSeq: 0,
    };
    const err = violation(() => net.core('n1').step(forged));
    expect(err.reason).toBe('conflicting-leader');
    expect(err.message).toMatch(/two leaders in term 2/);
    expect(stateOf(net, 'n1')).toEqual(before);
    net.on('n1', (c) => c.propose(put('after', 'forgery')));
    net.stabilize();
    expect(net.node('n3').sm.get('after')).toBe('forgery');
  });

  it('a follower refuses an append from a second leader of its term, so nothing can be planted', () => {
    const net = bootstrap();
    const n2 = net.core('n2');
    const before = stateOf(net, 'n2');
    const planted: Message = {
      type: 'append',
      from: 'n3',
      to: 'n2',
      term: n2.term,
      prevIndex: n2.log.lastIndex(),
      prevTerm: n2.log.lastTerm(),
      entries: [{ type: 'normal', index: n2.log.lastIndex() + 1, term: n2.term, data: put('planted', 'x') }],
      commit: n2.log.lastIndex() + 1,
    };
    expect(violation(() => n2.step(planted)).reason).toBe('conflicting-leader');
    expect(stateOf(net, 'n2')).toEqual(before);
    // The real leader's entry at that index is then taken, not skipped as "already there".
    net.on('n1', (c) => c.propose(put('real', 'y')));
    net.stabilize();
    expect(net.node('n2').sm.get('real')).toBe('y');
    expect(net.node('n2').sm.get('planted')).toBeNull();
  });

  it('an election ordered by anyone but the leader (TimeoutNow) is refused', () => {
    const net = bootstrap();
    const before = stateOf(net, 'n2');
    const order: Message = { type: 'timeout-now', from: 'n3', to: 'n2', term: before.term };
    expect(violation(() => net.core('n2').step(order)).reason).toBe('conflicting-leader');
    net.stabilize();
    expect(stateOf(net, 'n2')).toEqual(before);
    expect(net.leaders()).toEqual(['n1']);
  });

  it('an acknowledgement beyond the leader’s log is refused instead of stopping the leader', () => {
    const net = bootstrap();
    const leader = net.core('n1');
    const before = stateOf(net, 'n1');
    const ack: Message = {
      type: 'append-response',
      from: 'n2',
      to: 'n1',
      term: leader.term,
      index: leader.log.lastIndex() + 1000,
      reject: false,
      hintIndex: 0,
      hintTerm: 0,
    };
    expect(violation(() => leader.step(ack)).reason).toBe('ack-beyond-log');
    expect(stateOf(net, 'n1')).toEqual(before);
    net.on('n1', (c) => c.propose(put('still', 'replicating')));
    net.stabilize();
    expect(net.node('n2').sm.get('still')).toBe('replicating');
  });

  it('a message claiming the receiver’s own id is refused', () => {
    const net = bootstrap();
    const self: Message = { type: 'timeout-now', from: 'n2', to: 'n2', term: 9 };
    expect(violation(() => net.core('n2').step(self)).reason).toBe('own-id');
    expect(net.core('n2').term).toBe(2);
  });

  it('a new leader of a higher term, and a first leader of the term, are followed as before', () => {
    const net = bootstrap();
    net.on('n3', (c) => c.campaign(true)); // TimeoutNow-style: term 3, no PreVote
    net.stabilize();
    expect(net.leaders()).toEqual(['n3']);
    expect(net.core('n1').leader).toBe('n3');
    expect(net.core('n2').leader).toBe('n3');
  });
});
