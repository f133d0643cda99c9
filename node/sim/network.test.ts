// The simulated network's copy of bulk messages stands in for the wire path (encode, decode,
// parse): it must give the receiver exactly what parsing a valid frame gives, in fresh objects.

import { describe, expect, it } from 'vitest';
import type { Message } from '../raft/types.js';
import { decodeBody, encodeFrame } from '../transport/codec.js';
import { FRAME_HEADER_BYTES } from '../transport/framing.js';
import { messageSchema } from '../transport/message-schema.js';
import { copyBulk, type Endpoint, SimNetwork } from './network.js';
import { World } from './world.js';

const wire = (m: Message): Message =>
  messageSchema.parse(decodeBody(encodeFrame(m).subarray(FRAME_HEADER_BYTES)));

const base = { from: 'n1', to: 'n2', term: 4 };
const bulk = [
  {
    ...base,
    type: 'append',
    prevIndex: 6,
    prevTerm: 3,
    commit: 6,
    entries: [
      { index: 7, term: 4, type: 'blank' },
      { index: 8, term: 4, type: 'normal', data: new Uint8Array([0xef, 0xbb, 0xbf, 0, 1]) },
      { index: 9, term: 4, type: 'normal', data: Buffer.from('x') },
    ],
  },
  { ...base, type: 'append', prevIndex: 0, prevTerm: 0, commit: 0, entries: [] },
  { ...base, type: 'append-response', index: 9, reject: true, hintIndex: 5, hintTerm: 2 },
  { ...base, type: 'heartbeat', commit: 9, readSeq: 12 },
  { ...base, type: 'heartbeat-response', readSeq: 12, lastIndex: 9 },
] as const satisfies readonly Message[];

describe('bulk messages copied instead of encoded', () => {
  it.each(bulk.map((m) => [m.type, m] as const))('a %s arrives as parsing its frame gives it', (_, m) => {
    const copy = copyBulk(m);
    expect(copy).toStrictEqual(wire(m));
    expect(copy).not.toBe(m);
    if (m.type === 'append' && copy.type === 'append') {
      copy.entries.forEach((e, i) => {
        expect(e).not.toBe(m.entries[i]);
        if (e.type === 'normal') {
          expect(Buffer.isBuffer(e.data)).toBe(true);
          // Its own bytes: a change to the copy does not reach the sender's entry.
          const original = (m.entries[i] as { data: Uint8Array }).data;
          const before = Buffer.from(original);
          e.data[0] = (e.data[0] ?? 0) ^ 0xff;
          expect(Buffer.from(original)).toStrictEqual(before);
        }
      });
    }
  });

  it('fields the schema does not know are dropped, as parsing drops them', () => {
    const m = { ...base, type: 'heartbeat', commit: 1, readSeq: 2, extra: 'x' } as Message;
    expect(copyBulk(m as Extract<Message, { type: 'heartbeat' }>)).toStrictEqual(wire(m));
  });
});

/** A network of two endpoints; returns what n2 received and the network's stats. */
function deliver(wireShare: number, messages: Message[]) {
  const world = new World(1);
  const got: Message[] = [];
  const ep = (id: string): Endpoint => ({
    id,
    dead: false,
    clusterId: 'c',
    post: (_delay, fn) => fn(),
    receive: (m) => got.push(m),
  });
  const n1 = ep('n1');
  const n2 = ep('n2');
  const net = new SimNetwork(
    world,
    { lossRate: 0, duplicateRate: 0, delayMsMax: 1, longDelayRate: 0 },
    (id) => (id === 'n2' ? n2 : id === 'n1' ? n1 : null),
    wireShare,
  );
  net.send(n1, messages);
  return world.run(100).then(() => ({ got, stats: net.stats }));
}

describe('the share of messages that take the wire path', () => {
  const votes: Message[] = [
    { ...base, type: 'vote', pre: true, lastLogIndex: 3, lastLogTerm: 2, transfer: false },
    { ...base, type: 'timeout-now' },
  ];

  it('every message at share 1; the receiver gets what it would over the wire either way', async () => {
    const all = [...bulk, ...votes];
    const one = await deliver(1, all);
    expect(one.stats.wire).toBe(all.length);
    const none = await deliver(0, all);
    // Votes and TimeoutNow always take the wire path; bulk messages none at share 0.
    expect(none.stats.wire).toBe(votes.length);
    expect(none.got).toStrictEqual(one.got);
  });

  it('an append carrying a membership entry always takes the wire path', async () => {
    const membership = { configs: [['n1', 'n2']], learners: [], retired: [], nodes: {}, cluster: null };
    const m: Message = {
      ...base,
      type: 'append',
      prevIndex: 0,
      prevTerm: 0,
      commit: 0,
      entries: [{ index: 1, term: 4, type: 'membership', membership }],
    };
    const r = await deliver(0, [m]);
    expect(r.stats.wire).toBe(1);
    expect(r.got).toStrictEqual([wire(m)]);
  });

  it('about WIRE_SHARE of bulk messages at the default share', async () => {
    const many = Array.from(
      { length: 2000 },
      (_, i) => ({ ...base, type: 'heartbeat', commit: i, readSeq: i }) as Message,
    );
    const r = await deliver(0.25, many);
    expect(r.stats.wire).toBeGreaterThan(400);
    expect(r.stats.wire).toBeLessThan(600);
    expect(r.got).toStrictEqual(many.map(wire));
  });
});
