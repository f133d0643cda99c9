// Watch clients and their checker. A client watches one filter as a real client does: it
// connects to some node, resumes after every close (`restored`, `compacted`, a dead node) from the
// revision it was told (onClose's nextRevision) or, when the node died silently, from the last
// revision it saw (so it may see a revision twice, never skip one). A COMPACTED answer ends a
// session; the client starts a new one from the present.
//
// Checks, per session covering revisions [start, end):
// - every event of the reference (Oracle.events) that matches the filter in [start, end) was
//   received, exactly as the reference has it, and nothing else was;
// - within one connection, events come in revision order and never before the requested start;
// - COMPACTED only at or below the compaction point: the node's last state reset (a snapshot
//   restore), or the revision its history bound (`historyRevisions` data revisions) pushed out.

import { CompactedError } from '../kv/errors.js';
import { type KeyFilter, matches, type WatchEvent } from '../kv/types.js';
import type { WatchClose } from '../kv/watch.js';
import type { Life, StackCluster } from './cluster.js';
import type { Coverage } from './coverage.js';
import { canonical, type Oracle } from './oracle.js';
import { Violation, type World } from './world.js';

interface Session {
  start: number;
  /** Where the next connection resumes. */
  resume: number;
  /** Set once the session is over: it covers [start, end). */
  end: number | null;
  received: Map<string, string>;
  connections: number;
}

interface Connection {
  life: Life;
  from: number;
  lastRev: number;
  active: boolean;
  cancel: () => void;
  onDeath: () => void;
}

const showFilter = (f: KeyFilter): string =>
  'key' in f ? `key ${JSON.stringify(f.key)}` : `prefix ${JSON.stringify(f.prefix)}`;

export class WatchClient {
  readonly sessions: Session[] = [];
  private session: Session | null = null;
  private conn: Connection | null = null;
  private stopped = false;

  constructor(
    readonly id: number,
    private readonly world: World,
    private readonly cluster: StackCluster,
    private readonly coverage: Coverage,
    readonly oracle: Oracle,
    readonly filter: KeyFilter,
    private readonly historyRevisions: number,
  ) {}

  start(): void {
    this.world.after(this.world.rng.int(30), () => this.connect());
  }

  private fail(message: string): void {
    this.world.fail(new Violation(`watch ${this.id} (${showFilter(this.filter)}): ${message}`));
  }

  private reconnectLater(): void {
    if (this.stopped) return;
    this.world.after(5 + this.world.rng.int(60), () => this.connect());
  }

  private connect(): void {
    if (this.stopped || this.conn) return;
    const up = this.cluster.up(this.oracle);
    const life = up.length > 0 ? this.world.rng.pick(up).up : null;
    const kv = life?.kv;
    if (!life || !kv) {
      this.reconnectLater();
      return;
    }
    if (this.session) this.coverage.watchReconnects++;
    const session: Session = this.session ?? {
      start: kv.revision + 1,
      resume: kv.revision + 1,
      end: null,
      received: new Map(),
      connections: 0,
    };
    this.session = session;
    session.connections++;
    const from = session.resume;
    const conn: Connection = {
      life,
      from,
      lastRev: 0,
      active: true,
      cancel: () => {},
      onDeath: () => {
        // The stream broke without a close: resume where it was, maybe seeing a revision again.
        if (!conn.active) return;
        conn.active = false;
        this.conn = null;
        session.resume = conn.lastRev > 0 ? conn.lastRev : conn.from;
        this.reconnectLater();
      },
    };
    try {
      conn.cancel = kv.watch(this.filter, from, (e) => this.onEvent(conn, session, e), {
        onClose: (c) => this.onClose(conn, session, c),
      });
    } catch (err) {
      if (err instanceof CompactedError) this.compacted(life, from);
      else this.fail(`watch from ${from} threw ${String(err)}`);
      return;
    }
    this.conn = conn;
    life.onDeath.add(conn.onDeath);
  }

