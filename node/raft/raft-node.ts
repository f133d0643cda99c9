// The host loop around RaftCore, shaped like openraft's `Raft` handle: async calls for clients and
// the admin API, `step` for the transport, and one Ready at a time through the injected storage.
//
// Invariants:
// - Readys are processed strictly one at a time: `messages` leave at once, `messagesAfterPersist`
//   after `storage.save` resolved; committed entries (durable since an earlier Ready) apply first.
// - Steps, ticks and proposals that arrive while a save is in flight go into the core at once
//   (the core allows it); the loop picks their output up in its next round.
// - A snapshot this node makes is durable in storage before the core compacts behind it, so every
//   snapshot the core may send is one the storage can serve.
// - Every refusal is a RaftError. A storage failure or a safety violation stops the node for good:
//   pending calls and every later call reject with that error. A peer's message the core refuses
//   as impossible (ProtocolViolation) is not one: it changed nothing, and `step` rethrows it.

import { randomUUID } from 'node:crypto';
import { ProtocolViolation, RaftError } from './errors.js';
import { entrySize } from './log.js';
import * as M from './membership.js';
import { EMPTY_STATE, RaftCore } from './raft.js';
import type {
  ClientWriteResponse,
  Clock,
  ConfWaiter,
  LeaderListener,
  MembershipChange,
  MetricsListener,
  RaftNodeOptions,
  RaftStorage,
  StateMachine,
  Timer,
  TransferWaiter,
  Transport,
  Waiter,
  WriteWaiter,
} from './raft-node-api.js';
import type {
  ClusterIdentity,
  Entry,
  Membership,
  Message,
  NodeId,
  NodeInfo,
  RaftMetrics,
  SnapshotMeta,
} from './types.js';

export * from './raft-node-api.js';

const APPLY_SLICE_MS = 10; // of applying between two turns of the event loop, at most: see `loop`
const toError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

export class RaftNode<R> {
  readonly id: NodeId;
  private readonly core: RaftCore;
  private readonly storage: RaftStorage;
  private readonly sm: StateMachine<R>;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly onApplied: RaftNodeOptions<R>['onApplied'];
  private readonly tickMs: number;
  private readonly now: () => number;
  private ticker: Timer | null = null;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  /** Why the node stopped (SHUTTING_DOWN or a fatal error); null while it runs. */
  private stopped: Error | null = null;
  private readSeq = 0;
  private snapshotting: Promise<SnapshotMeta | null> | null = null;
  private readonly writes = new Map<number, WriteWaiter<R>>();
  private confs: ConfWaiter[] = [];
  private readonly reads = new Map<string, Waiter<number>>();
  /** Reads a quorum confirmed, waiting for the state machine to reach their index. */
  private confirmed: { index: number; waiter: Waiter<number> }[] = [];
  private readonly transfers = new Set<TransferWaiter>();
  /** bootstrapFromSnapshot calls waiting for their snapshot to be installed. */
  private restores: (Waiter<void> & { index: number })[] = [];
  private readonly leaderListeners = new Set<LeaderListener>();
  private readonly metricsListeners = new Set<MetricsListener>();

  static start<R>(opts: RaftNodeOptions<R>): RaftNode<R> {
    const node = new RaftNode(opts);
    node.ticker = opts.clock.setInterval(() => node.tick(), opts.tickMs);
    node.kick(); // a recovered node may have committed entries left to apply
    return node;
  }

