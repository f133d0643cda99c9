import { describe, expect, it } from 'vitest';
import { type KvInput, type KvOperation, type KvOutput, kvModel } from './kv-model.js';
import { type CheckResult, checkOperations, type Model, type Operation } from './linearizability.js';

const INF = Number.POSITIVE_INFINITY;

/** Small seeded PRNG (mulberry32) so randomized tests are reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const randInt = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));

function op(
  clientId: number,
  input: KvInput,
  call: number,
  output: KvOutput | undefined,
  ret: number,
): KvOperation {
  return { clientId, input, call, output, return: ret };
}
const get = (key: string): KvInput => ({ op: 'get', key });
const put = (key: string, value: string): KvInput => ({ op: 'put', key, value });
const del = (key: string): KvInput => ({ op: 'delete', key });
const cas = (key: string, expected: string | null, value: string): KvInput => ({
  op: 'cas',
  key,
  expected,
  value,
});
const OK: KvOutput = { ok: true };
const FAILED: KvOutput = { ok: false };
const val = (value: string | null): KvOutput => ({ value });

const check = (history: KvOperation[], maxSteps?: number): CheckResult =>
  checkOperations(kvModel, history, maxSteps === undefined ? {} : { maxSteps });

interface GenOptions {
  ops: number;
  keys: number;
  clients: number;
  timeoutProb: number;
}

/**
 * Random linearizable KV history: ops are applied to a sequential map at linearization points
 * 10, 20, 30, ...; each client's ops are sequential, and each op's [call, return] interval is chosen
 * randomly around its linearization point (so intervals overlap other clients' ops). A timed-out op
 * took effect at its point or not at all (50/50), and returns +Infinity with unknown output.
 */
function genLinearizableHistory(rng: Rng, o: GenOptions): KvOperation[] {
  const store = new Map<string, string>();
  const perClient: { input: KvInput; output: KvOutput | undefined; lin: number; timedOut: boolean }[][] =
    Array.from({ length: o.clients }, () => []);
  for (let i = 0; i < o.ops; i++) {
    const key = `k${randInt(rng, 0, o.keys - 1)}`;
    const current = store.get(key) ?? null;
    const value = `v${randInt(rng, 0, 5)}`;
    const kind = randInt(rng, 0, 9);
    const timedOut = rng() < o.timeoutProb;
    const applies = !timedOut || rng() < 0.5;
    let input: KvInput;
    let output: KvOutput;
    if (kind < 4) {
      input = get(key);
      output = val(current);
    } else if (kind < 7) {
      input = put(key, value);
      output = OK;
      if (applies) store.set(key, value);
    } else if (kind < 8) {
      input = del(key);
      output = OK;
      if (applies) store.delete(key);
    } else {
      const expected = rng() < 0.6 ? current : rng() < 0.5 ? null : `v${randInt(rng, 0, 5)}`;
      input = cas(key, expected, value);
      output = { ok: expected === current };
      if (applies && expected === current) store.set(key, value);
    }
    perClient[randInt(rng, 0, o.clients - 1)]!.push({ input, output, lin: (i + 1) * 10, timedOut });
  }
  const history: KvOperation[] = [];
  perClient.forEach((ops, clientId) => {
    let prevEnd = 0; // calls start strictly after the client's previous reply
    ops.forEach((e, j) => {
      const call = randInt(rng, prevEnd + 1, e.lin);
      const nextLin = ops[j + 1]?.lin ?? e.lin + 60;
      const ret = e.timedOut ? INF : randInt(rng, e.lin, nextLin - 1);
      history.push(op(clientId, e.input, call, e.timedOut ? undefined : e.output, ret));
      prevEnd = e.timedOut ? e.lin : ret; // after a timeout the client moves on
    });
  });
  return history.sort((a, b) => a.call - b.call);
}

