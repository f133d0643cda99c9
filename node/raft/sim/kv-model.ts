/**
 * Key-value model for the linearizability checker. Keys are independent, so histories are partitioned
 * by key and the state is just the value of one key (null = absent).
 */
import type { Model, Operation } from './linearizability.js';

export type KvInput =
  | { op: 'get'; key: string }
  | { op: 'put'; key: string; value: string }
  | { op: 'cas'; key: string; expected: string | null; value: string }
  | { op: 'delete'; key: string };

/** get -> { value }; cas -> { ok }; put/delete -> { ok: true }. */
export type KvOutput = { value: string | null } | { ok: boolean };

export type KvState = string | null;

export type KvOperation = Operation<KvInput, KvOutput>;

function stepGet(state: KvState, output: KvOutput | undefined): [boolean, KvState] {
  if (output === undefined) return [true, state]; // unknown read result: observes nothing
  return ['value' in output && output.value === state, state];
}

/** put/delete: an unknown outcome is treated as applied (the checker covers "not applied"). */
function stepWrite(state: KvState, next: KvState, output: KvOutput | undefined): [boolean, KvState] {
  if (output === undefined) return [true, next];
  if (!('ok' in output)) return [false, state];
  // A put/delete that reports ok:false was rejected and did not apply.
  return [true, output.ok ? next : state];
}

function stepCas(
  state: KvState,
  expected: KvState,
  value: string,
  output: KvOutput | undefined,
): [boolean, KvState] {
  const matches = state === expected;
  if (output === undefined) return [true, matches ? value : state];
  if (!('ok' in output)) return [false, state];
  return output.ok ? [matches, value] : [!matches, state];
}

/**
 * Groups operations by key, in order of first appearance. Gets with an unknown outcome are dropped:
 * they are legal in every state and change nothing, so they cannot affect the verdict, while each
 * pending one would double the checker's search space.
 */
function partitionByKey(history: KvOperation[]): KvOperation[][] {
  const byKey = new Map<string, KvOperation[]>();
  for (const op of history) {
    if (op.input.op === 'get' && op.output === undefined) continue;
    const group = byKey.get(op.input.key);
    if (group === undefined) byKey.set(op.input.key, [op]);
    else group.push(op);
  }
  return [...byKey.values()];
}

const show = (v: string | null): string => (v === null ? 'null' : JSON.stringify(v));

function describeOutput(output: KvOutput | undefined): string {
  if (output === undefined) return '?';
  if ('value' in output) return show(output.value);
  return output.ok ? 'ok' : 'failed';
}

function describeInput(input: KvInput): string {
  const key = JSON.stringify(input.key);
  switch (input.op) {
    case 'get':
      return `get(${key})`;
    case 'put':
      return `put(${key}, ${show(input.value)})`;
    case 'cas':
      return `cas(${key}, ${show(input.expected)} -> ${show(input.value)})`;
    case 'delete':
      return `delete(${key})`;
  }
}

export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => null,
  step(state, input, output) {
    switch (input.op) {
      case 'get':
        return stepGet(state, output);
      case 'put':
        return stepWrite(state, input.value, output);
      case 'delete':
        return stepWrite(state, null, output);
      case 'cas':
        return stepCas(state, input.expected, input.value, output);
    }
  },
  partition: partitionByKey,
  equal: (a, b) => a === b,
  // Prefix distinguishes null from the string "null".
  hash: (state) => (state === null ? 'n' : 's' + state),
  describeOperation: (input, output) => `${describeInput(input)} -> ${describeOutput(output)}`,
};
