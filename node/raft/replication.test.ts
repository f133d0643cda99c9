// Log replication (Raft §5.3–5.4): commit rules, fast back-off, the bounded pipeline, figure 8.
import { describe, expect, it } from 'vitest';
import type { Mutation } from './raft.js';
import { bootstrap, type ManualNetwork, put } from './sim/manual-network.js';

describe('replication', () => {
  it('an entry commits once a majority stored it, and every node applies it', () => {
    const net = bootstrap();
    net.isolate('n3');
    net.on('n1', (c) => c.propose(put('a', '1')));
    net.stabilize();
    expect(net.core('n1').log.committed).toBe(3);
    expect(net.node('n2').sm.get('a')).toBe('1');
    net.heal();
    net.tick('n1');
    net.stabilize();
    expect(net.node('n3').sm.get('a')).toBe('1');
  });

  it('the leader replicates before its own write is durable, and counts itself only once durable', () => {
    const net = bootstrap();
    const leader = net.core('n1');
    leader.propose(put('a', '1'));
    const rd = leader.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([3]);
    expect(rd.messages.filter((m) => m.type === 'append')).toHaveLength(2); // sent while the write is in flight
    // Both followers acknowledge before the leader's own fsync completes: the majority is the followers.
    for (const to of ['n2', 'n3']) {
      leader.step({
        type: 'append-response',
        from: to,
        to: 'n1',
        term: 2,
        index: 3,
        reject: false,
        hintIndex: 0,
        hintTerm: 0,
      });
    }
    expect(leader.log.committed).toBe(3);
    expect(leader.log.stable).toBe(2);
    leader.advance(rd);
    expect(leader.log.stable).toBe(3);
  });

  it('a follower rejects an append whose previous entry does not match, with a hint for fast back-off', () => {
    const net = bootstrap(['n1', 'n2', 'n3'], { maxEntriesPerAppend: 1 });
    net.isolate('n3');
    for (let i = 0; i < 20; i++) net.on('n1', (c) => c.propose(put('k', `${i}`)));
    net.stabilize();
    net.heal();
    net.transcript = [];
    net.tick('n1');
    net.stabilize();
    const rejects = net.transcript.filter(
      (l) => l.startsWith('n3->n1 append-response') && l.includes('reject'),
    );
    // One rejection tells the leader where n3's log ends; it does not walk back one entry at a time.
    expect(rejects).toEqual(['n3->n1 append-response t2 reject=22 hint=2/2']);
    expect(net.core('n3').log.lastIndex()).toBe(22);
  });

  it('a divergent follower log is truncated to the leader’s, never below the commit index', () => {
    const net = bootstrap();
    // n1 appends entries that only it holds, then loses leadership.
    net.isolate('n1');
    net.on('n1', (c) => {
      c.propose(put('lost', '1'));
      c.propose(put('lost', '2'));
    });
    const leader = net.electAmong(['n2', 'n3']);
    net.on(leader, (c) => c.propose(put('kept', '1')));
    net.stabilize();
    net.heal();
    net.tick('n1', 30);
    net.tick(leader, 1);
    net.stabilize();
    expect(net.node('n1').sm.get('lost')).toBeNull();
    expect(net.node('n1').sm.get('kept')).toBe('1');
    expect(net.core('n1').log.lastTerm()).toBe(net.core(leader).log.lastTerm());
  });

  it('a follower that lost an acknowledged tail of its log (damaged disk) is caught up again', () => {
    const net = bootstrap();
    for (let i = 0; i < 5; i++) net.on('n1', (c) => c.propose(put('k', `${i}`)));
    net.stabilize();
    expect(net.core('n1').metrics().replication?.n3?.matched).toBe(7);
    const disk = net.node('n3').disk;
    disk.entries.length -= 3; // its WAL tail was cut on restart
    net.restart('n3');
    net.tick('n1');
    net.stabilize();
    net.tick('n1');
    net.stabilize();
    expect(net.core('n3').log.lastIndex()).toBe(7);
    expect(net.core('n1').metrics().replication?.n3?.matched).toBe(7);
  });

  it('in replicate state at most maxInflight appends are unacknowledged', () => {
    const net = bootstrap(['n1', 'n2', 'n3'], { maxInflight: 2, maxEntriesPerAppend: 1 });
    for (let i = 0; i < 10; i++) net.on('n1', (c) => c.propose(put('k', `${i}`)));
    const toN2 = net.pending((m) => m.type === 'append' && m.to === 'n2');
    expect(toN2).toHaveLength(2);
    net.stabilize();
    expect(net.node('n2').sm.get('k')).toBe('9');
  });

  it('figure 8: an old-term entry on a majority is not committed until an entry of the leader’s term is', () => {
    const net = figure8(new Set());
    expect(net.core('n1').log.committed).toBeLessThan(3); // entry 3 is on 4 of 5 nodes, yet not committed
    net.heal();
    net.isolate('n5');
    net.tick('n1');
    net.stabilize();
    expect(net.core('n1').log.committed).toBe(4); // the blank of term 4 commits entry 3 with it
  });

  it('figure 8 with the mutation that counts old-term replicas: the invariants catch the lost commit', () => {
    const net = figure8(new Set(['commit-old-term']));
    expect(net.core('n1').log.committed).toBe(3); // the broken leader committed entry 3 of term 2
    // n1 fails; n5 (last entry 3 of term 3) is more up to date than n3 and n4 and wins: it overwrites entry 3.
    net.heal();
    net.isolate('n1');
    net.drop(() => true);
    net.restart('n5');
    expect(() => electNow(net, 'n5')).toThrow(/lacks entry 3|committed entry 3 changed/);
  });
});