describe('checkOperations with the KV model', () => {
  it('accepts the empty history', () => {
    expect(check([])).toEqual({ ok: true });
  });

  it('accepts sequential histories that follow register semantics', () => {
    const h = [
      op(0, get('x'), 0, val(null), 1),
      op(0, put('x', 'a'), 2, OK, 3),
      op(1, get('x'), 4, val('a'), 5),
      op(1, cas('x', 'a', 'b'), 6, OK, 7),
      op(0, cas('x', 'a', 'c'), 8, FAILED, 9),
      op(2, get('x'), 10, val('b'), 11),
      op(2, del('x'), 12, OK, 13),
      op(0, get('x'), 14, val(null), 15),
      op(1, cas('x', null, 'd'), 16, OK, 17),
      op(1, get('x'), 18, val('d'), 19),
    ];
    expect(check(h)).toEqual({ ok: true });
  });

  it('accepts reads concurrent with a write that observe either the old or the new value', () => {
    const h = [
      op(0, put('x', '1'), 0, OK, 10),
      op(1, get('x'), 1, val(null), 2),
      op(2, get('x'), 3, val('1'), 4),
      op(1, get('x'), 5, val('1'), 6),
    ];
    expect(check(h)).toEqual({ ok: true });
  });

  it('rejects reads that go back to the old value after the new value was observed', () => {
    const h = [
      op(0, put('x', '1'), 0, OK, 10),
      op(2, get('x'), 3, val('1'), 4),
      op(1, get('x'), 5, val(null), 6),
    ];
    expect(check(h).ok).toBe(false);
  });

  it('catches a stale read after a completed write', () => {
    const h = [
      op(0, put('x', '1'), 0, OK, 1),
      op(0, put('x', '2'), 2, OK, 3),
      op(1, get('x'), 4, val('1'), 5),
    ];
    expect(check(h).ok).toBe(false);
  });

  it('catches a lost acknowledged write', () => {
    const h = [op(0, put('x', 'a'), 0, OK, 1), op(1, get('x'), 2, val(null), 3)];
    expect(check(h).ok).toBe(false);
  });

  it('catches a cas that succeeded twice from the same expected value', () => {
    const h = [
      op(0, put('x', '0'), 0, OK, 1),
      op(1, cas('x', '0', '1'), 2, OK, 10),
      op(2, cas('x', '0', '2'), 3, OK, 11),
    ];
    expect(check(h).ok).toBe(false);
    // ...but it is fine if a concurrent write reset the value in between.
    expect(check([...h, op(0, put('x', '0'), 4, OK, 9)])).toEqual({ ok: true });
  });

  it('treats ops as concurrent when one returns at the same instant the other is called', () => {
    // a.return === b.call: concurrent, so the get may be linearized before the put.
    expect(check([op(0, put('x', '1'), 0, OK, 5), op(1, get('x'), 5, val(null), 6)])).toEqual({ ok: true });
    // a.return < b.call: ordered, so the get must see the put.
    expect(check([op(0, put('x', '1'), 0, OK, 4), op(1, get('x'), 5, val(null), 6)]).ok).toBe(false);
  });

  it('accepts a timed-out write that is later observed', () => {
    const h = [op(0, put('x', '1'), 0, undefined, INF), op(1, get('x'), 5, val('1'), 6)];
    expect(check(h)).toEqual({ ok: true });
  });

  it('accepts a timed-out write that is never observed', () => {
    const h = [
      op(0, put('x', '1'), 0, undefined, INF),
      op(1, get('x'), 5, val(null), 6),
      op(1, get('x'), 7, val(null), 8),
    ];
    expect(check(h)).toEqual({ ok: true });
  });

  it('rejects a timed-out write that is observed and then un-observed', () => {
    const h = [
      op(0, put('x', '1'), 0, undefined, INF),
      op(1, get('x'), 5, val('1'), 6),
      op(1, get('x'), 7, val(null), 8),
    ];
    expect(check(h).ok).toBe(false);
  });

  it('does not let a timed-out write take effect before it was called', () => {
    const h = [op(1, get('x'), 0, val('1'), 1), op(0, put('x', '1'), 2, undefined, INF)];
    expect(check(h).ok).toBe(false);
  });

  it('checks keys independently and reports the failing partition', () => {
    const ok = [
      op(0, put('a', '1'), 0, OK, 10),
      op(1, put('b', '2'), 0, OK, 10),
      op(2, get('a'), 11, val('1'), 12),
      op(2, get('b'), 13, val('2'), 14),
    ];
    expect(check(ok)).toEqual({ ok: true });
    expect(kvModel.partition?.(ok).map((p) => p.map((o) => o.input.key))).toEqual([
      ['a', 'a'],
      ['b', 'b'],
    ]);

    const bad = [...ok, op(3, get('b'), 15, val('1'), 16)]; // 'b' never held '1'
    const result = check(bad);
    expect(result).toMatchObject({ ok: false, partition: 1 });
  });

  it('describes the longest linearizable prefix and the ops that could not be linearized', () => {
    const h = [
      op(0, put('x', '1'), 0, OK, 1),
      op(0, put('x', '2'), 2, OK, 3),
      op(7, get('x'), 4, val('1'), 5),
    ];
    const result = check(h);
    if (result.ok !== false) throw new Error('expected a violation');
    expect(result.description).toContain('Longest linearizable prefix: 2 ops');
    expect(result.description).toContain('client 0: put("x", "2") -> ok [call 2, return 3]');
    expect(result.description).toContain('client 7: get("x") -> "1" [call 4, return 5]');
  });

  it("returns 'unknown' when the search exceeds maxSteps", () => {
    // 12 concurrent writes, then a read of a value never written: proving it illegal
    // needs to explore every subset of the writes.
    const h: KvOperation[] = [];
    for (let i = 0; i < 12; i++) h.push(op(i, put('x', `v${i}`), 0, OK, 100));
    h.push(op(99, get('x'), 200, val('never'), 201));
    const limited = check(h, 1_000);
    expect(limited.ok).toBe('unknown');
    expect(check(h).ok).toBe(false);
  });

  it('rejects malformed histories where return precedes call', () => {
    expect(() => check([op(0, get('x'), 5, val(null), 4)])).toThrow(RangeError);
  });
});