  private constructor(opts: RaftNodeOptions<R>) {
    this.id = opts.config.id;
    this.storage = opts.storage;
    this.sm = opts.stateMachine;
    this.transport = opts.transport;
    this.clock = opts.clock;
    this.onApplied = opts.onApplied;
    this.tickMs = opts.tickMs;
    // With a simulated clock the loop's yield after a long apply depends on the seed, not the machine.
    this.now = opts.clock.nowMs ? opts.clock.nowMs.bind(opts.clock) : () => performance.now();
    const state = opts.state ?? EMPTY_STATE;
    const snap = state.snapshot;
    if (snap && this.sm.applied < snap.index) {
      const data = this.storage.readSnapshotChunk(snap, 0, snap.sizeBytes);
      if (!data) throw new Error(`snapshot ${snap.id} is missing from storage`);
      this.sm.restore(snap, data);
    }
    this.core = new RaftCore(opts.config, { ...state, applied: this.sm.applied });
  }

  // -- API ---------------------------------------------------------------------------------------

  /** Bootstrap a new cluster on this node; resolves once the initial membership is applied here. */
  initialize(voters: readonly NodeId[], opts: M.InitialMembershipOptions = {}): Promise<void> {
    return this.call(() => {
      this.core.initialize(voters, opts);
      this.kick();
      return this.waitConf(1, 1, false).then(() => undefined);
    });
  }

  /**
   * Bootstrap a one-voter cluster whose state is `data` (see RaftCore.bootstrapFromSnapshot);
   * resolves once the snapshot is durable and applied here. This node then elects itself.
   */
  bootstrapFromSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void> {
    return this.call(() => {
      this.core.bootstrapFromSnapshot(meta, data);
      const done = new Promise<void>((resolve, reject) =>
        this.restores.push({ index: meta.index, resolve, reject }),
      );
      this.kick();
      return done;
    });
  }

  /**
   * Quorum-loss recovery (see RaftCore.forceNewCluster): this node becomes the only voter of the
   * new cluster `cluster`, keeping its whole log. Resolves once the new membership is applied here;
   * the node then elects itself. Pending writes of the old log resolve as their entries apply.
   */
  forceNewCluster(cluster: ClusterIdentity, self: NodeInfo): Promise<MembershipChange> {
    return this.call(() => {
      const index = this.core.forceNewCluster(cluster, self);
      const term = this.core.log.term(index) ?? this.core.term;
      this.kick();
      return this.waitConf(index, term, false);
    });
  }

  /** Resolves when the membership entry that adds the learner is committed (applied here). */
  addLearner(id: NodeId, info?: NodeInfo): Promise<MembershipChange> {
    return this.call(() => this.proposeConf((m) => M.withLearner(m, id, info), false));
  }

  /** Resolves when the membership without the learner is committed; it is retired for good. */
  removeLearner(id: NodeId): Promise<MembershipChange> {
    return this.call(() => this.proposeConf((m) => M.withoutLearner(m, id), false));
  }

  /**
   * Enter the joint config towards `voters`; resolves when the final (non-joint) config the core
   * proposes after it is committed. Removed voters stay learners with `retain`.
   */
  changeMembership(voters: readonly NodeId[], opts: { retain?: boolean } = {}): Promise<MembershipChange> {
    const retain = opts.retain ?? false;
    return this.call(() =>
      this.proposeConf((m) => (M.sameVoters(m, voters) ? m : M.enterJoint(m, voters, retain)), true),
    );
  }

  /** Resolves when the entry is applied here; PROPOSAL_DROPPED if another entry took its index. */
  clientWrite(data: Uint8Array): Promise<ClientWriteResponse<R>> {
    return this.call(() => {
      const index = this.core.propose(data);
      // Only one entry per (index, term): an older waiter at this index lost its entry.
      this.writes.get(index)?.reject(dropped(index));
      const done = new Promise<ClientWriteResponse<R>>((resolve, reject) => {
        this.writes.set(index, { term: this.core.term, resolve, reject });
      });
      this.kick();
      return done;
    });
  }

  /** ReadIndex: resolves with the read index once this node applied it; READ_ABORTED if dropped. */
  ensureLinearizable(): Promise<number> {
    return this.call(() => {
      const ctx = `${this.id}:${++this.readSeq}`;
      this.core.readIndex(ctx);
      const done = new Promise<number>((resolve, reject) => this.reads.set(ctx, { resolve, reject }));
      this.kick();
      return done;
    });
  }