  /** The node has no history for `from`: legitimate only at or below its compaction point. */
  private compacted(life: Life, from: number): void {
    this.coverage.watchCompacted++;
    const kv = life.kv;
    if (kv) {
      const dropped = this.oracle.dataRevisionsBetween(from, kv.revision) > this.historyRevisions;
      if (from > life.resetRevision && !dropped) {
        this.fail(
          `${life.id} answered COMPACTED for revision ${from}, above its compaction point ` +
            `(last restore at ${life.resetRevision}, history of ${this.historyRevisions} revisions, at revision ${kv.revision})`,
        );
      }
    }
    this.endSession(from);
    this.reconnectLater();
  }

  private endSession(end: number): void {
    const s = this.session;
    if (!s) return;
    s.end = end;
    this.sessions.push(s);
    this.session = null;
  }

  private onEvent(conn: Connection, session: Session, e: WatchEvent): void {
    if (!conn.active) return;
    if (e.revision < conn.from) this.fail(`event at ${e.revision} on a stream from ${conn.from}`);
    if (e.revision < conn.lastRev) this.fail(`event at ${e.revision} after one at ${conn.lastRev}`);
    if (!matches(this.filter, e.kv.key))
      this.fail(`event for ${JSON.stringify(e.kv.key)} outside the filter`);
    conn.lastRev = e.revision;
    const id = `${e.revision}|${e.kv.key}`;
    const text = canonical(e);
    const prior = session.received.get(id);
    if (prior !== undefined && prior !== text)
      this.fail(`two different events for ${id}: ${prior} and ${text}`);
    session.received.set(id, text);
  }

  private onClose(conn: Connection, session: Session, c: WatchClose): void {
    if (!conn.active) return;
    conn.active = false;
    conn.life.onDeath.delete(conn.onDeath);
    this.conn = null;
    if (c.nextRevision < conn.from)
      this.fail(`closed (${c.reason}) with nextRevision ${c.nextRevision} < ${conn.from}`);
    if (c.reason === 'listener-error') this.fail(`closed with listener-error: ${String(c.error)}`);
    if (c.reason === 'cancelled') {
      this.endSession(c.nextRevision);
      return;
    }
    if (c.reason === 'compacted') {
      this.compacted(conn.life, c.nextRevision);
      return;
    }
    session.resume = c.nextRevision;
    this.reconnectLater();
  }

  /** End of run: close the stream; the session then covers up to where it was. */
  stop(): void {
    this.stopped = true;
    const conn = this.conn;
    if (conn) conn.cancel();
    else if (this.session) this.endSession(this.session.resume);
  }

  /** Compare every session with the reference's events. */
  check(): void {
    if (this.session) this.endSession(this.session.resume);
    for (const s of this.sessions) {
      const end = s.end ?? s.start;
      const expected = new Map<string, string>();
      for (const e of this.oracle.events) {
        if (e.revision >= s.start && e.revision < end && matches(this.filter, e.kv.key))
          expected.set(`${e.revision}|${e.kv.key}`, canonical(e));
      }
      for (const [id, text] of expected) {
        const got = s.received.get(id);
        if (got === undefined) {
          this.fail(
            `missed the event ${id} of its session [${s.start}, ${end}) over ${s.connections} connections`,
          );
          return;
        }
        if (got !== text) {
          this.fail(`event ${id} is ${got}, the log says ${text}`);
          return;
        }
      }
      for (const [id, text] of s.received) {
        if (expected.has(id)) continue;
        const rev = Number(id.slice(0, id.indexOf('|')));
        const canon = this.oracle.events.find((e) => `${e.revision}|${e.kv.key}` === id);
        if (rev < end || !canon || canonical(canon) !== text) {
          this.fail(`received ${id} = ${text}, which the log does not hold in [${s.start}, ${end})`);
          return;
        }
      }
    }
  }
}
