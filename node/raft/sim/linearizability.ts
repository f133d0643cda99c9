/**
 * Porcupine-style linearizability checker (Wing & Gong search with Lowe's memoization, as in
 * anishathalye/porcupine `checkSingle`).
 *
 * A history is a set of operations, each with a call time and a return time. It is linearizable if
 * there is a total order of the operations that (1) respects real time: when `a.return < b.call`, a
 * comes before b, and (2) is a legal sequential execution of the model.
 *
 * Ordering rule (explicit): operations a and b are ordered (a before b) only when `a.return < b.call`
 * strictly. When `a.return === b.call` they are concurrent and may be linearized either way. In the
 * event list this means that at equal timestamps, call events sort before return events.
 *
 * Unknown outcomes: an operation that timed out has `output === undefined` and `return === +Infinity`.
 * It may be linearized anywhere after its call; linearizing it after every other operation is the same
 * as "it never took effect", so the model only has to handle the "it took effect" case (with any
 * possible output).
 *
 * The whole module is pure: no I/O, no clocks, no randomness.
 */

export interface Operation<I, O> {
  clientId: number;
  input: I;
  /** Logical time the call was invoked. */
  call: number;
  /** Undefined when the call timed out / its outcome is unknown. */
  output: O | undefined;
  /** Logical time the reply arrived; Number.POSITIVE_INFINITY when it timed out. */
  return: number;
}

export interface Model<S, I, O> {
  init(): S;
  /**
   * Returns [legal, nextState]. When `output` is undefined (unknown outcome) the step must accept any
   * outcome the input could have had. Must not mutate `state`.
   */
  step(state: S, input: I, output: O | undefined): [boolean, S];
  /** Splits a history into independently checkable sub-histories (e.g. one per key). */
  partition?(history: Operation<I, O>[]): Operation<I, O>[][];
  equal(a: S, b: S): boolean;
  /** Used for memoization: equal states must have equal hashes. */
  hash(state: S): string;
  describeOperation(input: I, output: O | undefined): string;
}

export type CheckResult =
  | { ok: true }
  | { ok: false; partition: number; description: string }
  | { ok: 'unknown'; reason: string };

export interface CheckOptions {
  /** Search budget per partition (loop iterations). Exceeding it yields `{ ok: 'unknown' }`. */
  maxSteps?: number;
}

export const DEFAULT_MAX_STEPS = 5_000_000;

/** How many operations of the longest prefix / frontier to list in failure descriptions. */
const MAX_LISTED_OPS = 12;

/**
 * Checks a history against a model. Partitions (if the model defines `partition`) are checked
 * independently, each with its own `maxSteps` budget. A definite violation in any partition wins over
 * an 'unknown' in another one.
 */
export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  opts: CheckOptions = {},
): CheckResult {
  const maxSteps = opts.maxSteps ?? DEFAULT_MAX_STEPS;
  validateHistory(history);
  const partitions = model.partition ? model.partition(history) : [history];
  let unknown: CheckResult | undefined;
  for (let p = 0; p < partitions.length; p++) {
    const ops = partitions[p]!;
    const result = checkSingle(model, ops, maxSteps);
    if (result.kind === 'illegal') {
      return { ok: false, partition: p, description: describeFailure(model, ops, p, result.longest) };
    }
    if (result.kind === 'exhausted' && unknown === undefined) {
      unknown = {
        ok: 'unknown',
        reason: `partition ${p} (${ops.length} ops): search exceeded maxSteps=${maxSteps}`,
      };
    }
  }
  return unknown ?? { ok: true };
}

function validateHistory<I, O>(history: Operation<I, O>[]): void {
  history.forEach((op, i) => {
    if (Number.isNaN(op.call) || Number.isNaN(op.return) || op.call === Number.POSITIVE_INFINITY) {
      throw new RangeError(`operation ${i}: invalid times call=${op.call} return=${op.return}`);
    }
    if (op.return < op.call) {
      throw new RangeError(`operation ${i}: return ${op.return} precedes call ${op.call}`);
    }
  });
}

/** Fixed-size bitset of linearized operation indices. */
class Bitset {
  private readonly words: Uint32Array;

  constructor(size: number) {
    this.words = new Uint32Array(Math.max(1, Math.ceil(size / 32)));
  }

  set(i: number): void {
    this.words[i >>> 5]! |= 1 << (i & 31);
  }

  clear(i: number): void {
    this.words[i >>> 5]! &= ~(1 << (i & 31));
  }

  /**
   * Compact, fixed-length key: two UTF-16 code units per word. Lone surrogates are fine for Map keys
   * (compared by code units). Fixed length keeps `key + '|' + hash` unambiguous.
   */
  key(): string {
    let s = '';
    for (const w of this.words) s += String.fromCharCode(w & 0xffff, w >>> 16);
    return s;
  }
}

const NIL = -1;

/**
 * Doubly linked list of call/return events, stored in typed arrays. Operation k owns node 2k (call)
 * and node 2k+1 (return); node 2n is the head sentinel. Invariant: a call node is in the list iff its
 * return node is, and the call precedes its return — so walking forward from any call always reaches
 * a return before NIL.
 */
class EventList {
  readonly head: number;
  readonly next: Int32Array;
  readonly prev: Int32Array;

  constructor(order: number[]) {
    this.head = order.length;
    this.next = new Int32Array(order.length + 1).fill(NIL);
    this.prev = new Int32Array(order.length + 1).fill(NIL);
    let last = this.head;
    for (const node of order) {
      this.next[last] = node;
      this.prev[node] = last;
      last = node;
    }
  }

