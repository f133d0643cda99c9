// ReadIndex (Raft thesis §6.4): quorum-confirmed, unique per attempt, bound to the term.
import { describe, expect, it } from 'vitest';
import { bootstrap, ManualNetwork, put } from './sim/manual-network.js';

describe('ReadIndex', () => {
  it('is confirmed by a quorum heartbeat round and carries the commit index of its start', () => {
    const net = bootstrap();
    net.on('n1', (c) => c.propose(put('a', '1')));
    net.stabilize();
    net.on('n1', (c) => c.readIndex('r1'));
    expect(net.node('n1').readStates).toEqual([]);
    expect(net.deliver()).toEqual([
      'n1->n2 heartbeat t2 commit=3 read=1',
      'n1->n3 heartbeat t2 commit=3 read=1',
    ]);
    net.deliver();
    expect(net.node('n1').readStates).toEqual([{ ctx: 'r1', index: 3 }]);
  });

  it('reads registered before the next Ready share one heartbeat round', () => {
    const net = bootstrap();
    net.on('n1', (c) => {
      c.readIndex('a');
      c.readIndex('b');
      c.readIndex('c');
    });
    expect(net.deliver()).toEqual([
      'n1->n2 heartbeat t2 commit=2 read=3',
      'n1->n3 heartbeat t2 commit=2 read=3',
    ]);
    net.deliver();
    expect(net.node('n1').readStates.map((r) => r.ctx)).toEqual(['a', 'b', 'c']);
  });

  it('an acknowledgement of an earlier heartbeat does not confirm a later read (unique per attempt)', () => {
    const net = bootstrap();
    net.tick('n1'); // heartbeat with read=0 in flight
    net.on('n1', (c) => c.readIndex('r1'));
    net.deliver((m) => m.type === 'heartbeat' && m.readSeq === 0);
    net.deliver((m) => m.type === 'heartbeat-response');
    expect(net.node('n1').readStates).toEqual([]);
    net.stabilize();
    expect(net.node('n1').readStates.map((r) => r.ctx)).toEqual(['r1']);
  });

  it('a partitioned old leader never confirms a read, and drops it when it steps down', () => {
    const net = bootstrap();
    net.isolate('n1');
    net.on('n1', (c) => c.readIndex('stale'));
    const leader = net.electAmong(['n2', 'n3']);
    net.on(leader, (c) => c.propose(put('a', 'new')));
    net.stabilize();
    net.tick('n1', 25);
    net.stabilize();
    expect(net.node('n1').readStates).toEqual([]);
    expect(net.node('n1').droppedReads).toEqual(['stale']);
    expect(() => net.core('n1').readIndex('again')).toThrow(/not the leader/);
  });

  it('a new leader confirms reads only after committing an entry of its own term', () => {
    const net = new ManualNetwork(['n1', 'n2', 'n3']);
    net.on('n1', (c) => c.initialize(['n1', 'n2', 'n3']));
    net.deliver();
    net.deliver();
    net.deliver();
    net.deliver(); // votes granted: n1 leads term 2, its blank entry not yet committed
    expect(net.core('n1').role).toBe('leader');
    net.on('n1', (c) => c.readIndex('early'));
    expect(net.pending((m) => m.type === 'heartbeat')).toEqual([]);
    net.stabilize();
    expect(net.node('n1').readStates).toEqual([{ ctx: 'early', index: 2 }]);
  });

  it('a single voter confirms at once', () => {
    const net = bootstrap(['solo']);
    net.on('solo', (c) => c.readIndex('r'));
    expect(net.node('solo').readStates).toEqual([{ ctx: 'r', index: 2 }]);
  });
});
