import { describe, expect, it } from 'vitest';
import { ConfluxError } from '../errors.js';
import {
  decodeCommand,
  encodeCommand,
  type KvCommand,
  type Op,
  type TxnCommand,
  tryDecodeCommand,
} from './commands.js';
import { bytes } from './test-helpers.js';
import { validateCommand, validateKey, validateValue } from './validate.js';

describe('commands: encoding', () => {
  const commands: KvCommand[] = [
    { type: 'put', key: 'a/b', value: bytes('v'), requestId: 'r1' },
    { type: 'put', key: 'k', value: new Uint8Array(0), expectModRevision: 0 },
    { type: 'put', key: 'big', value: new Uint8Array(70_000).fill(7), expectModRevision: 2 ** 40 },
    { type: 'delete', key: '\u{1F600}' },
    {
      type: 'txn',
      compare: [
        { key: 'a', target: 'modRevision', op: '=', operand: 3 },
        { key: 'a', target: 'value', op: '!=', operand: bytes('x') },
        { key: 'b', target: 'exists', op: '=', operand: false },
      ],
      success: [
        { type: 'put', key: 'b', value: bytes('1') },
        { type: 'get', key: 'a' },
      ],
      failure: [{ type: 'delete', key: 'a' }],
      requestId: 'r2',
    },
  ];

  it.each(commands.map((c) => [c.type, c] as const))('round-trips a %s', (_t, cmd) => {
    const decoded = decodeCommand(encodeCommand(cmd));
    expect(decoded).toEqual(cmd);
  });

  it('decodes values as plain Uint8Arrays that own their bytes', () => {
    const data = encodeCommand({ type: 'put', key: 'k', value: bytes('hello') });
    const cmd = decodeCommand(data);
    if (cmd.type !== 'put') throw new Error('not a put');
    expect(cmd.value.constructor).toBe(Uint8Array);
    data.fill(0);
    expect(Buffer.from(cmd.value).toString()).toBe('hello');
  });

  it('does not encode undefined optional fields', () => {
    const a = encodeCommand({ type: 'put', key: 'k', value: bytes('v') });
    const b = encodeCommand({
      type: 'put',
      key: 'k',
      value: bytes('v'),
      expectModRevision: undefined,
      requestId: undefined,
    });
    expect(Buffer.from(b)).toEqual(Buffer.from(a));
  });

  it('refuses to encode a malformed command', () => {
    const bad = [
      { type: 'put', key: '', value: bytes('v') },
      { type: 'put', key: 'lone \ud800 surrogate', value: bytes('v') },
      { type: 'put', key: 'k', value: 'a string' },
      { type: 'put', key: 'k', value: bytes('v'), expectModRevision: -1 },
      { type: 'put', key: 'k', value: bytes('v'), extra: 1 },
      {
        type: 'txn',
        compare: [{ key: 'a', target: 'exists', op: '<', operand: true }],
        success: [],
        failure: [],
      },
      {
        type: 'txn',
        compare: [{ key: 'a', target: 'version', op: '=', operand: 1.5 }],
        success: [],
        failure: [],
      },
    ];
    for (const cmd of bad) expect(() => encodeCommand(cmd as KvCommand)).toThrow(ConfluxError);
  });

  it('tryDecodeCommand reports garbage instead of throwing', () => {
    expect(tryDecodeCommand(new Uint8Array([0xc1]))).toMatchObject({ ok: false });
    expect(tryDecodeCommand(new Uint8Array([0x93, 1, 2, 3]))).toMatchObject({ ok: false });
    expect(() => decodeCommand(new Uint8Array([0xc1]))).toThrow(ConfluxError);
  });
});

describe('validate: limits checked at proposal time', () => {
  const limits = { maxKeyBytes: 8, maxValueBytes: 4, maxTxnOps: 3 };
  const code = (f: () => void) => {
    try {
      f();
      return 'ok';
    } catch (err) {
      return err instanceof ConfluxError ? err.code : 'other';
    }
  };

  it('keys: non-empty, valid Unicode, at most maxKeyBytes of UTF-8', () => {
    expect(code(() => validateKey('12345678', limits))).toBe('ok');
    expect(code(() => validateKey('123456789', limits))).toBe('KEY_TOO_LONG');
    expect(code(() => validateKey('ééééé', limits))).toBe('KEY_TOO_LONG'); // 5 chars, 10 bytes
    expect(code(() => validateKey('', limits))).toBe('INVALID_REQUEST');
    expect(code(() => validateKey('\udc00', limits))).toBe('INVALID_REQUEST');
  });

  it('values: at most maxValueBytes', () => {
    expect(code(() => validateValue(new Uint8Array(4), limits))).toBe('ok');
    expect(code(() => validateValue(new Uint8Array(5), limits))).toBe('VALUE_TOO_LARGE');
  });

  it('defaults: 1 KiB keys, 1 MiB values', () => {
    expect(code(() => validateKey('k'.repeat(1024)))).toBe('ok');
    expect(code(() => validateKey('k'.repeat(1025)))).toBe('KEY_TOO_LONG');
    expect(code(() => validateValue(new Uint8Array(1024 * 1024)))).toBe('ok');
    expect(code(() => validateValue(new Uint8Array(1024 * 1024 + 1)))).toBe('VALUE_TOO_LARGE');
  });

  it('transactions: every key and value, op count, no key written twice in a branch', () => {
    const put = (key: string, v = 'v') => ({ type: 'put' as const, key, value: bytes(v) });
    const txn = (success: Op[]): TxnCommand => ({ type: 'txn', compare: [], success, failure: [] });
    expect(code(() => validateCommand(txn([put('a'), put('b')]), limits))).toBe('ok');
    expect(code(() => validateCommand(txn([put('a'), put('a')]), limits))).toBe('INVALID_REQUEST');
    expect(code(() => validateCommand(txn([put('a'), put('b'), put('c'), put('d')]), limits))).toBe(
      'INVALID_REQUEST',
    );
    expect(code(() => validateCommand(txn([put('a', 'too long')]), limits))).toBe('VALUE_TOO_LARGE');
    expect(code(() => validateCommand(txn([{ type: 'get', key: 'much too long' }]), limits))).toBe(
      'KEY_TOO_LONG',
    );
  });

  it('the store applies commands beyond its own limits (apply stays total across configs)', async () => {
    const { KvStore } = await import('./store.js');
    const { run } = await import('./test-helpers.js');
    const s = new KvStore({ maxKeyBytes: 4, maxValueBytes: 4 });
    const cmd: KvCommand = { type: 'put', key: 'longer key', value: bytes('longer value') };
    expect(() => s.validate(cmd)).toThrow(ConfluxError);
    expect(run(s, cmd)).toMatchObject({ ok: true });
  });
});

describe('commands: log bytes', () => {
  it('own an exact-size buffer, so the log never keeps msgpack scratch space alive', () => {
    for (const cmd of [
      { type: 'put', key: 'a', value: bytes('v') },
      { type: 'put', key: 'big', value: new Uint8Array(70_000).fill(1) },
    ] satisfies KvCommand[]) {
      const data = encodeCommand(cmd);
      expect(data.byteOffset).toBe(0);
      expect(data.buffer.byteLength).toBe(data.byteLength);
      expect(decodeCommand(data)).toEqual(cmd);
    }
  });
});
