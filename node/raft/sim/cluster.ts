// The simulated world: nodes with a disk that loses unsynced writes on a crash, a network that
// drops, delays, duplicates and partitions, and a host loop per node that follows the Ready
// contract exactly as the real server does (persist, then send what depends on it, then apply).

import { messageProblem } from '../message-checks.js';
import { DEFAULT_CONFIG, type Mutation, RaftCore } from '../raft.js';
import { SeededRng } from '../rng.js';
import type { Entry, Message, NodeId, Ready } from '../types.js';
import { EventQueue } from './event-queue.js';
import { Invariants, Violation } from './invariants.js';
import { KvMachine, type KvResult } from './kv-machine.js';
import type { Profile } from './profile.js';
import { SimDisk } from './sim-disk.js';

export const TICK_MS = 10;
export const ELECTION_TICKS = 10;

export interface WriteWaiter {
  onApplied(result: KvResult | null, entry: Entry): void;
  onLost(): void;
}

export interface ReadWaiter {
  onConfirmed(index: number): void;
  onDropped(): void;
}

export class SimNode {
  core: RaftCore | null = null;
  disk = new SimDisk();
  sm = new KvMachine();
  /** Bumped on every crash: events scheduled for an earlier life are void. */
  life = 0;
  busy = false;
  writes = new Map<number, WriteWaiter>();
  reads = new Map<string, ReadWaiter>();
  confirmedReads: { index: number; waiter: ReadWaiter }[] = [];

  constructor(readonly id: NodeId) {}

  get alive(): boolean {
    return this.core !== null;
  }
}

type Event =
  | { kind: 'deliver'; msg: Message }
  | { kind: 'tick'; node: NodeId; life: number }
  | { kind: 'persist'; node: NodeId; life: number; ready: Ready }
  | { kind: 'call'; run: () => void };

export class SimCluster {
  readonly rng: SeededRng;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly invariants = new Invariants();
  now = 0;
  events = 0;
  private queue = new EventQueue<Event>();
  private blocked = new Set<string>();
  faultsOn = true;

  constructor(
    readonly seed: number,
    readonly profile: Profile,
    private readonly mutations: ReadonlySet<Mutation> = new Set(),
  ) {
    this.rng = new SeededRng(seed);
  }

  // -- world -----------------------------------------------------------------------------------

  addNode(id: NodeId): SimNode {
    const node = new SimNode(id);
    this.nodes.set(id, node);
    this.start(node);
    return node;
  }

  private start(node: SimNode): void {
    const snapshot = node.disk.snapshot;
    node.sm = snapshot ? KvMachine.restore(snapshot.data) : new KvMachine();
    node.core = new RaftCore(
      {
        ...DEFAULT_CONFIG,
        id: node.id,
        rng: new SeededRng(this.seed * 31 + node.life * 7 + hash(node.id)),
        electionTicks: ELECTION_TICKS,
        maxInflight: this.profile.maxInflight,
        maxEntriesPerAppend: this.profile.maxEntriesPerAppend,
        snapshotChunkBytes: this.profile.snapshotChunkBytes,
        mutations: this.mutations,
      },
      { hardState: node.disk.hardState, snapshot: snapshot?.meta ?? null, entries: [...node.disk.entries] },
    );
    this.invariants.forget(node.id);
    this.schedule(this.rng.int(TICK_MS), { kind: 'tick', node: node.id, life: node.life });
  }

  /** kill -9: memory and unsynced writes are gone; waiting clients never hear back. */
  crash(id: NodeId): void {
    const node = this.node(id);
    if (!node.alive) return;
    node.core = null;
    node.life++;
    node.busy = false;
    node.disk.crash();
    for (const w of node.writes.values()) w.onLost();
    for (const r of node.reads.values()) r.onDropped();
    for (const r of node.confirmedReads) r.waiter.onDropped();
    node.writes.clear();
    node.reads.clear();
    node.confirmedReads = [];
  }

