import { describe, expect, it } from 'vitest';
import type { Message } from '../raft/types.js';
import { decodeBody, encodeFrame } from './codec.js';
import { FRAME_HEADER_BYTES } from './framing.js';
import { inboundFrameSchema, messageSchema, outboundReplySchema } from './message-schema.js';
import { everyMessageType, normalizeBytes } from './test-support.js';

function roundTrip(value: unknown): unknown {
  const frame = encodeFrame(value);
  expect(frame.readUInt32BE(0)).toBe(frame.length - FRAME_HEADER_BYTES);
  return decodeBody(frame.subarray(FRAME_HEADER_BYTES));
}

const vote: Message = {
  type: 'vote',
  from: 'a',
  to: 'b',
  term: 1,
  pre: false,
  lastLogIndex: 0,
  lastLogTerm: 0,
  transfer: false,
};

describe('message codec and schema', () => {
  it('round-trips every message type, binary fields included, through encode, decode and parse', () => {
    for (const message of everyMessageType('a', 'b')) {
      const parsed = messageSchema.parse(roundTrip(message));
      expect(normalizeBytes(parsed)).toEqual(normalizeBytes(message));
    }
  });

  it('decodes binary fields as Uint8Array copies that do not alias the frame', () => {
    const msg = everyMessageType('a', 'b').find((m) => m.type === 'snapshot');
    const frame = encodeFrame(msg);
    const decoded = messageSchema.parse(decodeBody(frame.subarray(FRAME_HEADER_BYTES)));
    if (decoded.type !== 'snapshot') throw new Error('wrong type');
    expect(decoded.data).toBeInstanceOf(Uint8Array);
    expect(decoded.data.buffer).not.toBe(frame.buffer);
  });

  it('strips unknown fields (a newer peer) but keeps the typed ones', () => {
    const parsed = messageSchema.parse({ ...vote, addedLater: 1 });
    expect(parsed).toEqual(vote);
  });

  it.each([
    ['a negative term', { ...vote, term: -1 }],
    ['a fractional index', { ...vote, lastLogIndex: 1.5 }],
    ['an unsafe integer', { ...vote, lastLogIndex: 2 ** 60 }],
    [
      'a missing field',
      { type: 'vote', from: 'a', to: 'b', term: 1, pre: false, lastLogIndex: 0, lastLogTerm: 0 },
    ],
    ['an unknown type', { ...vote, type: 'steal-leadership' }],
    ['an empty node id', { ...vote, from: '' }],
    ['a string where bytes belong', { ...(everyMessageType('a', 'b')[7] as object), data: 'abc' }],
    [
      'an entry at index 0',
      {
        type: 'append',
        from: 'a',
        to: 'b',
        term: 1,
        prevIndex: 0,
        prevTerm: 0,
        commit: 0,
        entries: [{ type: 'blank', index: 0, term: 1 }],
      },
    ],
    [
      'an entry of an unknown type',
      {
        type: 'append',
        from: 'a',
        to: 'b',
        term: 1,
        prevIndex: 0,
        prevTerm: 0,
        commit: 0,
        entries: [{ type: 'noop', index: 1, term: 1 }],
      },
    ],
    [
      'three voter sets',
      {
        ...(everyMessageType('a', 'b')[7] as object),
        meta: {
          index: 1,
          term: 1,
          sizeBytes: 1,
          id: 'x',
          membership: { configs: [[], [], []], learners: [], retired: [], nodes: {}, cluster: null },
        },
      },
    ],
    ['not an object', [1, 2, 3]],
  ])('refuses %s', (_name, value) => {
    expect(messageSchema.safeParse(roundTrip(value)).success).toBe(false);
  });

  it('accepts hello and ping inbound, only pong outbound', () => {
    expect(inboundFrameSchema.parse({ type: 'hello', from: 'a', version: 1, cluster: null }).type).toBe(
      'hello',
    );
    expect(inboundFrameSchema.parse({ type: 'hello', from: 'a', version: 1, cluster: 'c' }).type).toBe(
      'hello',
    );
    // The hello always names the dialer and its cluster (null while it has none).
    expect(inboundFrameSchema.safeParse({ type: 'hello', from: 'a', version: 1 }).success).toBe(false);
    expect(inboundFrameSchema.safeParse({ type: 'hello', version: 1, cluster: null }).success).toBe(false);
    expect(inboundFrameSchema.parse({ type: 'ping' }).type).toBe('ping');
    expect(inboundFrameSchema.safeParse({ type: 'pong' }).success).toBe(false);
    expect(outboundReplySchema.safeParse({ type: 'pong' }).success).toBe(true);
    expect(outboundReplySchema.safeParse(vote).success).toBe(false);
  });

  it('refuses malformed MessagePack and trailing bytes at decode', () => {
    expect(() => decodeBody(Buffer.from([0x92, 0x01]))).toThrow();
    const body = encodeFrame(vote).subarray(FRAME_HEADER_BYTES);
    expect(() => decodeBody(Buffer.concat([body, Buffer.from([0x00])]))).toThrow();
  });
});
