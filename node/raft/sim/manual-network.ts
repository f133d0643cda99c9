// A hand-driven cluster for scenario tests: every node persists synchronously, messages wait in a
// queue until the test delivers them, and every delivered message is written to a transcript in
// the style of etcd's interaction files (`n1->n2 vote t2 pre last=1/1`).

import { messageProblem } from '../message-checks.js';
import { DEFAULT_CONFIG, type RaftConfig, RaftCore } from '../raft.js';
import { SeededRng } from '../rng.js';
import type { Entry, Message, NodeId, ReadState, SnapshotMeta } from '../types.js';
import { Invariants } from './invariants.js';
import { encodeCommand, KvMachine } from './kv-machine.js';
import { SimDisk } from './sim-disk.js';

export const put = (key: string, value: string): Uint8Array =>
  encodeCommand({ op: 'put', key, value, id: `${key}=${value}` });

/** A cluster of `ids` initialized on the first, with its first leader elected. */
export function bootstrap(ids = ['n1', 'n2', 'n3'], config: Partial<RaftConfig> = {}): ManualNetwork {
  const net = new ManualNetwork(ids, config);
  net.on(ids[0] as NodeId, (c) => c.initialize(ids));
  net.stabilize();
  return net;
}

export interface ManualNode {
  core: RaftCore;
  disk: SimDisk;
  sm: KvMachine;
  readStates: ReadState[];
  droppedReads: string[];
  applied: Entry[];
}

export class ManualNetwork {
  readonly nodes = new Map<NodeId, ManualNode>();
  readonly invariants = new Invariants();
  transcript: string[] = [];
  private inflight: Message[] = [];
  private cut = new Set<string>();

  constructor(
    ids: NodeId[],
    private readonly config: Partial<RaftConfig> = {},
  ) {
    for (const id of ids) this.add(id);
  }

  add(id: NodeId): ManualNode {
    const node: ManualNode = {
      core: this.newCore(id, null),
      disk: new SimDisk(),
      sm: new KvMachine(),
      readStates: [],
      droppedReads: [],
      applied: [],
    };
    this.nodes.set(id, node);
    return node;
  }

  private newCore(id: NodeId, node: ManualNode | null): RaftCore {
    const cfg: RaftConfig = {
      ...DEFAULT_CONFIG,
      electionTicks: 10,
      heartbeatTicks: 1,
      ...this.config,
      id,
      rng: new SeededRng(id.length * 7 + id.charCodeAt(id.length - 1)),
    };
    if (!node) return new RaftCore(cfg);
    return new RaftCore(cfg, {
      hardState: node.disk.hardState,
      snapshot: node.disk.snapshot?.meta ?? null,
      entries: [...node.disk.entries],
    });
  }

  node(id: NodeId): ManualNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  core(id: NodeId): RaftCore {
    return this.node(id).core;
  }

