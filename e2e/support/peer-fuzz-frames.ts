// The peer-frame fuzzer's attacks: what a dialer holding a genuine node certificate of the cluster
// (a stolen one) writes on a member's peer port. Each attack is the bytes of one connection,
// drawn from a seeded generator, so a seed replays the same attacks against the same views.
//
// What is drawn: random bytes with and without a hello; empty, truncated and oversized length
// prefixes; random MessagePack values; hellos with a wrong cluster, version or id; messages
// built with the node's own encoder (node/transport/codec.ts) and then mutated: a field of the
// wrong type, out of the safe integer range, missing, or a huge string or array; well-typed
// messages a correct member never sends (entries with gaps, terms above the message's, a chunk
// longer than it says, a leader's message in a term whose leader is another node, an
// acknowledgement beyond the leader's log); and messages a member may send that only disturb
// (vote requests in later terms with stale logs, rejections, stale terms, another recipient).
//
// What is not drawn, because no check can tell it from a correct member's message (Raft trusts
// its members; the README's "The peer port" says to keep node keys as secret as the data): a
// well-formed leader's message in a term above the receiver's, a message in the current term
// under the current leader's id, an acknowledgement or granted vote the member never gave, and
// a well-formed message in a term far ahead. That last one is a known hole: a transfer vote
// (which passes the leader lease) or any response at Number.MAX_SAFE_INTEGER moves its receiver
// to the last term a frame can carry, and the cluster never elects again (README "The peer
// port"); any bound on a term's jump lets one frame isolate a member instead.

import type { SeededRng } from '../../node/raft/rng.js';
import type { Entry, Membership, Message } from '../../node/raft/types.js';
import { encodeFrame } from '../../node/transport/codec.js';

/** What the fuzzer knows of the member it attacks (from its /_internal/status). */
export interface FuzzView {
  target: string;
  members: string[];
  clusterId: string;
  term: number;
  /** The leader of `term` as the target knows it, or null while it knows none. */
  leader: string | null;
  lastIndex: number;
  lastTerm: number;
}

export type AttackKind =
  | 'random-bytes'
  | 'random-frame'
  | 'bad-length'
  | 'truncated'
  | 'random-msgpack'
  | 'bad-hello'
  | 'no-hello'
  | 'wrong-type'
  | 'huge-array'
  | 'malformed'
  | 'impossible'
  | 'wrong-from'
  | 'disturbing';

/**
 * Kinds the member must answer by closing the connection: every one carries a frame no correct
 * member sends (truncated frames wait for the idle timeout; disturbing ones are legal; random
 * bytes when they happen to announce a frame not yet complete).
 */
const MUST_CLOSE: ReadonlySet<AttackKind> = new Set([
  'random-frame',
  'bad-length',
  'random-msgpack',
  'bad-hello',
  'no-hello',
  'wrong-type',
  'huge-array',
  'malformed',
  'impossible',
  'wrong-from',
]);

export interface Attack {
  kind: AttackKind;
  /** A short description for the log of a failing seed. */
  what: string;
  /** The bytes to write once the connection is up, in order. */
  chunks: Buffer[];
  /** Whether the member must close the connection (given the view was still current). */
  mustClose: boolean;
}

const WEIGHTS: [AttackKind, number][] = [
  ['random-bytes', 1],
  ['random-frame', 1],
  ['bad-length', 1],
  ['truncated', 1],
  ['random-msgpack', 1],
  ['bad-hello', 1],
  ['no-hello', 1],
  ['wrong-type', 3],
  ['huge-array', 1],
  ['malformed', 3],
  ['impossible', 2],
  ['wrong-from', 1],
  ['disturbing', 2],
];

const header = (length: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(length >>> 0, 0);
  return b;
};

function randomBytes(rng: SeededRng, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = rng.int(256);
  return out;
}

const kindOf = (v: unknown) =>
  v instanceof Uint8Array ? 'bytes' : Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v;

/**
 * A value the schema refuses in place of `original`: one of another kind, any of the drawn
 * numbers (none is a safe non-negative integer), or a string longer than any field allows.
 */
function wrongValueFor(rng: SeededRng, original: unknown): unknown {
  for (;;) {
    const value = wrongValue(rng);
    const kind = kindOf(value);
    if (kind !== kindOf(original) || kind === 'number') return value;
    if (kind === 'string' && (value as string).length > 4096) return value;
  }
}