/** Campaign (skipping PreVote) and deliver only the election traffic, until `id` leads. */
function electNow(net: ManualNetwork, id: string): void {
  for (let i = 0; i < 5 && net.core(id).role !== 'leader'; i++) {
    net.on(id, (c) => c.campaign(true));
    net.deliver((m) => m.type === 'vote' || m.type === 'vote-response');
    net.deliver((m) => m.type === 'vote' || m.type === 'vote-response');
  }
  expect(net.core(id).role).toBe('leader');
}

/** Raft paper figure 8, up to (c): n1 leads term 4 and entry 3 of term 2 sits on n1, n2, n3, n4. */
function figure8(mutations: ReadonlySet<Mutation>): ManualNetwork {
  const net = bootstrap(['n1', 'n2', 'n3', 'n4', 'n5'], { maxEntriesPerAppend: 1, mutations });
  // (a) n1 leads term 2 and gets entry 3 to n2 only.
  net.on('n1', (c) => c.propose(put('x', 'term2')));
  net.deliver((m) => m.to === 'n2');
  net.drop((m) => m.from === 'n1');
  net.stabilize();
  // (b) n5 wins term 3 with n3 and n4 and appends its own entry 3, which reaches nobody.
  net.partition(['n1', 'n2'], ['n3', 'n4', 'n5']);
  electNow(net, 'n5');
  net.on('n5', (c) => c.propose(put('x', 'term3')));
  net.drop((m) => m.from === 'n5');
  net.heal();
  net.isolate('n5');
  // (c) n1 restarts, wins term 4 and copies entry 3 (term 2) to n3 and n4; its blank reaches only n2.
  net.restart('n1');
  electNow(net, 'n1');
  expect(net.core('n1').term).toBe(4);
  for (let i = 0; i < 10; i++) {
    net.rewrite((m) =>
      m.type === 'append' && m.to !== 'n2' ? { ...m, entries: m.entries.filter((e) => e.index < 4) } : m,
    );
    net.deliver();
  }
  for (const id of ['n1', 'n2', 'n3', 'n4']) expect(net.core(id).log.term(3)).toBe(2);
  return net;
}