  /** Removes an operation's call node and its return node (the operation has been linearized). */
  lift(call: number): void {
    const { next, prev } = this;
    next[prev[call]!] = next[call]!;
    prev[next[call]!] = prev[call]!; // next[call] is never NIL: the return follows.
    const ret = call + 1;
    next[prev[ret]!] = next[ret]!;
    if (next[ret] !== NIL) prev[next[ret]!] = prev[ret]!;
  }

  /** Exact inverse of `lift`; must be applied in LIFO order. */
  unlift(call: number): void {
    const { next, prev } = this;
    const ret = call + 1;
    next[prev[ret]!] = ret;
    if (next[ret] !== NIL) prev[next[ret]!] = ret;
    next[prev[call]!] = call;
    prev[next[call]!] = call;
  }
}

/** Event nodes sorted by time; at equal time calls precede returns (=> equal times are concurrent). */
function sortedEvents<I, O>(ops: Operation<I, O>[]): number[] {
  const time = (node: number): number => {
    const op = ops[node >> 1]!;
    return (node & 1) === 0 ? op.call : op.return;
  };
  const nodes = Array.from({ length: ops.length * 2 }, (_, i) => i);
  return nodes.sort((a, b) => {
    const ta = time(a);
    const tb = time(b);
    if (ta !== tb) return ta < tb ? -1 : 1;
    const kindA = a & 1; // 0 = call, 1 = return
    const kindB = b & 1;
    return kindA !== kindB ? kindA - kindB : a - b;
  });
}

type SingleResult = { kind: 'linearizable' } | { kind: 'illegal'; longest: number[] } | { kind: 'exhausted' };

/** Memo of visited (linearized set, state) configurations; buckets resolve hash collisions via `equal`. */
class Cache<S> {
  private readonly map = new Map<string, S[]>();

  constructor(private readonly model: Pick<Model<S, unknown, unknown>, 'equal' | 'hash'>) {}

  /** Returns true if newly added, false if an equal configuration was already visited. */
  add(bitsKey: string, state: S): boolean {
    const key = bitsKey + '|' + this.model.hash(state);
    const bucket = this.map.get(key);
    if (bucket === undefined) {
      this.map.set(key, [state]);
      return true;
    }
    if (bucket.some((s) => this.model.equal(s, state))) return false;
    bucket.push(state);
    return true;
  }
}

/**
 * Depth-first search over linearization orders. At each point the candidates are the call events
 * before the first return event still in the list (the ops that could take effect next); reaching a
 * return event means that op's deadline passed unlinearized, so we backtrack.
 */
function checkSingle<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[], maxSteps: number): SingleResult {
  const list = new EventList(sortedEvents(ops));
  const { head, next } = list;
  const linearized = new Bitset(ops.length);
  const cache = new Cache<S>(model);
  const stack: { op: number; state: S }[] = []; // op linearized at this depth + state before it
  let longest: number[] = [];
  let state = model.init();
  let entry = next[head]!;
  let steps = 0;

  while (next[head] !== NIL) {
    if (++steps > maxSteps) return { kind: 'exhausted' };
    if ((entry & 1) === 0) {
      const op = entry >> 1;
      const { input, output } = ops[op]!;
      const [legal, newState] = model.step(state, input, output);
      if (legal) {
        linearized.set(op);
        if (cache.add(linearized.key(), newState)) {
          stack.push({ op, state });
          state = newState;
          list.lift(entry);
          if (stack.length > longest.length) longest = stack.map((f) => f.op);
          entry = next[head]!;
          continue;
        }
        linearized.clear(op);
      }
      entry = next[entry]!;
    } else {
      const top = stack.pop();
      if (top === undefined) return { kind: 'illegal', longest };
      state = top.state;
      linearized.clear(top.op);
      list.unlift(top.op * 2);
      entry = next[top.op * 2]!;
    }
  }
  return { kind: 'linearizable' };
}

function describeOp<S, I, O>(model: Model<S, I, O>, op: Operation<I, O>): string {
  const ret = op.return === Number.POSITIVE_INFINITY ? 'timeout' : String(op.return);
  return `client ${op.clientId}: ${model.describeOperation(op.input, op.output)} [call ${op.call}, return ${ret}]`;
}

/**
 * Explains a failed partition: the longest linearizable prefix found, and the "frontier" after it —
 * every not-yet-linearized op whose call precedes the first pending return. None of them could be
 * linearized next (the op owning that first return is included: its deadline is what forced failure).
 */
function describeFailure<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  partition: number,
  longest: number[],
): string {
  const done = new Set(longest);
  const frontier: number[] = [];
  for (const node of sortedEvents(ops)) {
    const op = node >> 1;
    if (done.has(op)) continue;
    if ((node & 1) === 1) break;
    frontier.push(op);
  }
  const lines = [
    `partition ${partition}: not linearizable (${ops.length} ops).`,
    `Longest linearizable prefix: ${longest.length} ops` +
      (longest.length > MAX_LISTED_OPS ? ` (last ${MAX_LISTED_OPS} shown):` : ':'),
    ...longest.slice(-MAX_LISTED_OPS).map((i) => `  ${describeOp(model, ops[i]!)}`),
    `None of these ${frontier.length} ops can be linearized next` +
      (frontier.length > MAX_LISTED_OPS ? ` (first ${MAX_LISTED_OPS} shown):` : ':'),
    ...frontier.slice(0, MAX_LISTED_OPS).map((i) => `  ${describeOp(model, ops[i]!)}`),
  ];
  return lines.join('\n');
}