/** A value of a wrong kind for any field of a Raft message. */
function wrongValue(rng: SeededRng): unknown {
  return rng.pick<() => unknown>([
    () => -1 - rng.int(1000),
    () => 1.5 + rng.int(100),
    () => 2 ** 60,
    () => Number.MAX_SAFE_INTEGER + 2,
    () => 'x'.repeat(rng.int(3) === 0 ? 100_000 : 8),
    () => null,
    () => true,
    () => [],
    () => ({ nested: { deeper: [1, 2, 3] } }),
    () => randomBytes(rng, rng.int(64)),
    () => Number.NaN,
  ])();
}

/** A random MessagePack-able value (objects with random keys, arrays, scalars, bytes). */
function randomValue(rng: SeededRng, depth = 0): unknown {
  const k = rng.int(depth > 2 ? 4 : 7);
  if (k === 0) return rng.int(2 ** 31) - 2 ** 30;
  if (k === 1) return rng.pick(['hello', 'append', 'vote', 'heartbeat', 'snapshot', '']);
  if (k === 2) return rng.pick([null, true, false, 1.25, 2 ** 40]);
  if (k === 3) return randomBytes(rng, rng.int(32));
  if (k === 4) return Array.from({ length: rng.int(5) }, () => randomValue(rng, depth + 1));
  const keys = ['type', 'from', 'to', 'term', 'entries', 'index', 'commit', 'meta', 'data', 'cluster'];
  return Object.fromEntries(
    Array.from({ length: 1 + rng.int(5) }, () => [rng.pick(keys), randomValue(rng, depth + 1)]),
  );
}

const membership = (view: FuzzView): Membership => ({
  configs: [view.members],
  learners: [],
  retired: [],
  nodes: {},
  cluster: { id: view.clusterId, restoredFrom: null },
});

const put = (key: string) => new TextEncoder().encode(`{"type":"put","key":"${key}","value":"evil"}`);

/** One message of `type` that passes the schema and the structural checks. */
function wellFormed(type: Message['type'], from: string, to: string, term: number, view: FuzzView): Message {
  const base = { from, to, term };
  const prevIndex = view.lastIndex;
  const prevTerm = Math.min(view.lastTerm, term);
  switch (type) {
    case 'vote':
      return { ...base, type, pre: false, lastLogIndex: 0, lastLogTerm: 0, transfer: false };
    case 'vote-response':
      return { ...base, type, pre: false, granted: false };
    case 'append': {
      const entries: Entry[] = [{ type: 'normal', index: prevIndex + 1, term, data: put('fuzz/planted') }];
      return {
        ...base,
        type,
        prevIndex,
        prevTerm: prevIndex === 0 ? 0 : prevTerm,
        entries,
        commit: prevIndex,
      };
    }
    case 'append-response':
      return { ...base, type, index: view.lastIndex, reject: true, hintIndex: 0, hintTerm: 0 };
    case 'heartbeat':
      return { ...base, type, commit: view.lastIndex, readSeq: 1 };
    case 'heartbeat-response':
      return { ...base, type, readSeq: 1, lastIndex: 0 };
    case 'snapshot': {
      const data = new Uint8Array(16);
      const meta = {
        index: view.lastIndex + 5,
        term,
        membership: membership(view),
        sizeBytes: 16,
        id: 'fuzz',
      };
      return { ...base, type, meta, offset: 0, data, length: 16, done: true };
    }
    case 'snapshot-response':
      return { ...base, type, snapshotIndex: view.lastIndex, nextOffset: 0, reject: true };
    case 'timeout-now':
      return { ...base, type };
  }
}

const TYPES: Message['type'][] = [
  'vote',
  'vote-response',
  'append',
  'append-response',
  'heartbeat',
  'heartbeat-response',
  'snapshot',
  'snapshot-response',
  'timeout-now',
];

/** Another member than the target and, when `notLeader`, than the leader the target knows. */
function otherMember(rng: SeededRng, view: FuzzView, notLeader: boolean): string | null {
  const ids = view.members.filter((id) => id !== view.target && !(notLeader && id === view.leader));
  return ids.length === 0 ? null : rng.pick(ids);
}

/** A field of `m` (top level, or inside its first entry or its meta) set to a wrong value or removed. */
function mutateField(rng: SeededRng, m: Message): [unknown, string] {
  const copy = structuredClone(m) as unknown as Record<string, unknown>;
  let holder = copy;
  const entries = copy.entries as Record<string, unknown>[] | undefined;
  if (entries?.[0] && rng.chance(0.4)) holder = entries[0];
  else if (copy.meta && rng.chance(0.4)) holder = copy.meta as Record<string, unknown>;
  const field = rng.pick(Object.keys(holder).filter((k) => k !== 'from' && k !== 'to'));
  if (rng.chance(0.15)) {
    delete holder[field];
    return [copy, `${m.type} without ${field}`];
  }
  const value = wrongValueFor(rng, holder[field]);
  holder[field] = value;
  const shown = typeof value === 'string' ? `a string of ${value.length}` : String(value).slice(0, 30);
  return [copy, `${m.type}.${field} = ${shown}`];
}

