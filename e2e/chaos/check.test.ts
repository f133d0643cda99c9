import { describe, expect, it } from 'vitest';
import type { KvInput, KvOperation, KvOutput } from '../../node/raft/sim/kv-model.js';
import { checkHistory, lostWrites } from './check.js';

const op = (
  clientId: number,
  input: KvInput,
  call: number,
  output: KvOutput | undefined,
  ret = call + 1,
) => ({
  clientId,
  input,
  call,
  output,
  return: output === undefined ? Number.POSITIVE_INFINITY : ret,
});
const put = (c: number, value: string, call: number) =>
  op(c, { op: 'put', key: 'k', value }, call, { ok: true });
const unknownPut = (c: number, value: string, call: number) =>
  op(c, { op: 'put', key: 'k', value }, call, undefined);
const get = (c: number, value: string | null, call: number) =>
  op(c, { op: 'get', key: 'k' }, call, { value });

describe('the chaos verdict', () => {
  it('accepts a history where the final value is the last acknowledged write', () => {
    const ops: KvOperation[] = [put(0, 'a', 0), put(1, 'b', 10), get(2, 'b', 20)];
    expect(checkHistory(ops, new Map([['k', 'b']]))).toEqual({ lost: 0, anomalies: 0, details: [] });
  });

  it('counts an acknowledged write that a later final value contradicts as lost', () => {
    const ops: KvOperation[] = [put(0, 'a', 0), put(1, 'b', 10), get(2, 'a', 20)];
    const v = checkHistory(ops, new Map([['k', 'a']]));
    expect(v.lost).toBe(1);
    expect(v.anomalies).toBe(1);
  });

  it('finds a stale read from an old leader', () => {
    const ops: KvOperation[] = [put(0, 'a', 0), put(1, 'b', 10), get(1001, 'a', 15), get(2, 'b', 30)];
    const v = checkHistory(ops, new Map([['k', 'b']]));
    expect(v.lost).toBe(0);
    expect(v.anomalies).toBe(1);
    expect(v.details[0]).toMatch(/not linearizable/);
  });

  it('lets a write with an unknown outcome be the final value, or never happen', () => {
    const ops: KvOperation[] = [put(0, 'a', 0), unknownPut(1, 'b', 10), get(2, 'a', 20)];
    expect(checkHistory(ops, new Map([['k', 'b']])).lost).toBe(0);
    expect(checkHistory(ops, new Map([['k', 'a']]))).toEqual({ lost: 0, anomalies: 0, details: [] });
  });

  it('loses every acknowledged write when the key is gone or holds a value nobody wrote', () => {
    const ops: KvOperation[] = [put(0, 'a', 0), put(1, 'b', 10)];
    expect(lostWrites(ops, null)).toBe(2);
    expect(lostWrites(ops, 'zzz')).toBe(2);
  });

  it('does not count concurrent writes against each other', () => {
    // b began before a returned: either order is legal, so a surviving a loses nothing.
    const ops: KvOperation[] = [
      put(0, 'a', 0),
      op(1, { op: 'put', key: 'k', value: 'b' }, 0.5, { ok: true }, 2),
    ];
    expect(lostWrites(ops, 'a')).toBe(0);
  });
});
