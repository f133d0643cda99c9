// The network between simulated nodes: loss, duplication, delay (and long delays that reorder
// across heartbeats), partitions and one-way links. A message travels as the peer transport's
// bytes (codec.ts) and is parsed on arrival by the transport's own schema, so everything the
// engine emits must survive the real wire format and the real boundary checks.
//
// Encoding, decoding and parsing cost ~4 us a message, a fifth of a seed's CPU time. So every
// vote, snapshot chunk, TimeoutNow and append carrying a membership entry takes the wire path,
// and of the bulk traffic (appends of normal and blank entries, heartbeats and their answers) a
// seeded `WIRE_SHARE` of the messages does; the others travel as a copy built field by field
// from the schema's shape (`copyBulk`: what parsing would return for a valid message, a `Buffer`
// per entry's data as msgpackr decodes it). The receiver's `messageProblem` checks every message.

import { SeededRng } from '../raft/rng.js';
import type { Entry, Message, NodeId } from '../raft/types.js';
import { decodeBody, encodeFrame } from '../transport/codec.js';
import { FRAME_HEADER_BYTES } from '../transport/framing.js';
import { describeIssues, messageSchema } from '../transport/message-schema.js';
import { Violation, type World } from './world.js';

export interface NetProfile {
  lossRate: number;
  duplicateRate: number;
  delayMsMax: number;
  longDelayRate: number;
}

/** One process's end of the network. */
export interface Endpoint {
  readonly id: NodeId;
  readonly dead: boolean;
  /** The cluster the process belongs to (its hello's cluster), null before it knows. */
  readonly clusterId: string | null;
  post(delayMs: number, fn: () => void): void;
  /** A parsed message arrived; the endpoint admits it or not, then steps its Raft node. */
  receive(message: Message, fromCluster: string | null): void;
}

export interface NetStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Messages held back 50-450 ms (reordered across heartbeats). */
  longDelays: number;
  /** Messages that went through the peer transport's codec and schema (the others were copied). */
  wire: number;
}

/** The share of bulk messages (appends without membership entries, heartbeats, answers) encoded. */
export const WIRE_SHARE = 0.25;

type Bulk = Extract<Message, { type: 'append' | 'append-response' | 'heartbeat' | 'heartbeat-response' }>;

/** A bulk message: one that may skip the wire path (see the top of this file). */
function isBulk(m: Message): m is Bulk {
  switch (m.type) {
    case 'append':
      return m.entries.every((e) => e.type !== 'membership');
    case 'append-response':
    case 'heartbeat':
    case 'heartbeat-response':
      return true;
    default:
      return false;
  }
}

function copyEntry(e: Entry): Entry {
  if (e.type === 'normal') return { index: e.index, term: e.term, type: e.type, data: Buffer.from(e.data) };
  return { index: e.index, term: e.term, type: 'blank' };
}

/** What parsing the frame of a valid bulk message returns: the schema's fields, fresh objects. */
export function copyBulk(m: Bulk): Message {
  const { from, to, term } = m;
  switch (m.type) {
    case 'append': {
      const { prevIndex, prevTerm, commit } = m;
      return { type: m.type, from, to, term, prevIndex, prevTerm, entries: m.entries.map(copyEntry), commit };
    }
    case 'append-response': {
      const { index, reject, hintIndex, hintTerm } = m;
      return { type: m.type, from, to, term, index, reject, hintIndex, hintTerm };
    }
    case 'heartbeat':
      return { type: m.type, from, to, term, commit: m.commit, readSeq: m.readSeq };
    case 'heartbeat-response':
      return { type: m.type, from, to, term, readSeq: m.readSeq, lastIndex: m.lastIndex };
  }
}

