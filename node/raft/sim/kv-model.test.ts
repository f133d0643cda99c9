import { describe, expect, it } from 'vitest';
import { type KvOperation, type KvOutput, kvModel } from './kv-model.js';

describe('kvModel.step', () => {
  it('get is legal only when it returns the current value, and never changes state', () => {
    expect(kvModel.step('a', { op: 'get', key: 'k' }, { value: 'a' })).toEqual([true, 'a']);
    expect(kvModel.step('a', { op: 'get', key: 'k' }, { value: 'b' })).toEqual([false, 'a']);
    expect(kvModel.step(null, { op: 'get', key: 'k' }, { value: null })).toEqual([true, null]);
    expect(kvModel.step(null, { op: 'get', key: 'k' }, { value: 'null' })[0]).toBe(false);
  });

  it('get with an unknown outcome is legal in any state', () => {
    expect(kvModel.step('a', { op: 'get', key: 'k' }, undefined)).toEqual([true, 'a']);
  });

  it('get with a non-read output is illegal', () => {
    expect(kvModel.step('a', { op: 'get', key: 'k' }, { ok: true })[0]).toBe(false);
  });

  it('put and delete set / clear the value, also when the outcome is unknown', () => {
    expect(kvModel.step(null, { op: 'put', key: 'k', value: 'v' }, { ok: true })).toEqual([true, 'v']);
    expect(kvModel.step(null, { op: 'put', key: 'k', value: 'v' }, undefined)).toEqual([true, 'v']);
    expect(kvModel.step('v', { op: 'delete', key: 'k' }, { ok: true })).toEqual([true, null]);
    expect(kvModel.step('v', { op: 'delete', key: 'k' }, undefined)).toEqual([true, null]);
  });

  it('a put that reports ok:false did not apply', () => {
    expect(kvModel.step('a', { op: 'put', key: 'k', value: 'v' }, { ok: false })).toEqual([true, 'a']);
  });

  it('cas succeeds iff the current value equals expected (null = absent)', () => {
    const casA = { op: 'cas', key: 'k', expected: 'a', value: 'b' } as const;
    const casAbsent = { op: 'cas', key: 'k', expected: null, value: 'b' } as const;
    expect(kvModel.step('a', casA, { ok: true })).toEqual([true, 'b']);
    expect(kvModel.step('x', casA, { ok: true })[0]).toBe(false);
    expect(kvModel.step('x', casA, { ok: false })).toEqual([true, 'x']);
    expect(kvModel.step('a', casA, { ok: false })[0]).toBe(false);
    expect(kvModel.step(null, casAbsent, { ok: true })).toEqual([true, 'b']);
    expect(kvModel.step('a', casAbsent, { ok: true })[0]).toBe(false);
  });

  it('cas with an unknown outcome applies when the precondition holds and is a no-op otherwise', () => {
    const casA = { op: 'cas', key: 'k', expected: 'a', value: 'b' } as const;
    expect(kvModel.step('a', casA, undefined)).toEqual([true, 'b']);
    expect(kvModel.step('x', casA, undefined)).toEqual([true, 'x']);
  });
});

describe('kvModel helpers', () => {
  it('partitions by key and drops reads with an unknown outcome (they constrain nothing)', () => {
    const op = (key: string, output: KvOutput | undefined, ret: number): KvOperation => ({
      clientId: 0,
      input: { op: 'get', key },
      call: 0,
      output,
      return: ret,
    });
    const history = [op('a', { value: null }, 1), op('b', undefined, Infinity), op('a', undefined, Infinity)];
    expect(kvModel.partition?.(history)).toEqual([[history[0]]]);
  });

  it('hash distinguishes absent from the string "null"', () => {
    expect(kvModel.hash(null)).not.toBe(kvModel.hash('null'));
  });

  it('describes operations readably', () => {
    expect(kvModel.describeOperation({ op: 'get', key: 'k' }, { value: null })).toBe('get("k") -> null');
    expect(kvModel.describeOperation({ op: 'put', key: 'k', value: 'v' }, undefined)).toBe(
      'put("k", "v") -> ?',
    );
    expect(
      kvModel.describeOperation({ op: 'cas', key: 'k', expected: null, value: 'v' }, { ok: false }),
    ).toBe('cas("k", null -> "v") -> failed');
  });
});