/** A well-typed message that fails a structural check (node/raft/message-checks.ts). */
function malformed(rng: SeededRng, from: string, view: FuzzView): [Message, string] {
  const to = view.target;
  // Any term, later ones included: the structural checks come before the engine's term rules.
  const term = rng.pick([0, 1, Math.max(1, view.term - 1), view.term, view.term + 1, view.term + 1000]);
  const t = Math.max(1, term);
  const at = (e: number, k: number): Entry => ({ type: 'blank', index: e, term: k });
  const p = view.lastIndex;
  const cases: (() => [Message, string])[] = [
    () => [{ ...wellFormed('append', from, to, t, view), term: 0 } as Message, 'append in term 0'],
    () => {
      const entries = [at(p + 1, t), at(p + 3 + rng.int(1000), t)];
      return [{ ...wellFormed('append', from, to, t, view), entries } as Message, 'append with a gap'];
    },
    () => {
      const entries = [at(p + 1, t + 1 + rng.int(5))];
      return [
        { ...wellFormed('append', from, to, t, view), entries } as Message,
        'entry term above the term',
      ];
    },
    () => {
      const entries = [at(p + 1, t), at(p + 2, Math.max(1, t - 1))];
      if (t === 1) entries[1] = at(p + 2, 0);
      return [{ ...wellFormed('append', from, to, t, view), entries } as Message, 'entry terms decreasing'];
    },
    () => [
      { ...wellFormed('append', from, to, t, view), prevIndex: p + 1, prevTerm: t + 3 } as Message,
      'prevTerm above the term',
    ],
    () => {
      const s = wellFormed('snapshot', from, to, t, view) as Extract<Message, { type: 'snapshot' }>;
      return [{ ...s, length: s.length + 1 + rng.int(1000) }, 'chunk longer than it carries'];
    },
    () => {
      const s = wellFormed('snapshot', from, to, t, view) as Extract<Message, { type: 'snapshot' }>;
      return [{ ...s, offset: 1 + rng.int(1 << 20) }, 'chunk ending beyond the snapshot'];
    },
    () => [
      { ...wellFormed('append-response', from, to, t, view), hintIndex: p + 10 } as Message,
      'hint beyond the rejected index',
    ],
    () => [
      { ...wellFormed('vote', from, to, t, view), lastLogIndex: 3, lastLogTerm: t + 1 } as Message,
      'vote with a last term above the term',
    ],
  ];
  return rng.pick(cases)();
}

/** A message the engine refuses in its state; null when the view leaves none to draw. */
function impossible(rng: SeededRng, view: FuzzView): [string, Message, string] | null {
  if (view.leader === null) return null;
  const from = otherMember(rng, view, true);
  if (from === null) return null;
  if (view.leader === view.target && rng.chance(0.3)) {
    const ack = wellFormed('append-response', from, view.target, view.term, view);
    const index = view.lastIndex + 1 + rng.int(2 ** 20);
    return [from, { ...ack, index, reject: false } as Message, 'ack beyond the log'];
  }
  // A leader's message in a term whose leader is another node.
  const type = rng.pick<Message['type']>(['heartbeat', 'append', 'snapshot', 'timeout-now']);
  return [from, wellFormed(type, from, view.target, view.term, view), `${type} from a second leader`];
}

/** A legal message that only disturbs: a stale term, a rejection, a vote with a stale log, another recipient. */
function disturbing(rng: SeededRng, from: string, view: FuzzView): [Message, string] {
  const to = view.target;
  switch (rng.int(4)) {
    case 0: {
      // The next terms a real candidate would ask for (see the header on terms far ahead).
      const term = view.term + 1 + rng.int(3);
      const pre = rng.chance(0.5);
      // A transfer vote passes the receiver's leader lease: it is how a leader hands over.
      const transfer = rng.chance(0.3);
      const vote = { ...wellFormed('vote', from, to, term, view), pre, transfer } as Message;
      const what = `${transfer ? 'transfer ' : ''}${pre ? 'pre-vote' : 'vote'}`;
      return [vote, `${what} in term ${term} with an empty log`];
    }
    case 1:
      return [wellFormed('append-response', from, to, view.term, view), 'a rejection'];
    case 2: {
      const type = rng.pick(TYPES);
      return [wellFormed(type, from, to, Math.max(1, view.term - 1 - rng.int(3)), view), `stale ${type}`];
    }
    default: {
      const other = rng.pick(['t9', ...view.members.filter((id) => id !== to && id !== from)]);
      return [wellFormed(rng.pick(TYPES), from, other, view.term, view), `a message for ${other}`];
    }
  }
}