describe('checkOperations on randomized histories', () => {
  const opts: GenOptions = { ops: 60, keys: 2, clients: 4, timeoutProb: 0.1 };

  it('accepts random linearizable histories and rejects them after one read is corrupted', () => {
    let mutated = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const rng = mulberry32(seed);
      const history = genLinearizableHistory(rng, opts);
      expect(check(history), `seed ${seed}`).toEqual({ ok: true });

      const reads = history.filter((o) => o.input.op === 'get' && o.output !== undefined);
      const victim = reads[randInt(rng, 0, reads.length - 1)];
      if (victim === undefined) continue;
      const corrupted = history.map((o) => (o === victim ? { ...o, output: val('never-written') } : o));
      expect(check(corrupted).ok, `seed ${seed}`).toBe(false);
      mutated++;
    }
    expect(mutated).toBeGreaterThan(150);
  });

  it('gives the same verdicts when every state hashes to the same bucket', () => {
    const collidingModel: Model<string | null, KvInput, KvOutput> = { ...kvModel, hash: () => '' };
    for (let seed = 1; seed <= 30; seed++) {
      const rng = mulberry32(seed);
      const history = genLinearizableHistory(rng, opts);
      const corrupted = history.map((o, i) => (i === 10 ? { ...o, output: val('x') } : o));
      expect(checkOperations(collidingModel, history)).toEqual(check(history));
      expect(checkOperations(collidingModel, corrupted).ok).toBe(check(corrupted).ok);
    }
  });

  it('checks ~2,000 ops over 5 keys and 5 clients well under a second', () => {
    const history = genLinearizableHistory(mulberry32(42), {
      ops: 2_000,
      keys: 5,
      clients: 5,
      timeoutProb: 0.01,
    });
    const start = performance.now();
    const result = check(history);
    const elapsed = performance.now() - start;
    expect(result).toEqual({ ok: true });
    expect(elapsed).toBeLessThan(1_000);
  });
});

describe('checkOperations with a model without partition', () => {
  // A counter: 'inc' returns the new value; 'read' returns the current one.
  type CounterInput = 'inc' | 'read';
  const counter: Model<number, CounterInput, number> = {
    init: () => 0,
    step: (s, input, output) => {
      const next = input === 'inc' ? s + 1 : s;
      return [output === undefined || output === next, next];
    },
    equal: (a, b) => a === b,
    hash: (s) => String(s),
    describeOperation: (input, output) => `${input} -> ${output ?? '?'}`,
  };
  const c = (clientId: number, input: CounterInput, call: number, output: number | undefined, ret: number) =>
    ({ clientId, input, call, output, return: ret }) satisfies Operation<CounterInput, number>;

  it('checks the whole history as a single partition', () => {
    expect(
      checkOperations(counter, [c(0, 'inc', 0, 2, 10), c(1, 'inc', 1, 1, 9), c(2, 'read', 11, 2, 12)]),
    ).toEqual({
      ok: true,
    });
    const result = checkOperations(counter, [c(0, 'inc', 0, 1, 1), c(1, 'inc', 2, 1, 3)]);
    expect(result).toMatchObject({ ok: false, partition: 0 });
  });
});