  /** Snapshot the state machine, store it durably, then compact the log behind it. */
  triggerSnapshot(): Promise<SnapshotMeta | null> {
    return this.call(() => {
      this.snapshotting ??= this.makeSnapshot().finally(() => {
        this.snapshotting = null;
      });
      return this.snapshotting;
    });
  }

  /** Resolves when this node sees `target` lead; TRANSFER_TIMEOUT after `timeoutMs`. */
  transferLeader(target: NodeId, timeoutMs: number): Promise<void> {
    return this.call(() => {
      this.core.transferLeader(target);
      this.kick();
      if (target === this.id) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const expire = () => {
          this.transfers.delete(waiter);
          reject(new RaftError('TRANSFER_TIMEOUT', `${target} did not take over within ${timeoutMs} ms`));
        };
        const waiter: TransferWaiter = {
          target,
          resolve,
          reject,
          timer: this.clock.setTimeout(expire, timeoutMs),
        };
        this.transfers.add(waiter);
      });
    });
  }

  metrics(): RaftMetrics {
    return this.core.metrics();
  }

  /** Bytes of log held after the snapshot (a sum over the entries: ask now and then, not per Ready). */
  logBytes(): number {
    let bytes = 0;
    for (const e of this.core.log.entries) bytes += entrySize(e);
    return bytes;
  }

  /**
   * Why the node stopped for good, null while it runs: SHUTTING_DOWN, or the fatal error (a
   * storage failure, a safety violation, a state machine that threw) that stopped it. A stopped
   * node keeps its last metrics but neither replicates nor serves anything again.
   */
  stopReason(): Error | null {
    return this.stopped;
  }

  /** Called after every Ready round in which the known leader or the role changed. Must not throw. */
  onLeaderChange(fn: LeaderListener): () => void {
    this.leaderListeners.add(fn);
    return () => this.leaderListeners.delete(fn);
  }

  /** Called with fresh metrics after every Ready round. Must not throw. */
  watchMetrics(fn: MetricsListener): () => void {
    this.metricsListeners.add(fn);
    return () => this.metricsListeners.delete(fn);
  }

  /**
   * A message from the transport. Ignored once stopped. Throws the core's ProtocolViolation for a
   * message no correct peer could send: nothing changed, the node runs on, and the caller should
   * stop trusting the connection it came from.
   */
  step(message: Message): void {
    this.drive(() => this.core.step(message));
  }

  /** Stop ticking, reject everything pending with SHUTTING_DOWN, wait for the in-flight round. */
  async shutdown(): Promise<void> {
    this.fail(new RaftError('SHUTTING_DOWN', `node ${this.id} is shutting down`));
    await this.loopDone;
    await this.snapshotting?.catch(() => undefined);
  }

  // -- Host loop ---------------------------------------------------------------------------------

  private tick(): void {
    this.drive(() => this.core.tick());
  }

  private call<T>(fn: () => Promise<T>): Promise<T> {
    if (this.stopped) return Promise.reject(this.stopped);
    try {
      return fn();
    } catch (err) {
      return Promise.reject(toError(err));
    }
  }

  /**
   * Feed the core. A ProtocolViolation is refused input (the core changed nothing) and goes back
   * to the caller; any other throw is a safety violation or a bug, so the node stops.
   */
  private drive(fn: () => void): void {
    if (this.stopped) return;
    try {
      fn();
    } catch (err) {
      if (err instanceof ProtocolViolation) throw err;
      this.fail(toError(err));
      throw err;
    }
    this.kick();
  }

  private kick(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    // Start on a microtask: calls made in the same turn share one Ready, and nothing re-enters.
    this.loopDone = Promise.resolve().then(() => this.loop());
  }

  private async loop(): Promise<void> {
    // Rounds needing no save follow each other on microtasks: a backlog (a replay at start, a node
    // catching up) would keep every tick, peer message and client request out. Once the rounds
    // since the last turn applied for APPLY_SLICE_MS (or a tick if shorter), let timers and I/O in.
    let busyMs = 0;
    try {
      while (!this.stopped && this.core.hasReady()) {
        busyMs += await this.round();
        if (busyMs >= Math.min(this.tickMs, APPLY_SLICE_MS))
          busyMs = await new Promise<number>((resolve) => setImmediate(() => resolve(0)));
      }
    } catch (err) {
      this.fail(toError(err));
    } finally {
      this.running = false;
    }
  }

  /** One Ready; returns how long it spent applying (installing or applying entries), in ms. */
  private async round(): Promise<number> {
    const rd = this.core.ready();
    this.send(rd.messages);
    // Committed entries are durable here (the core hands out none past `stable`): their writers are
    // answered while this Ready's entries are written, not after that fsync too.
    const applyStarted = this.now();
    for (const e of rd.committedEntries) this.apply(e);
    let applyMs = this.now() - applyStarted;
    if (rd.committedEntries.length > 0) this.onApplied?.(rd.committedEntries.length, applyMs);
    // A Ready that only moves the commit index is not written (see Ready.mustSync).
    if (rd.mustSync) {
      await this.storage.save(rd);
      if (this.stopped) return 0;
    }
    if (rd.snapshot) {
      const started = this.now();
      await this.install(rd.snapshot);
      if (this.stopped) return 0;
      applyMs += this.now() - started;
    }
    this.send(rd.messagesAfterPersist);
    for (const rs of rd.readStates) {
      const waiter = this.reads.get(rs.ctx);
      this.reads.delete(rs.ctx);
      if (waiter) this.confirmed.push({ index: rs.index, waiter });
    }
    for (const ctx of rd.droppedReads) {
      const aborted = new RaftError('READ_ABORTED', `read ${ctx} lost its leader`, this.core.leader);
      this.reads.get(ctx)?.reject(aborted);
      this.reads.delete(ctx);
    }
    this.core.advance(rd);
    this.serveReads();
    if (rd.softState) this.leaderChanged(rd.softState.leader);
    if (this.metricsListeners.size > 0) {
      const m = this.core.metrics();
      for (const fn of this.metricsListeners) fn(m);
    }
    return applyMs;
  }

  private send(messages: Message[]): void {
    // The core emits chunks without bytes; a transfer keeps its snapshot (storage keeps replaced
    // ones open), and one we no longer hold starts over with the current snapshot.
    const unavailable: { to: NodeId; id: string }[] = [];
    const out = messages.flatMap((m): Message[] => {
      if (m.type !== 'snapshot') return [m];
      const data = this.storage.readSnapshotChunk(m.meta, m.offset, m.length);
      if (!data) unavailable.push({ to: m.to, id: m.meta.id });
      return data ? [{ ...m, data }] : [];
    });
    if (out.length > 0) this.transport.send(out);
    for (const u of unavailable) this.core.snapshotUnavailable(u.to, u.id);
  }

  private apply(e: Entry): void {
    const response = this.sm.apply(e);
    const w = this.writes.get(e.index);
    if (w) {
      this.writes.delete(e.index);
      if (w.term === e.term) w.resolve({ index: e.index, response });
      else w.reject(dropped(e.index));
    }
    if (this.confs.length === 0) return;
    const final = e.type === 'membership' && !M.isJoint(e.membership) ? e.membership : null;
    this.confs = this.confs.filter((c) => {
      if (!c.seen && c.index === e.index) {
        if (c.term !== e.term) {
          c.reject(dropped(e.index));
          return false;
        }
        c.seen = true;
      }
      if (!c.seen || (c.untilFinal && !final)) return true;
      c.resolve({ index: e.index, membership: final ?? this.core.membership });
      return false;
    });
  }

  /** The storage installed a received snapshot: the state machine becomes its contents. */
  private async install(meta: SnapshotMeta): Promise<void> {
    const data = await this.storage.readSnapshot(meta);
    if (!data) throw new Error(`storage lost snapshot ${meta.id} right after installing it`);
    if (this.sm.restoreAsync) await this.sm.restoreAsync(meta, data);
    else this.sm.restore(meta, data);
    for (const r of this.restores.filter((w) => w.index <= meta.index)) r.resolve();
    this.restores = this.restores.filter((w) => w.index > meta.index);
    // Entries covered by the snapshot were never applied here: their outcome is unknown.
    const unknown = (index: number) =>
      new RaftError('OUTCOME_UNKNOWN', `outcome of ${index} unknown: a snapshot replaced the log`);
    for (const [index, w] of this.writes) {
      if (index > meta.index) continue;
      this.writes.delete(index);
      w.reject(unknown(index));
    }
    const final = !M.isJoint(meta.membership);
    this.confs = this.confs.filter((c) => {
      if (c.seen && final) c.resolve({ index: meta.index, membership: meta.membership });
      else if (!c.seen && c.index <= meta.index) c.reject(unknown(c.index));
      return !(c.seen ? final : c.index <= meta.index);
    });
  }

  private serveReads(): void {
    const applied = this.sm.applied;
    const due = this.confirmed.filter((r) => r.index <= applied);
    this.confirmed = this.confirmed.filter((r) => r.index > applied);
    for (const r of due) r.waiter.resolve(r.index);
  }

  private leaderChanged(leader: NodeId | null): void {
    for (const t of this.transfers) {
      if (t.target !== leader) continue;
      t.timer.cancel();
      this.transfers.delete(t);
      t.resolve();
    }
    for (const fn of this.leaderListeners) fn(leader, this.core.term);
  }

  private proposeConf(next: (m: Membership) => Membership, untilFinal: boolean): Promise<MembershipChange> {
    const index = this.core.proposeMembership(next);
    if (index === null) return Promise.resolve({ index: null, membership: this.core.membership });
    this.kick();
    return this.waitConf(index, this.core.term, untilFinal);
  }

  private waitConf(index: number, term: number, untilFinal: boolean): Promise<MembershipChange> {
    return new Promise((resolve, reject) => {
      this.confs.push({ index, term, untilFinal, seen: false, resolve, reject });
    });
  }

  private async makeSnapshot(): Promise<SnapshotMeta | null> {
    const expected = this.sm.applied;
    const { index, data } = this.sm.snapshotAsync ? await this.sm.snapshotAsync() : this.sm.snapshot();
    if (index !== expected) throw new Error(`snapshot at ${index} but applied was ${expected}`);
    const meta = this.core.snapshotMeta(index, data.byteLength, `${this.id}-${index}-${randomUUID()}`);
    if (!meta) return null; // a received snapshot overtook ours
    await this.storage.saveSnapshot(meta, data);
    if (this.stopped) throw this.stopped;
    this.core.compact(meta);
    return meta;
  }

  /** Stop for good: cancel timers and reject everything pending with `err`. */
  private fail(err: Error): void {
    if (this.stopped) return;
    this.stopped = err;
    this.ticker?.cancel();
    for (const t of this.transfers) t.timer.cancel();
    const waiters = [
      ...this.writes.values(),
      ...this.confs,
      ...this.reads.values(),
      ...this.transfers,
      ...this.restores,
    ];
    for (const w of [...waiters, ...this.confirmed.map((r) => r.waiter)]) w.reject(err);
    this.writes.clear();
    this.confs = [];
    this.reads.clear();
    this.confirmed = [];
    this.transfers.clear();
    this.restores = [];
  }
}

function dropped(index: number): RaftError {
  return new RaftError('PROPOSAL_DROPPED', `another entry was committed at index ${index}`);
}