export class SimNetwork {
  private readonly blocked = new Set<string>();
  faultsOn = true;
  readonly stats: NetStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, longDelays: 0, wire: 0 };
  /** Draws which bulk messages take the wire path; its own stream, so the faults' draws stay put. */
  private readonly wireRng: SeededRng;

  constructor(
    private readonly world: World,
    private readonly profile: NetProfile,
    /** The process that listens as `id` now, if any. */
    private readonly endpoint: (id: NodeId) => Endpoint | null,
    /** The share of bulk messages that take the wire path (1: all). */
    private readonly wireShare = WIRE_SHARE,
  ) {
    this.wireRng = new SeededRng((world.seed ^ 0x5bd1e995) >>> 0);
  }

  block(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  heal(): void {
    this.blocked.clear();
  }

  send(from: Endpoint, messages: Message[]): void {
    if (from.dead) return;
    const { rng } = this.world;
    for (const m of messages) {
      this.stats.sent++;
      // Encoded (or copied) at the sender, as the transport does: later changes to the object do not travel.
      const frame = this.pack(m);
      const to = this.endpoint(m.to);
      if (!to || to.dead || this.blocked.has(`${m.from}>${m.to}`)) {
        this.stats.lost++;
        continue;
      }
      if (this.faultsOn && rng.chance(this.profile.lossRate)) {
        this.stats.lost++;
        continue;
      }
      const copies = this.faultsOn && rng.chance(this.profile.duplicateRate) ? 2 : 1;
      if (copies > 1) this.stats.duplicated++;
      const cluster = from.clusterId;
      for (let i = 0; i < copies; i++) {
        // The connection belongs to the receiving process: after its restart, in-flight bytes are gone.
        this.world.after(this.delay(), () => {
          if (to.dead || this.endpoint(m.to) !== to) return;
          to.post(0, () => this.arrive(to, frame, cluster));
        });
      }
    }
  }

  /**
   * An HTTP exchange over TCP between two processes (a follower forwarding to the leader): the
   * request crosses the network, `handle` runs on the process listening as `to` when it arrives,
   * and the answer crosses back. Nothing listening: ECONNREFUSED. A partition (either way), or
   * the server dying before it answers: nothing comes back, the caller's `timeoutMs` rejects with
   * the outcome unknown. Loss costs a retransmission (TCP), not the message.
   */
  exchange<T>(
    from: Endpoint,
    to: NodeId,
    handle: (server: Endpoint) => Promise<T>,
    timeoutMs: number,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        timer.cancel();
        // The answer reaches the caller's process, if it still lives.
        from.post(0, fn);
      };
      const timer = this.world.timer(timeoutMs, () =>
        finish(() => reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }))),
      );
      const server = this.endpoint(to);
      if (!server || server.dead) {
        this.world.after(this.tcpDelay(), () =>
          finish(() => reject(Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' }))),
        );
        return;
      }
      if (this.blocked.has(`${from.id}>${to}`)) return;
      this.world.after(this.tcpDelay(), () => {
        if (server.dead || this.endpoint(to) !== server) {
          finish(() => reject(Object.assign(new Error('connection reset'), { code: 'ECONNRESET' })));
          return;
        }
        server.post(0, () => {
          handle(server).then(
            (answer) => {
              if (server.dead || this.blocked.has(`${to}>${from.id}`)) return;
              this.world.after(this.tcpDelay(), () => finish(() => resolve(answer)));
            },
            (err: unknown) => finish(() => reject(err)),
          );
        });
      });
    });
  }

  /** A segment's delay; a lost one is retransmitted after TCP's minimum retransmission timeout. */
  private tcpDelay(): number {
    const { rng } = this.world;
    const retransmit = this.faultsOn && rng.chance(this.profile.lossRate) ? 200 : 0;
    return retransmit + this.delay();
  }

  /** The message as it leaves the sender: a frame of the wire format, or a copy (see the top). */
  private pack(m: Message): Buffer | Message {
    if (isBulk(m) && !this.wireRng.chance(this.wireShare)) return copyBulk(m);
    this.stats.wire++;
    return encodeFrame(m);
  }

  private arrive(to: Endpoint, frame: Buffer | Message, fromCluster: string | null): void {
    if (!Buffer.isBuffer(frame)) {
      this.stats.delivered++;
      // A fresh object per arrival, as decoding gives: a duplicate is not the same object twice.
      to.receive(copyBulk(frame as Bulk), fromCluster);
      return;
    }
    const parsed = messageSchema.safeParse(decodeBody(frame.subarray(FRAME_HEADER_BYTES)));
    if (!parsed.success) {
      throw new Violation(
        `the transport's schema refuses a message the engine sent: ${describeIssues(parsed.error)}`,
      );
    }
    this.stats.delivered++;
    to.receive(parsed.data, fromCluster);
  }

  private delay(): number {
    const { rng } = this.world;
    if (this.faultsOn && rng.chance(this.profile.longDelayRate)) {
      this.stats.longDelays++;
      return 50 + rng.int(400);
    }
    return 1 + rng.int(this.profile.delayMsMax);
  }
}