export function hello(from: string, cluster: string | null, version = 1): unknown {
  return { type: 'hello', from, version, cluster };
}

/** The member's frame limit (node/transport/peer-transport.ts's default). */
const MAX_FRAME_BYTES = 64 << 20;

/** Whether random bytes complete a frame, or announce one the member refuses by its header. */
function completesOrRefuses(bytes: Buffer): boolean {
  if (bytes.length < 4) return false;
  const length = bytes.readUInt32BE(0);
  return length === 0 || length > MAX_FRAME_BYTES || 4 + length <= bytes.length;
}

/** Draws one attack on `view.target`. */
export function drawAttack(rng: SeededRng, view: FuzzView): Attack {
  const drawn = draw(rng, view);
  const mustClose =
    drawn.kind === 'random-bytes'
      ? completesOrRefuses(drawn.chunks[0] as Buffer)
      : MUST_CLOSE.has(drawn.kind);
  return { ...drawn, mustClose };
}

function draw(rng: SeededRng, view: FuzzView): Omit<Attack, 'mustClose'> {
  const kind = rng.pick(WEIGHTS.flatMap(([k, w]) => Array<AttackKind>(w).fill(k)));
  const from = otherMember(rng, view, false) ?? 't9';
  const hi = encodeFrame(hello(from, view.clusterId));
  const frame = (m: unknown) => encodeFrame(m);
  const anyMessage = () => wellFormed(rng.pick(TYPES), from, view.target, view.term, view);
  switch (kind) {
    case 'random-bytes':
      return { kind, what: 'random bytes', chunks: [randomBytes(rng, 1 + rng.int(4096))] };
    case 'random-frame': {
      const body = randomBytes(rng, 1 + rng.int(2048));
      return { kind, what: 'a frame of random bytes', chunks: [hi, header(body.length), body] };
    }
    case 'bad-length': {
      const length = rng.pick([0, 64 * 2 ** 20 + 1, 0xffff_ffff]);
      return { kind, what: `length prefix ${length}`, chunks: [hi, header(length), randomBytes(rng, 64)] };
    }
    case 'truncated': {
      const body = frame(anyMessage());
      const cut = 1 + rng.int(body.length - 1);
      return { kind, what: `a frame cut at ${cut} of ${body.length}`, chunks: [hi, body.subarray(0, cut)] };
    }
    case 'random-msgpack':
      return { kind, what: 'a random MessagePack value', chunks: [hi, frame(randomValue(rng))] };
    case 'bad-hello': {
      const [h, what] = rng.pick<[unknown, string]>([
        [hello(from, 'another-cluster'), 'hello of another cluster'],
        [hello(from, null), 'hello without a cluster'],
        [hello(from, view.clusterId, 2), 'hello of version 2'],
        [hello(view.target, view.clusterId), 'hello under the target’s own id'],
        [{ type: 'hello', from }, 'hello without version'],
      ]);
      return { kind, what, chunks: [frame(h), frame(anyMessage())] };
    }
    case 'no-hello':
      return { kind, what: 'a message before the hello', chunks: [frame(anyMessage()), hi] };
    case 'wrong-type': {
      const [m, what] = mutateField(rng, anyMessage());
      return { kind, what, chunks: [hi, frame(m)] };
    }
    case 'huge-array': {
      const n = 10_000 + rng.int(40_000);
      const m = anyMessage();
      const junk = rng.chance(0.5) ? Array.from({ length: n }, (_, i) => i) : Array(n).fill('t1');
      const field = rng.pick(m.type === 'append' ? ['entries', 'term'] : ['term', 'from', 'type']);
      return {
        kind,
        what: `${m.type}.${field} = an array of ${n}`,
        chunks: [hi, frame({ ...m, [field]: junk })],
      };
    }
    case 'malformed': {
      const [m, what] = malformed(rng, from, view);
      return { kind, what, chunks: [hi, frame(m)] };
    }
    case 'impossible': {
      const drawn = impossible(rng, view);
      if (drawn === null) return draw(rng, view);
      const [claimed, m, what] = drawn;
      return { kind, what, chunks: [encodeFrame(hello(claimed, view.clusterId)), frame(m)] };
    }
    case 'wrong-from': {
      const m = {
        ...anyMessage(),
        from: rng.pick(['t9', view.target, ...view.members.filter((id) => id !== from)]),
      };
      return { kind, what: `a message from ${m.from} on ${from}'s connection`, chunks: [hi, frame(m)] };
    }
    case 'disturbing': {
      const [m, what] = disturbing(rng, from, view);
      return { kind, what, chunks: [hi, frame(m)] };
    }
  }
}