  /** Run `fn` on a node's core, then drain its Ready loop (persist, queue messages, apply). */
  on(id: NodeId, fn: (core: RaftCore) => void = () => {}): void {
    const node = this.node(id);
    fn(node.core);
    this.drain(node);
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.on(id, (c) => c.tick());
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) for (const id of this.nodes.keys()) this.tick(id);
  }

  private drain(node: ManualNode): void {
    const core = node.core;
    this.invariants.observeRole(core);
    this.invariants.observeCommit(core);
    while (core.hasReady()) {
      const rd = core.ready();
      this.invariants.observeEntries(core.id, rd.entries, (i) => core.log.term(i));
      const installed = node.disk.write(rd);
      if (installed) node.sm = KvMachine.restore(installed);
      for (const m of [...rd.messages, ...rd.messagesAfterPersist]) this.send(node, m);
      for (const e of rd.committedEntries) {
        node.sm.apply(e);
        node.applied.push(e);
        this.invariants.observeApplied(core.id, e.index, node.sm.digest);
      }
      node.readStates.push(...rd.readStates);
      node.droppedReads.push(...rd.droppedReads);
      core.advance(rd);
      this.invariants.observeRole(core);
      this.invariants.observeCommit(core);
    }
  }

  private send(from: ManualNode, m: Message): void {
    let msg = m;
    if (m.type === 'snapshot') {
      const data = from.disk.chunk(m.meta, m.offset, m.length);
      if (!data) return;
      msg = { ...m, data };
    }
    // Real receivers refuse a message failing these checks: the engine must never send one.
    const problem = messageProblem(msg);
    if (problem) throw new Error(`${from.core.id} sent a malformed ${m.type}: ${problem}`);
    this.inflight.push(msg);
  }

  /** Take a snapshot of `id`'s state machine at its applied index and compact its log. */
  snapshot(id: NodeId): SnapshotMeta | null {
    const node = this.node(id);
    const data = node.sm.snapshot();
    const meta = node.core.snapshotMeta(node.sm.applied, data.byteLength, `${id}.${node.sm.applied}`);
    if (meta) {
      node.disk.saveSnapshot(meta, data);
      node.core.compact(meta);
    }
    return meta;
  }

  /** kill -9 and start again from the disk (which here holds everything that was persisted). */
  restart(id: NodeId): void {
    const node = this.node(id);
    this.inflight = this.inflight.filter((m) => m.to !== id && m.from !== id);
    node.disk.crash();
    node.core = this.newCore(id, node);
    node.sm = node.disk.snapshot ? KvMachine.restore(node.disk.snapshot.data) : new KvMachine();
    this.invariants.forget(id);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.partition([id], [other]);
  }

  partition(a: NodeId[], b: NodeId[]): void {
    for (const x of a)
      for (const y of b) {
        this.cut.add(`${x}>${y}`);
        this.cut.add(`${y}>${x}`);
      }
  }

  heal(): void {
    this.cut.clear();
  }

  pending(filter: (m: Message) => boolean = () => true): Message[] {
    return this.inflight.filter(filter);
  }

  /** Rewrite queued messages in flight (null drops one). */
  rewrite(fn: (m: Message) => Message | null): void {
    this.inflight = this.inflight.map(fn).filter((m): m is Message => m !== null);
  }

  /** Drop queued messages matching `filter` (a lost packet). */
  drop(filter: (m: Message) => boolean): void {
    this.inflight = this.inflight.filter((m) => !filter(m));
  }

  /** Deliver every queued message once (answers queue up for the next round). Returns the transcript lines. */
  deliver(filter: (m: Message) => boolean = () => true): string[] {
    const now = this.inflight.filter(filter);
    this.inflight = this.inflight.filter((m) => !filter(m));
    const lines: string[] = [];
    for (const m of now) {
      if (this.cut.has(`${m.from}>${m.to}`) || !this.nodes.has(m.to)) continue;
      lines.push(describe(m));
      this.on(m.to, (c) => c.step(m));
    }
    this.transcript.push(...lines);
    return lines;
  }

  /** Deliver until no message is left (bounded). */
  stabilize(maxRounds = 100): string[] {
    const lines: string[] = [];
    for (let i = 0; i < maxRounds && this.inflight.length > 0; i++) lines.push(...this.deliver());
    return lines;
  }

  /** Make `id` leader the way a timeout would, and let the election finish. */
  elect(id: NodeId): void {
    this.on(id, (c) => c.campaign(false));
    this.stabilize();
  }

  /** Let time pass on `ids` (one tick each, then deliver) until one of them leads. */
  electAmong(ids: NodeId[], maxTicks = 200): NodeId {
    for (let i = 0; i < maxTicks; i++) {
      for (const id of ids) this.tick(id);
      this.stabilize();
      const leader = ids.find((id) => this.core(id).role === 'leader');
      if (leader) return leader;
    }
    throw new Error(`no leader among ${ids.join(', ')} after ${maxTicks} ticks`);
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.core.role === 'leader').map((n) => n.core.id);
  }
}

export function describe(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'vote':
      return `${head}${m.pre ? ' pre' : ''}${m.transfer ? ' transfer' : ''} last=${m.lastLogIndex}/${m.lastLogTerm}`;
    case 'vote-response':
      return `${head}${m.pre ? ' pre' : ''} ${m.granted ? 'granted' : 'rejected'}`;
    case 'append':
      return `${head} prev=${m.prevIndex}/${m.prevTerm} entries=[${m.entries.map((e) => `${e.index}/${e.term}`).join(' ')}] commit=${m.commit}`;
    case 'append-response':
      return `${head} ${m.reject ? `reject=${m.index} hint=${m.hintIndex}/${m.hintTerm}` : `index=${m.index}`}`;
    case 'heartbeat':
      return `${head} commit=${m.commit} read=${m.readSeq}`;
    case 'heartbeat-response':
      return `${head} read=${m.readSeq} last=${m.lastIndex}`;
    case 'snapshot':
      return `${head} snap=${m.meta.index}/${m.meta.term} offset=${m.offset} len=${m.length}${m.done ? ' done' : ''}`;
    case 'snapshot-response':
      return `${head} snap=${m.snapshotIndex} next=${m.nextOffset}${m.reject ? ' reject' : ''}`;
    case 'timeout-now':
      return head;
  }
}
