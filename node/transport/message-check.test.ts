import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBody, encodeFrame } from './codec.js';
import { FRAME_HEADER_BYTES } from './framing.js';
import { checkHotFrame } from './message-check.js';
import { inboundFrameSchema } from './message-schema.js';
import { everyMessageType } from './test-support.js';

// The peer port is an attack surface: the hand-written check may accept only what the schema
// accepts, and must return exactly what the schema returns; on anything else it defers (null).

/** Mostly well-formed, sometimes not: so both sides of every check are reached. */
const mostly = <T, U>(valid: fc.Arbitrary<T>, odd: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: valid, weight: 12 }, { arbitrary: odd, weight: 1 });

const oddNumber = fc.constantFrom(-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 2 ** 60, '1', null);
const count = mostly(fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 40, 2 ** 53 - 1)), oddNumber);
const index = mostly(fc.integer({ min: 1, max: 2 ** 31 }), fc.constantFrom(0, -1, 2.5, '3'));
const nodeId = mostly(
  fc.string({ minLength: 1, maxLength: 6 }),
  fc.constantFrom('', 'x'.repeat(256), 'x'.repeat(257), 7, null),
);
const bool = mostly(fc.boolean(), fc.constantFrom(0, 1, 'true', null));
const bytes = mostly(fc.uint8Array({ maxLength: 5 }), fc.constantFrom('abc', [1, 2], 3, null, {}));
/** Extra fields a newer peer might send, or a declared field present as undefined. */
const extra = mostly(
  fc.constant({}),
  fc.constantFrom({ later: 1 }, { data: undefined }, { commit: undefined }, { entries: 'x' }),
);
/** Drop one field now and then. */
const dropSome = (o: Record<string, unknown>, drop: string | null) => {
  if (drop === null || !(drop in o)) return o;
  const { [drop]: _, ...rest } = o;
  return rest;
};
const maybeDrop = mostly(
  fc.constant(null),
  fc.constantFrom('type', 'from', 'term', 'index', 'data', 'commit'),
);

const entry = fc
  .record({
    type: mostly(fc.constantFrom('blank', 'normal'), fc.constantFrom('membership', 'other', 1)),
    index,
    term: count,
    data: bytes,
    e: extra,
    drop: maybeDrop,
  })
  .map(({ e, drop, data, ...o }) => dropSome({ ...(o.type === 'normal' ? { ...o, data } : o), ...e }, drop));
const entries = mostly(fc.array(entry, { maxLength: 4 }), fc.constantFrom(null, {}, 'x', [1]));

const message = fc
  .record({
    type: mostly(
      fc.constantFrom('append', 'append-response', 'heartbeat', 'heartbeat-response'),
      fc.constantFrom('vote', 'hello', 'ping', 'nope', 3),
    ),
    from: nodeId,
    to: nodeId,
    term: count,
    prevIndex: count,
    prevTerm: count,
    commit: count,
    index: count,
    reject: bool,
    hintIndex: count,
    hintTerm: count,
    readSeq: count,
    lastIndex: count,
    entries,
    e: extra,
    drop: maybeDrop,
  })
  .map(({ e, drop, ...all }) => {
    const keep: Record<string, string[]> = {
      append: ['prevIndex', 'prevTerm', 'entries', 'commit'],
      'append-response': ['index', 'reject', 'hintIndex', 'hintTerm'],
      heartbeat: ['commit', 'readSeq'],
      'heartbeat-response': ['readSeq', 'lastIndex'],
    };
    const fields = ['type', 'from', 'to', 'term', ...(keep[all.type as string] ?? ['commit'])];
    const o = Object.fromEntries(fields.map((f) => [f, all[f as keyof typeof all]]));
    return dropSome({ ...o, ...e }, drop);
  });

/** The check's verdict agrees with the schema's: accepted only if valid, and the same value. */
function agrees(value: unknown): { hot: boolean; valid: boolean } {
  const hot = checkHotFrame(value);
  const parsed = inboundFrameSchema.safeParse(value);
  if (hot !== null) {
    expect(parsed.success).toBe(true);
    expect(hot).toStrictEqual(parsed.data);
    // Key order as well, so the bytes a follower writes to its WAL do not depend on the path.
    expect(JSON.stringify(hot)).toBe(JSON.stringify(parsed.data));
  }
  return { hot: hot !== null, valid: parsed.success };
}

describe('checkHotFrame', () => {
  it('accepts only what the schema accepts, and returns the same message, on generated frames', () => {
    let hot = 0;
    let invalid = 0;
    fc.assert(
      fc.property(message, (m) => {
        const verdict = agrees(m);
        if (verdict.hot) hot++;
        if (!verdict.valid) invalid++;
      }),
      { numRuns: 3000 },
    );
    // Both sides were reached: the check took frames itself, and the schema refused others.
    expect(hot).toBeGreaterThan(300);
    expect(invalid).toBeGreaterThan(300);
  });

  it('agrees with the schema on the same frames after msgpack, as they arrive on the wire', () => {
    fc.assert(
      fc.property(message, (m) => {
        agrees(decodeBody(encodeFrame(m).subarray(FRAME_HEADER_BYTES)));
      }),
      { numRuns: 1000 },
    );
  });

  it('takes every write-path frame of the wire format itself, and defers every other type', () => {
    const hotTypes = new Set(['append', 'append-response', 'heartbeat', 'heartbeat-response']);
    for (const m of everyMessageType('a', 'b')) {
      const wire = decodeBody(encodeFrame(m).subarray(FRAME_HEADER_BYTES));
      const hasMembership = m.type === 'append' && m.entries.some((e) => e.type === 'membership');
      expect(agrees(wire).hot).toBe(hotTypes.has(m.type) && !hasMembership);
    }
  });

  it.each([
    ['a non-plain object', Object.assign(Object.create(null), { type: 'heartbeat' })],
    ['an array', ['heartbeat']],
    ['a prototype-polluting key', JSON.parse('{"__proto__": {"type": "heartbeat"}}')],
    ['null', null],
  ])('defers %s to the schema', (_, value) => {
    expect(checkHotFrame(value)).toBeNull();
  });
});