  restart(id: NodeId): void {
    const node = this.node(id);
    if (!node.alive) this.start(node);
  }

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  alive(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.alive);
  }

  leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.alive()) {
      if (n.core?.role === 'leader' && (!best || n.core.term > (best.core?.term ?? 0))) best = n;
    }
    return best;
  }

  block(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  heal(): void {
    this.blocked.clear();
  }

  // -- events ----------------------------------------------------------------------------------

  schedule(delayMs: number, event: Event): void {
    this.queue.push(this.now + delayMs, event);
  }

  later(delayMs: number, run: () => void): void {
    this.schedule(delayMs, { kind: 'call', run });
  }

  /** Run events until `untilMs`. Throws Violation on the first broken invariant. */
  runUntil(untilMs: number, stop: () => boolean = () => false): void {
    for (;;) {
      const at = this.queue.peekTime();
      if (at === undefined || at > untilMs) {
        this.now = untilMs;
        return;
      }
      const next = this.queue.pop() as { at: number; value: Event };
      this.now = next.at;
      this.events++;
      this.dispatch(next.value);
      if (stop()) return;
    }
  }

  private dispatch(ev: Event): void {
    switch (ev.kind) {
      case 'deliver': {
        const node = this.nodes.get(ev.msg.to);
        if (!node?.core) return;
        this.guard(node, () => node.core?.step(ev.msg));
        return;
      }
      case 'tick': {
        const node = this.node(ev.node);
        if (!node.core || node.life !== ev.life) return;
        this.guard(node, () => node.core?.tick());
        this.schedule(TICK_MS, ev);
        return;
      }
      case 'persist': {
        const node = this.node(ev.node);
        if (!node.core || node.life !== ev.life) return; // crashed before the write was durable
        this.guard(node, () => this.persisted(node, ev.ready));
        return;
      }
      case 'call':
        ev.run();
        return;
    }
  }

  /** Run `fn` against a node, then drive its Ready loop and check every invariant it touched. */
  guard(node: SimNode, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('safety:'))
        throw new Violation(`${node.id}: ${err.message}`);
      throw err;
    }
    this.drive(node);
  }

  private drive(node: SimNode): void {
    const core = node.core;
    if (!core) return;
    this.invariants.observeRole(core);
    this.invariants.observeCommit(core);
    if (node.busy || !core.hasReady()) return;
    const rd = core.ready();
    this.invariants.observeEntries(node.id, rd.entries, (i) => core.log.term(i));
    for (const m of rd.messages) this.send(node, m);
    node.busy = true;
    const delay = this.profile.fsyncMsMax === 0 ? 0 : this.rng.int(this.profile.fsyncMsMax + 1);
    this.schedule(delay, { kind: 'persist', node: node.id, life: node.life, ready: rd });
  }

  /** The host's half of the Ready contract, run when the write is durable. */
  private persisted(node: SimNode, rd: Ready): void {
    const core = node.core as RaftCore;
    const installed = node.disk.write(rd);
    if (rd.snapshot && installed) {
      if (installed.byteLength !== rd.snapshot.sizeBytes)
        throw new Violation(`${node.id}: snapshot size mismatch`);
      node.sm = KvMachine.restore(installed);
      if (node.sm.applied !== rd.snapshot.index) {
        throw new Violation(`${node.id}: snapshot content is not at its index`);
      }
      this.invariants.observeApplied(node.id, node.sm.applied, node.sm.digest);
      for (const [index, w] of node.writes) {
        if (index <= rd.snapshot.index) {
          node.writes.delete(index);
          w.onLost();
        }
      }
    }
    for (const m of rd.messagesAfterPersist) this.send(node, m);
    for (const e of rd.committedEntries) {
      const result = node.sm.apply(e);
      this.invariants.observeApplied(node.id, e.index, node.sm.digest);
      const w = node.writes.get(e.index);
      if (w) {
        node.writes.delete(e.index);
        w.onApplied(result, e);
      }
    }
    for (const rs of rd.readStates) {
      const w = node.reads.get(rs.ctx);
      node.reads.delete(rs.ctx);
      if (w) node.confirmedReads.push({ index: rs.index, waiter: w });
    }
    for (const ctx of rd.droppedReads) {
      node.reads.get(ctx)?.onDropped();
      node.reads.delete(ctx);
    }
    core.advance(rd);
    node.busy = false;
    this.serveReads(node);
    this.maybeSnapshot(node);
  }

  private serveReads(node: SimNode): void {
    const ready = node.confirmedReads.filter((r) => r.index <= node.sm.applied);
    node.confirmedReads = node.confirmedReads.filter((r) => r.index > node.sm.applied);
    for (const r of ready) r.waiter.onConfirmed(r.index);
  }

  private maybeSnapshot(node: SimNode): void {
    const core = node.core as RaftCore;
    const last = node.disk.snapshot?.meta.index ?? 0;
    if (node.sm.applied - last < this.profile.snapshotEvery) return;
    const data = node.sm.snapshot();
    const meta = core.snapshotMeta(
      node.sm.applied,
      data.byteLength,
      `${node.id}.${node.life}.${node.sm.applied}`,
    );
    if (!meta) return;
    node.disk.saveSnapshot(meta, data);
    core.compact(meta);
  }

  // -- network ---------------------------------------------------------------------------------

  private send(from: SimNode, m: Message): void {
    let msg = m;
    if (m.type === 'snapshot') {
      const data = from.disk.chunk(m.meta, m.offset, m.length);
      if (!data) return; // superseded; the leader retries
      msg = { ...m, data };
    }
    // Real receivers run these checks before their engine sees a message: the engine must never
    // send one they would refuse.
    const problem = messageProblem(msg);
    if (problem) throw new Violation(`${from.id} sent a malformed ${m.type}: ${problem}`);
    if (this.blocked.has(`${m.from}>${m.to}`)) return;
    if (this.faultsOn && this.rng.chance(this.profile.lossRate)) return;
    const copies = this.faultsOn && this.rng.chance(this.profile.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) this.schedule(this.delay(), { kind: 'deliver', msg });
  }

  private delay(): number {
    if (this.faultsOn && this.rng.chance(this.profile.longDelayRate)) return 50 + this.rng.int(400);
    return 1 + this.rng.int(this.profile.delayMsMax);
  }
}

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}
