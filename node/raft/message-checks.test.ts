// The structural checks the transport runs on every peer message before the engine sees it.
import { describe, expect, it } from 'vitest';
import * as M from './membership.js';
import { messageProblem } from './message-checks.js';
import { bootstrap, put } from './sim/manual-network.js';
import type { Entry, Message, SnapshotMeta } from './types.js';

const base = { from: 'n1', to: 'n2', term: 5 };
const normal = (index: number, term: number): Entry => ({ type: 'normal', index, term, data: put('k', 'v') });
const append = (fields: Partial<Extract<Message, { type: 'append' }>> = {}): Message => ({
  ...base,
  type: 'append',
  prevIndex: 10,
  prevTerm: 4,
  entries: [normal(11, 4), normal(12, 5)],
  commit: 10,
  ...fields,
});
const meta: SnapshotMeta = {
  index: 40,
  term: 4,
  membership: M.initialMembership(['n1', 'n2', 'n3']),
  sizeBytes: 100,
  id: 's-40',
};
const chunk = (offset: number, length: number, done: boolean, bytes = length): Message => ({
  ...base,
  type: 'snapshot',
  meta,
  offset,
  length,
  data: new Uint8Array(bytes),
  done,
});

describe('structural checks of peer messages', () => {
  it('accept what the engine sends', () => {
    expect(messageProblem(append())).toBeNull();
    expect(messageProblem(append({ entries: [], commit: 99 }))).toBeNull(); // the follower clamps commit
    expect(messageProblem(append({ prevIndex: 0, prevTerm: 0, entries: [normal(1, 1)] }))).toBeNull();
    expect(messageProblem(chunk(0, 60, false))).toBeNull();
    expect(messageProblem(chunk(60, 40, true))).toBeNull();
    expect(
      messageProblem({ ...base, type: 'vote', pre: true, lastLogIndex: 12, lastLogTerm: 5, transfer: false }),
    ).toBeNull();
    expect(
      messageProblem({
        ...base,
        type: 'append-response',
        index: 12,
        reject: true,
        hintIndex: 9,
        hintTerm: 3,
      }),
    ).toBeNull();
  });

  it('accept every message a cluster exchanges: elections, writes, a lagging follower, a snapshot', () => {
    // ManualNetwork (like the simulator) fails on any message its engines send that these checks
    // refuse; this scenario only has to produce every kind of traffic.
    const net = bootstrap(['n1', 'n2', 'n3'], { snapshotChunkBytes: 16 });
    net.isolate('n3');
    for (let i = 0; i < 20; i++) net.on('n1', (c) => c.propose(put(`k${i}`, 'v')));
    net.stabilize();
    net.snapshot('n1');
    net.heal();
    for (let i = 0; i < 30; i++) {
      net.tickAll(1);
      net.stabilize();
    }
    expect(net.transcript.some((l) => l.startsWith('n1->n3 snapshot'))).toBe(true);
    expect(net.node('n3').sm.get('k19')).toBe('v');
    net.on('n2', (c) => c.campaign(true));
    net.stabilize();
    expect(net.leaders()).toEqual(['n2']);
  });

  it.each<[string, Message, RegExp]>([
    ['an entry index that skips ahead', append({ entries: [normal(1011, 5)] }), /index 1011, expected 11/],
    ['entries out of order', append({ entries: [normal(12, 5), normal(11, 5)] }), /expected 11/],
    ['a repeated index', append({ entries: [normal(11, 4), normal(11, 5)] }), /expected 12/],
    ['an entry from a future term', append({ entries: [normal(11, 6)] }), /above the term 5/],
    ['entry terms going down', append({ entries: [normal(11, 5), normal(12, 4)] }), /below the term before/],
    ['an entry below prevTerm', append({ prevTerm: 5, entries: [normal(11, 4)] }), /below the term before/],
    ['an entry of term 0', append({ prevTerm: 0, entries: [normal(11, 0)] }), /term 0/],
    ['prevTerm above the term', append({ prevTerm: 6, entries: [] }), /prevTerm 6/],
    ['prevIndex 0 with a term', append({ prevIndex: 0, prevTerm: 2, entries: [] }), /prevIndex 0/],
    ['an append in term 0', { ...append({ prevTerm: 0, entries: [] }), term: 0 }, /term 0/],
    ['a chunk shorter than declared', chunk(0, 60, false, 59), /declares 60 bytes but carries 59/],
    ['a chunk longer than declared', chunk(0, 60, false, 61), /carries 61/],
    ['a chunk beyond the snapshot', chunk(60, 41, true), /beyond the snapshot's 100 bytes/],
    ['a last chunk not marked done', chunk(60, 40, false), /done=false/],
    ['done before the end', chunk(0, 60, true), /done=true/],
    ['a snapshot from a future term', { ...chunk(0, 100, true), term: 3 }, /snapshot term 4/],
    [
      'a vote with a log newer than its term',
      { ...base, type: 'vote', pre: false, lastLogIndex: 3, lastLogTerm: 6, transfer: false },
      /lastLogTerm 6/,
    ],
    [
      'an empty log with a term',
      { ...base, type: 'vote', pre: false, lastLogIndex: 0, lastLogTerm: 1, transfer: false },
      /empty log/,
    ],
    [
      'a rejection hint beyond the rejected index',
      { ...base, type: 'append-response', index: 12, reject: true, hintIndex: 13, hintTerm: 3 },
      /hintIndex 13/,
    ],
    ['a heartbeat in term 0', { ...base, term: 0, type: 'heartbeat', commit: 0, readSeq: 0 }, /term 0/],
    ['a message to its own sender', { ...base, to: 'n1', type: 'timeout-now' }, /own sender/],
  ])('refuse %s', (_name, message, expected) => {
    expect(messageProblem(message)).toMatch(expected);
  });
});
