import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { canonicalCommand, checkCommand } from './command-check.js';
import {
  encodeCommand,
  encodeCommandBySchema,
  type KvCommand,
  KvCommandSchema,
  tryDecodeCommand,
} from './commands.js';

// Apply must refuse or accept an entry exactly as the schema would (every node agrees on it), so
// the hand-written check may accept only what the schema accepts, and must return the same command.

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** Mostly well-formed, sometimes not: so both sides of every check are reached. */
const mostly = <T, U>(valid: fc.Arbitrary<T>, odd: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: valid, weight: 9 }, { arbitrary: odd, weight: 1 });

const key = mostly(fc.string({ minLength: 1, maxLength: 4 }), fc.constantFrom('', '\ud800', '\udc00x', 3));
const bytesLike = mostly(
  fc.uint8Array({ maxLength: 4 }).map((b) => Buffer.from(b)),
  fc.constantFrom('str', 3, null, [1]),
);
const revision = mostly(fc.nat(), fc.constantFrom(-1, 1.5, Number.NaN, 2 ** 53, 2 ** 60, '1'));
const field = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 2 });
const extra = mostly(
  fc.constant(undefined),
  fc.constantFrom({ extra: 1 }, { requestId: undefined }, { requestId: 7 }),
);
const withExtra = (o: object, e: object | undefined): object => ({ ...o, ...(e ?? {}) });

const op = fc
  .record({
    type: mostly(fc.constantFrom('put', 'delete', 'get'), fc.constant('txn')),
    key,
    value: bytesLike,
    e: extra,
  })
  .map(({ e, value, ...o }) => withExtra(o.type === 'put' ? { ...o, value } : o, e));
const operandFor: Record<string, fc.Arbitrary<unknown>> = {
  modRevision: revision,
  createRevision: revision,
  version: revision,
  value: bytesLike,
  exists: mostly(fc.boolean(), fc.constant(0)),
};
const compare = fc
  .record({
    key,
    target: mostly(
      fc.constantFrom('modRevision', 'createRevision', 'version', 'value', 'exists'),
      fc.constant('x'),
    ),
    op: fc.constantFrom('=', '!=', '<', '>', '=='),
    e: extra,
  })
  .chain(({ e, ...o }) =>
    mostly(operandFor[o.target] ?? revision, fc.oneof(revision, bytesLike, fc.boolean())).map((operand) =>
      withExtra({ ...o, operand }, e),
    ),
  );
const present = (o: object): object =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
const command = fc.oneof(
  fc
    .record({
      type: fc.constant('put'),
      key,
      value: mostly(bytesLike, fc.constant(undefined)),
      expectModRevision: field(revision),
      requestId: field(mostly(fc.string({ maxLength: 3 }), fc.constant(5))),
      e: extra,
    })
    .map(({ e, ...o }) => withExtra(present(o), e)),
  fc
    .record({ type: fc.constant('delete'), key, requestId: field(fc.string({ maxLength: 3 })), e: extra })
    .map(({ e, ...o }) => withExtra(present(o), e)),
  fc
    .record({
      type: fc.constant('txn'),
      compare: mostly(fc.array(compare, { maxLength: 2 }), fc.constant('x')),
      success: fc.array(op, { maxLength: 2 }),
      failure: fc.array(op, { maxLength: 2 }),
      e: extra,
    })
    .map(({ e, ...o }) => withExtra(o, e)),
  fc.constantFrom(null, 3, 'put', [], { type: 'auth', changes: [] }),
);

describe('command-check: the hand-written check of put, delete and txn', () => {
  it('accepts only what the schema accepts, and returns what the schema returns', () => {
    let accepted = 0;
    fc.assert(
      fc.property(command, (cmd) => {
        // Through msgpack, as apply sees it: Buffers for binary values.
        const data = packr.pack(cmd);
        const schema = KvCommandSchema.safeParse(packr.unpack(data));
        const checked = checkCommand(packr.unpack(data));
        if (checked) {
          accepted++;
          expect(schema.success).toBe(true);
          expect(checked).toEqual(schema.data);
        }
      }),
      { numRuns: 5000 },
    );
    expect(accepted).toBeGreaterThan(100); // the generator does reach valid commands
  });

  it('gives the same decode result as the schema alone, with values as plain Uint8Arrays', () => {
    fc.assert(
      fc.property(command, (cmd) => {
        const data = new Uint8Array(packr.pack(cmd));
        const schema = KvCommandSchema.safeParse(packr.unpack(data));
        const decoded = tryDecodeCommand(data, { viewValues: true });
        expect(decoded.ok).toBe(schema.success);
        if (decoded.ok) expect(decoded.command).toEqual(schema.data);
      }),
      { numRuns: 1000 },
    );
  });

  it('encodes every command to the same bytes as the schema path, or refuses it the same way', () => {
    const outcome = (encode: (c: KvCommand) => Uint8Array, cmd: unknown) => {
      try {
        return Buffer.from(encode(cmd as KvCommand)).toString('hex');
      } catch (err) {
        return `refused: ${(err as Error).message}`;
      }
    };
    let fast = 0;
    fc.assert(
      fc.property(command, (cmd) => {
        // As the API builds them: Buffers and plain Uint8Arrays, never through msgpack first.
        const before = JSON.stringify(cmd); // a Buffer and a Uint8Array show differently
        if (canonicalCommand(cmd)) fast++;
        expect(outcome(encodeCommand, cmd)).toBe(outcome(encodeCommandBySchema, cmd));
        expect(JSON.stringify(cmd)).toBe(before); // the caller's command is left as it was
      }),
      { numRuns: 5000 },
    );
    expect(fast).toBeGreaterThan(100);
  });

  it('leaves an auth command to the schema', () => {
    expect(checkCommand({ type: 'auth', changes: [{ type: 'enable' }] })).toBeNull();
  });

  it('views the entry when asked to, and copies by default', () => {
    const data = new Uint8Array(packr.pack({ type: 'put', key: 'k', value: Buffer.from('hello') }));
    const view = tryDecodeCommand(data, { viewValues: true });
    const copy = tryDecodeCommand(data);
    if (!view.ok || !copy.ok || view.command.type !== 'put' || copy.command.type !== 'put') {
      throw new Error('not decoded as puts');
    }
    expect(view.command.value.constructor).toBe(Uint8Array);
    expect(view.command.value.buffer).toBe(data.buffer);
    data.fill(0);
    expect(Buffer.from(copy.command.value).toString()).toBe('hello');
  });
});
