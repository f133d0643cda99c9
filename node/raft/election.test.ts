// Leader election (Raft §5.2), PreVote and CheckQuorum (thesis §9.6), as transcripts.
import { describe, expect, it } from 'vitest';
import { bootstrap, ManualNetwork, put } from './sim/manual-network.js';

describe('election', () => {
  it('initialize on one node bootstraps the whole cluster: PreVote, vote, then the first entries replicate', () => {
    const net = new ManualNetwork(['n1', 'n2', 'n3']);
    net.on('n1', (c) => c.initialize(['n1', 'n2', 'n3']));
    expect(net.deliver()).toEqual(['n1->n2 vote t2 pre last=1/1', 'n1->n3 vote t2 pre last=1/1']);
    expect(net.deliver()).toEqual([
      'n2->n1 vote-response t2 pre granted',
      'n3->n1 vote-response t2 pre granted',
    ]);
    expect(net.deliver()).toEqual(['n1->n2 vote t2 last=1/1', 'n1->n3 vote t2 last=1/1']);
    net.stabilize();
    expect(net.leaders()).toEqual(['n1']);
    for (const id of ['n1', 'n2', 'n3']) {
      expect(net.core(id).log.committed).toBe(2);
      expect(net.core(id).membership.configs).toEqual([['n1', 'n2', 'n3']]);
    }
  });

  it('a single-node cluster elects itself at once', () => {
    const net = bootstrap(['solo']);
    expect(net.leaders()).toEqual(['solo']);
    net.on('solo', (c) => c.propose(put('a', '1')));
    expect(net.node('solo').sm.get('a')).toBe('1');
  });

  it('initialize is refused on a node that already has state', () => {
    const net = bootstrap();
    expect(() => net.core('n2').initialize(['n2'])).toThrow(/already has state/);
  });

  it('a voter grants at most one vote per term (§5.2)', () => {
    const net = bootstrap();
    net.isolate('n1');
    net.on('n2', (c) => c.campaign(true)); // straight to a real vote at term 3
    net.on('n3', (c) => c.campaign(true)); // n3 votes for itself at term 3 too
    const lines = net.stabilize();
    expect(lines).toContain('n3->n2 vote-response t3 rejected');
    expect(lines).toContain('n2->n3 vote-response t3 rejected');
    expect(net.leaders()).toEqual(['n1']); // n1 is still leader of term 2 in its own view
  });

  it('a candidate whose log is behind does not win (§5.4.1 election restriction)', () => {
    const net = bootstrap();
    net.isolate('n3');
    net.on('n1', (c) => c.propose(put('a', '1')));
    net.stabilize();
    net.heal();
    net.isolate('n1');
    net.heal();
    // n3 lacks entry 3; n2 has it and refuses even a forced (no PreVote) campaign.
    net.on('n3', (c) => c.campaign(true));
    const lines = net.deliver((m) => m.from === 'n3');
    expect(lines).toEqual(['n3->n1 vote t3 transfer last=2/2', 'n3->n2 vote t3 transfer last=2/2']);
    expect(net.deliver((m) => m.to === 'n3')).toContain('n2->n3 vote-response t3 rejected');
  });
});

describe('PreVote', () => {
  it('a partitioned follower does not inflate its term, and does not disrupt the leader on return', () => {
    const net = bootstrap();
    net.isolate('n3');
    net.tick('n3', 50);
    expect(net.core('n3').term).toBe(2);
    expect(net.core('n3').role).toBe('pre-candidate');
    net.heal();
    net.tickAll(1);
    net.stabilize();
    expect(net.leaders()).toEqual(['n1']);
    expect(net.core('n1').term).toBe(2);
  });

  it('voters in a live leader lease ignore pre-votes (CheckQuorum lease)', () => {
    const net = bootstrap();
    net.on('n3', (c) => c.campaign(false));
    expect(net.deliver()).toEqual(['n3->n1 vote t3 pre last=2/2', 'n3->n2 vote t3 pre last=2/2']);
    expect(net.pending()).toEqual([]); // no answers: both heard from n1 within the timeout
  });
});

describe('CheckQuorum', () => {
  it('a leader that cannot hear a quorum steps down within two election timeouts', () => {
    const net = bootstrap();
    net.isolate('n1');
    // The peers were heard in the round that just ended; the next full round finds them silent.
    net.tick('n1', 19);
    expect(net.core('n1').role).toBe('leader');
    net.tick('n1', 1);
    expect(net.core('n1').role).toBe('follower');
    expect(net.node('n1').droppedReads).toEqual([]);
  });

  it('without CheckQuorum the same isolated leader would stay leader', () => {
    const net = bootstrap(['n1', 'n2', 'n3'], { checkQuorum: false });
    net.isolate('n1');
    net.tick('n1', 30);
    expect(net.core('n1').role).toBe('leader');
  });

  it('a deposed leader learns the new term from a stale-term answer and steps down', () => {
    const net = bootstrap();
    net.isolate('n1');
    net.tick('n2', 10);
    net.tick('n3', 10);
    net.tick('n2', 20);
    net.stabilize();
    const newLeader = net.leaders().find((id) => id !== 'n1');
    expect(newLeader).toBeDefined();
    net.heal();
    net.tick('n1', 1); // heartbeat at the old term
    const lines = net.stabilize();
    expect(lines.some((l) => /append-response t3 reject/.test(l))).toBe(true);
    expect(net.core('n1').role).toBe('follower');
    expect(net.leaders()).toEqual([newLeader]);
  });
});
