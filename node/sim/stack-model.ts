// The linearizability model of one key of the real KvStore, for node/raft/sim/linearizability.ts.
// Unlike the core simulator's model it knows revisions: a write's revision is its log index, a
// compare-and-set compares modRevision, and reads observe (value, modRevision).
//
// The model is nondeterministic: a write whose outcome is unknown has an unknown revision, so a
// state is a set of candidates, each a value with a modRevision that may be unknown (-1) until a
// later read pins it. A step keeps every candidate the observed output allows.
// Transactions over several keys are checked through their projection on each key (ops of one
// key in a transaction share its call and return times): a sound, if weaker, check; the
// revision-order check (revision-order.ts) covers the order across keys.

import type { Model, Operation } from '../raft/sim/linearizability.js';

/** A key's observable state; `mod` is -1 while unknown. Absent keys have mod 0. */
export interface Candidate {
  v: string | null;
  mod: number;
}

export type Observed = { v: string; mod: number } | null;

export type KeyInput =
  | { op: 'get'; key: string }
  | { op: 'put'; key: string; value: string }
  /** put with expectModRevision (0: must not exist). */
  | { op: 'cas'; key: string; expectMod: number; value: string }
  /** txn: compare value = expected (null: must not exist), then put, else get. */
  | { op: 'vcas'; key: string; expected: string | null; value: string }
  | { op: 'del'; key: string };

export type KeyOutput =
  | { kind: 'read'; kv: Observed }
  | { kind: 'put'; rev: number }
  | { kind: 'cas'; ok: true; rev: number }
  | { kind: 'cas'; ok: false; current: Observed }
  | { kind: 'del'; existed: boolean; rev: number };

export type KeyOperation = Operation<KeyInput, KeyOutput>;
type State = Candidate[];

const UNKNOWN = -1;

function refine(c: Candidate, kv: Observed): Candidate | null {
  if (kv === null) return c.v === null ? c : null;
  if (c.v !== kv.v) return null;
  if (c.mod !== UNKNOWN && c.mod !== kv.mod) return null;
  return { v: kv.v, mod: kv.mod };
}

/** After a write at a known revision, which must exceed the key's last one. */
const written = (c: Candidate, v: string | null, rev: number): Candidate | null =>
  c.mod !== UNKNOWN && rev <= c.mod ? null : { v, mod: v === null ? 0 : rev };

/** 'yes', 'no' or 'maybe' (an unknown modRevision). */
function casMatches(c: Candidate, expectMod: number): 'yes' | 'no' | 'maybe' {
  if (expectMod === 0) return c.v === null ? 'yes' : 'no';
  if (c.v === null) return 'no';
  if (c.mod === UNKNOWN) return 'maybe';
  return c.mod === expectMod ? 'yes' : 'no';
}

function stepOne(c: Candidate, input: KeyInput, out: KeyOutput | undefined): Candidate[] {
  const keep = (x: Candidate | null): Candidate[] => (x ? [x] : []);
  switch (input.op) {
    case 'get':
      // Reads with unknown outcomes are left out of histories.
      return out?.kind === 'read' ? keep(refine(c, out.kv)) : [];
    case 'put':
      if (out === undefined) return [{ v: input.value, mod: UNKNOWN }];
      return out.kind === 'put' ? keep(written(c, input.value, out.rev)) : [];
    case 'del':
      if (out === undefined) return [{ v: null, mod: 0 }];
      if (out.kind !== 'del') return [];
      if (out.existed !== (c.v !== null)) return [];
      return out.existed ? keep(written(c, null, out.rev)) : [c];
    case 'cas': {
      const m = casMatches(c, input.expectMod);
      if (out === undefined) {
        const applied: Candidate = { v: input.value, mod: UNKNOWN };
        return m === 'yes' ? [applied] : m === 'no' ? [c] : [c, applied];
      }
      if (out.kind !== 'cas') return [];
      if (out.ok) return m === 'no' ? [] : keep(written(c, input.value, out.rev));
      if (m === 'yes') return [];
      const r = refine(c, out.current);
      // The failed compare saw the current modRevision: it must differ from the expected one.
      return r && casMatches(r, input.expectMod) === 'no' ? [r] : [];
    }
    case 'vcas': {
      const m = c.v === input.expected;
      if (out === undefined) return m ? [{ v: input.value, mod: UNKNOWN }] : [c];
      if (out.kind !== 'cas') return [];
      if (out.ok) return m ? keep(written(c, input.value, out.rev)) : [];
      if (m) return [];
      return keep(refine(c, out.current));
    }
  }
}

const keyOf = (c: Candidate): string => `${c.v === null ? 'n' : `s${c.v}`}@${c.mod}`;

function normalize(cands: Candidate[]): State {
  const seen = new Map<string, Candidate>();
  for (const c of cands) seen.set(keyOf(c), c);
  return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, c]) => c);
}

const showObs = (kv: Observed): string => (kv === null ? 'absent' : `${kv.v}@${kv.mod}`);

function describeInput(i: KeyInput): string {
  const k = JSON.stringify(i.key);
  switch (i.op) {
    case 'get':
      return `get(${k})`;
    case 'put':
      return `put(${k}, ${i.value})`;
    case 'cas':
      return `put(${k}, ${i.value}, expectMod ${i.expectMod})`;
    case 'vcas':
      return `txn(${k} = ${i.expected ?? 'absent'} ? put ${i.value})`;
    case 'del':
      return `delete(${k})`;
  }
}

function describeOutput(o: KeyOutput | undefined): string {
  if (o === undefined) return '?';
  switch (o.kind) {
    case 'read':
      return showObs(o.kv);
    case 'put':
      return `rev ${o.rev}`;
    case 'cas':
      return o.ok ? `ok rev ${o.rev}` : `failed, current ${showObs(o.current)}`;
    case 'del':
      return o.existed ? `deleted rev ${o.rev}` : 'absent';
  }
}

export const stackKvModel: Model<State, KeyInput, KeyOutput> = {
  init: () => [{ v: null, mod: 0 }],
  step(state, input, output) {
    const next = normalize(state.flatMap((c) => stepOne(c, input, output)));
    return [next.length > 0, next];
  },
  partition(history) {
    const byKey = new Map<string, KeyOperation[]>();
    for (const op of history) {
      if (op.input.op === 'get' && op.output === undefined) continue;
      const group = byKey.get(op.input.key);
      if (group) group.push(op);
      else byKey.set(op.input.key, [op]);
    }
    return [...byKey.values()];
  },
  equal: (a, b) => a.length === b.length && a.every((c, i) => keyOf(c) === keyOf(b[i] as Candidate)),
  hash: (s) => s.map(keyOf).join('|'),
  describeOperation: (input, output) => `${describeInput(input)} -> ${describeOutput(output)}`,
};
