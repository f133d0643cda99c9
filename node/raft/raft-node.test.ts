// RaftNode, the async host loop, on an in-memory cluster: storage resolves on a microtask, the
// transport delivers on a microtask, and time only moves when a test advances the fake clock.
import { describe, expect, it } from 'vitest';
import { ProtocolViolation } from './errors.js';
import * as M from './membership.js';
import { DEFAULT_CONFIG, type RaftState } from './raft.js';
import { type Clock, RaftNode, type RaftNodeOptions, type RaftStorage, type Timer } from './raft-node.js';
import { openRaftNode } from './raft-node-open.js';
import { SeededRng } from './rng.js';
import { encodeCommand, type KvResult, KvStateMachine } from './sim/kv-machine.js';
import type { Entry, HardState, Message, NodeId, SnapshotChunk, SnapshotMeta } from './types.js';

const TICK_MS = 10;
const put = (key: string, value: string): Uint8Array =>
  encodeCommand({ op: 'put', key, value, id: `${key}=${value}` });

/** Lets every queued microtask (storage, transport, loop rounds) run to quiescence. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface FakeTimer {
  at: number;
  every: number | null;
  fn: () => void;
  live: boolean;
}

class FakeClock implements Clock {
  now = 0;
  private timers: FakeTimer[] = [];

  setInterval(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, ms);
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, null);
  }

  private add(fn: () => void, ms: number, every: number | null): Timer {
    const t: FakeTimer = { at: this.now + ms, every, fn, live: true };
    this.timers.push(t);
    return { cancel: () => (t.live = false) };
  }

  /** Fire every timer due within `ms`, in time order, letting the cluster settle after each. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      this.timers = this.timers.filter((t) => t.live);
      const next = this.timers.reduce<FakeTimer | null>((a, t) => (a === null || t.at < a.at ? t : a), null);
      if (!next || next.at > end) break;
      this.now = next.at;
      if (next.every === null) next.live = false;
      else next.at += next.every;
      next.fn();
      await flush();
    }
    this.now = end;
  }
}

class MemStorage implements RaftStorage {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  entries: Entry[] = [];
  snapshot: { meta: SnapshotMeta; data: Uint8Array } | null = null;
  private staging: Uint8Array[] = [];

  async save(rd: {
    hardState: HardState | null;
    entries: Entry[];
    snapshot: SnapshotMeta | null;
    snapshotChunks: SnapshotChunk[];
  }): Promise<void> {
    for (const c of rd.snapshotChunks) {
      if (c.offset === 0) this.staging = [];
      this.staging.push(c.data);
    }
    if (rd.snapshot) {
      this.snapshot = { meta: rd.snapshot, data: Buffer.concat(this.staging) };
      this.staging = [];
      this.entries = [];
    }
    const first = rd.entries[0];
    if (first) this.entries = [...this.entries.filter((e) => e.index < first.index), ...rd.entries];
    if (rd.hardState) this.hardState = rd.hardState;
  }

  readSnapshotChunk(meta: SnapshotMeta, offset: number, length: number): Uint8Array | null {
    return this.snapshot?.meta.id === meta.id ? this.snapshot.data.slice(offset, offset + length) : null;
  }

  async readSnapshot(meta: SnapshotMeta): Promise<Uint8Array | null> {
    return this.readSnapshotChunk(meta, 0, meta.sizeBytes);
  }

  async saveSnapshot(meta: SnapshotMeta, data: Uint8Array): Promise<void> {
    if (meta.index <= (this.snapshot?.meta.index ?? 0)) return;
    this.snapshot = { meta, data };
    this.entries = this.entries.filter((e) => e.index > meta.index);
  }

  recovered(): RaftState {
    return { hardState: this.hardState, snapshot: this.snapshot?.meta ?? null, entries: [...this.entries] };
  }
}

/** A lone node n1 recovering from `storage`, on a fake clock, sending nowhere. */
function soloOptions(
  storage: MemStorage,
  sm: KvStateMachine,
  config: Partial<typeof DEFAULT_CONFIG> = {},
): RaftNodeOptions<KvResult | null> {
  return {
    config: { ...DEFAULT_CONFIG, ...config, id: 'n1', rng: new SeededRng(1) },
    state: storage.recovered(),
    storage,
    stateMachine: sm,
    transport: { send: () => {} },
    clock: new FakeClock(),
    tickMs: TICK_MS,
  };
}

interface Member {
  node: RaftNode<KvResult | null>;
  storage: MemStorage;
  sm: KvStateMachine;
}

class Cluster {
  readonly clock = new FakeClock();
  readonly members = new Map<NodeId, Member>();
  /** Isolated nodes: every message from or to them is lost. */
  readonly isolated = new Set<NodeId>();
  private starts = 0;

  add(id: NodeId, storage = new MemStorage()): Member {
    const sm = new KvStateMachine();
    const node = RaftNode.start({
      config: { ...DEFAULT_CONFIG, id, rng: new SeededRng(++this.starts * 7919), snapshotChunkBytes: 64 },
      state: storage.recovered(),
      storage,
      stateMachine: sm,
      transport: { send: (messages) => this.send(messages) },
      clock: this.clock,
      tickMs: TICK_MS,
    });
    const member = { node, storage, sm };
    this.members.set(id, member);
    return member;
  }

  private send(messages: Message[]): void {
    for (const m of messages) {
      if (this.isolated.has(m.from) || this.isolated.has(m.to)) continue;
      queueMicrotask(() => this.members.get(m.to)?.node.step(m));
    }
  }

  member(id: NodeId): Member {
    const m = this.members.get(id);
    if (!m) throw new Error(`no node ${id}`);
    return m;
  }

  node(id: NodeId): RaftNode<KvResult | null> {
    return this.member(id).node;
  }

  /** kill the node and start it again from what its storage holds, with an empty state machine. */
  async restart(id: NodeId): Promise<Member> {
    const { node, storage } = this.member(id);
    await node.shutdown();
    return this.add(id, storage);
  }

  /** Advance time tick by tick until `pred` holds. */
  async until(pred: () => boolean, maxMs = 10_000): Promise<void> {
    await flush();
    for (let waited = 0; !pred(); waited += TICK_MS) {
      if (waited >= maxMs) throw new Error(`condition not reached within ${maxMs} ms`);
      await this.clock.advance(TICK_MS);
    }
  }

  /** Advance time until `p` settles, then hand it back (never hangs on a promise that needs ticks). */
  async run<T>(p: Promise<T>): Promise<T> {
    let settled = false;
    p.then(
      () => (settled = true),
      () => (settled = true),
    );
    await this.until(() => settled);
    return p;
  }
}

const IDS = ['n1', 'n2', 'n3'];

/** Three nodes, initialized on n1, each of them knowing n1 as leader. */
async function elected(): Promise<Cluster> {
  const c = new Cluster();
  for (const id of IDS) c.add(id);
  await c.run(c.node('n1').initialize(IDS));
  await c.until(() => IDS.every((id) => c.node(id).metrics().currentLeader === 'n1'));
  return c;
}

describe('RaftNode', () => {
  it('initializes a cluster and elects the initializing node', async () => {
    const c = await elected();
    const m = c.node('n1').metrics();
    expect(m.state).toBe('leader');
    expect(m.membership.configs).toEqual([IDS]);
    await c.until(() => IDS.every((id) => c.node(id).metrics().lastApplied === 2)); // bootstrap + blank
    await expect(c.node('n2').initialize(IDS)).rejects.toMatchObject({ code: 'ALREADY_INITIALIZED' });
  });

  it('clientWrite resolves with the response once applied, and every node applies it', async () => {
    const c = await elected();
    const res = await c.run(c.node('n1').clientWrite(put('a', '1')));
    expect(res).toEqual({ index: 3, response: { id: 'a=1', ok: true } });
    expect(c.member('n1').sm.kv.get('a')).toBe('1');
    await c.until(() => IDS.every((id) => c.member(id).sm.kv.get('a') === '1'));
  });

  it('clientWrite and ensureLinearizable on a follower reject NOT_LEADER with the leader hint', async () => {
    const c = await elected();
    await expect(c.node('n2').clientWrite(put('a', '1'))).rejects.toMatchObject({
      code: 'NOT_LEADER',
      leader: 'n1',
    });
    await expect(c.node('n3').ensureLinearizable()).rejects.toMatchObject({
      code: 'NOT_LEADER',
      leader: 'n1',
    });
  });

  it('ensureLinearizable resolves on the leader with an index it has applied', async () => {
    const c = await elected();
    const { index } = await c.run(c.node('n1').clientWrite(put('a', '1')));
    const reads = await c.run(
      Promise.all([c.node('n1').ensureLinearizable(), c.node('n1').ensureLinearizable()]),
    );
    expect(reads).toEqual([index, index]);
    expect(c.member('n1').sm.applied).toBeGreaterThanOrEqual(index);
  });

  it('addLearner then changeMembership promotes the learner to a single voter set', async () => {
    const c = await elected();
    c.add('n4');
    const leader = c.node('n1');
    const added = await c.run(leader.addLearner('n4'));
    expect(added.membership).toEqual({
      configs: [IDS],
      learners: ['n4'],
      retired: [],
      nodes: {},
      cluster: null,
    });
    const voters = [...IDS, 'n4'];
    const changing = leader.changeMembership(voters);
    // One change at a time: the joint config is in flight.
    await expect(leader.addLearner('n5')).rejects.toMatchObject({ code: 'MEMBERSHIP_CHANGE_IN_PROGRESS' });
    const changed = await c.run(changing);
    expect(changed.membership).toEqual({
      configs: [voters],
      learners: [],
      retired: [],
      nodes: {},
      cluster: null,
    });
    await c.until(() => voters.every((id) => c.node(id).metrics().membership.configs.length === 1));
    for (const id of voters) expect(c.node(id).metrics().membership.configs).toEqual([voters]);
    expect(c.node('n4').metrics().state).toBe('follower');
  });

  it('transferLeader resolves once the old leader sees the target lead', async () => {
    const c = await elected();
    const seen: (NodeId | null)[] = [];
    c.node('n1').onLeaderChange((leader) => seen.push(leader));
    await c.run(c.node('n1').transferLeader('n2', 1_000));
    expect(c.node('n2').metrics().state).toBe('leader');
    expect(seen.at(-1)).toBe('n2');
    const res = await c.run(c.node('n2').clientWrite(put('after', 'transfer')));
    expect(res.response).toEqual({ id: 'after=transfer', ok: true });
  });

  it('transferLeader to an unreachable voter rejects TRANSFER_TIMEOUT', async () => {
    const c = await elected();
    c.isolated.add('n3');
    await expect(c.run(c.node('n1').transferLeader('n3', 200))).rejects.toMatchObject({
      code: 'TRANSFER_TIMEOUT',
    });
    await expect(c.node('n1').transferLeader('n9', 200)).rejects.toMatchObject({
      code: 'INVALID_TRANSFER_TARGET',
    });
  });

  it('triggerSnapshot compacts, and a learner added afterwards catches up through the snapshot', async () => {
    const c = await elected();
    const leader = c.node('n1');
    for (let i = 0; i < 8; i++) await c.run(leader.clientWrite(put(`k${i}`, `value-${i}`)));
    const before = leader.logBytes();
    expect(before).toBeGreaterThan(8 * 'value-0'.length);
    const meta = await c.run(leader.triggerSnapshot());
    expect(meta).not.toBeNull();
    expect(leader.logBytes()).toBe(0); // everything applied was compacted
    expect(meta?.index).toBe(leader.metrics().lastApplied);
    expect(leader.metrics().snapshot).toEqual({ index: meta?.index, term: meta?.term });
    expect(c.member('n1').storage.snapshot?.meta.id).toBe(meta?.id);
    expect(c.member('n1').storage.entries.every((e) => e.index > (meta?.index ?? 0))).toBe(true);
    expect(meta?.sizeBytes).toBeGreaterThan(64); // several chunks

    c.add('n4');
    await c.run(leader.addLearner('n4'));
    await c.run(leader.clientWrite(put('later', 'x')));
    const n4 = c.member('n4');
    await c.until(() => n4.sm.applied === leader.metrics().lastApplied);
    expect(n4.node.metrics().snapshot?.index).toBe(meta?.index); // installed, not replayed
    expect(n4.storage.snapshot?.meta.id).toBe(meta?.id);
    expect(n4.sm.kv.digest).toBe(c.member('n1').sm.kv.digest);
    expect(n4.sm.kv.get('k7')).toBe('value-7');
    expect(n4.sm.kv.get('later')).toBe('x');
  });

  it('a restarted node recovers its snapshot and log from storage and catches up', async () => {
    const c = await elected();
    const leader = c.node('n1');
    for (let i = 0; i < 4; i++) await c.run(leader.clientWrite(put(`k${i}`, `${i}`)));
    await c.until(() => c.member('n2').sm.applied === leader.metrics().lastApplied);
    const meta = await c.run(c.node('n2').triggerSnapshot());
    await c.run(leader.clientWrite(put('k4', '4')));
    await c.until(() => c.member('n2').sm.applied === leader.metrics().lastApplied);
    const n2 = await c.restart('n2');
    // The state machine was restored from the stored snapshot before the core started.
    expect(n2.sm.applied).toBeGreaterThanOrEqual(meta?.index ?? Number.POSITIVE_INFINITY);
    expect(n2.node.metrics().snapshot?.index).toBe(meta?.index);
    expect(n2.storage.entries[0]?.index).toBe((meta?.index ?? 0) + 1);
    await c.run(leader.clientWrite(put('k5', '5')));
    await c.until(() => n2.sm.applied === leader.metrics().lastApplied);
    expect(n2.sm.kv.digest).toBe(c.member('n1').sm.kv.digest);
  });

  it('a long backlog is applied in batches that let timers and I/O run in between', async () => {
    // A restarted node replays its committed log; each batch of 8 entries takes ≥ 2 ticks here.
    const storage = new MemStorage();
    const membership = M.initialMembership(['n1']);
    storage.entries = [{ index: 1, term: 1, type: 'membership', membership }];
    for (let i = 2; i <= 33; i++)
      storage.entries.push({ index: i, term: 1, type: 'normal', data: put(`k${i}`, 'v') });
    storage.hardState = { term: 1, vote: 'n1', commit: 33 };
    const sm = new KvStateMachine();
    const apply = sm.apply.bind(sm);
    sm.apply = (e) => {
      const until = performance.now() + TICK_MS / 4;
      while (performance.now() < until) {} // CPU-heavy, like a transaction of many puts
      return apply(e);
    };
    const node = RaftNode.start(soloOptions(storage, sm, { maxApplyBatch: 8 }));
    const seen: number[] = [];
    for (let i = 0; i < 10 && sm.applied < 33; i++) {
      await flush();
      seen.push(sm.applied);
    }
    expect(seen[0]).toBe(8); // the first macrotask ran after one batch, not after all of them
    expect(sm.applied).toBe(33);
    expect(sm.kv.get('k33')).toBe('v');
    await node.shutdown();
  });

  it('openRaftNode installs the recovered snapshot with restoreAsync, letting timers run, then applies the log', async () => {
    const membership = M.initialMembership(['n1']);
    const before = new KvStateMachine();
    for (let i = 1; i <= 5; i++)
      before.apply({ index: i, term: 1, type: 'normal', data: put(`k${i}`, 'old') });
    const { data } = before.snapshot();
    const storage = new MemStorage();
    const meta: SnapshotMeta = { index: 5, term: 1, id: 'snap-5', sizeBytes: data.byteLength, membership };
    storage.snapshot = { meta, data };
    storage.entries = [{ index: 6, term: 1, type: 'normal', data: put('k6', 'new') }];
    storage.hardState = { term: 1, vote: 'n1', commit: 6 };
    const sm = new KvStateMachine();
    const calls: string[] = [];
    const restore = sm.restore.bind(sm);
    sm.restore = () => calls.push('restore in one piece');
    let turns = 0;
    const timer = setInterval(() => turns++, 1);
    Object.assign(sm, {
      restoreAsync: async (m: SnapshotMeta, d: Uint8Array) => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        calls.push(`restoreAsync after ${turns > 0 ? 'a turn' : 'none'}`);
        restore(m, d);
      },
    });
    const node = await openRaftNode(soloOptions(storage, sm));
    clearInterval(timer);
    for (let i = 0; i < 10 && sm.applied < 6; i++) await flush();
    expect(calls).toEqual(['restoreAsync after a turn']);
    expect(sm.kv.get('k1')).toBe('old');
    expect(sm.kv.get('k6')).toBe('new');
    await node.shutdown();
  });

  it('a deposed leader rejects its overwritten write (PROPOSAL_DROPPED) and its read (READ_ABORTED)', async () => {
    const c = await elected();
    const old = c.node('n1');
    c.isolated.add('n1');
    const write = expect(old.clientWrite(put('lost', '1'))).rejects.toMatchObject({
      code: 'PROPOSAL_DROPPED',
    });
    const read = expect(old.ensureLinearizable()).rejects.toMatchObject({ code: 'READ_ABORTED' });
    await c.run(read); // CheckQuorum makes n1 step down, which drops its pending reads
    expect(old.metrics().state).not.toBe('leader');
    await c.until(() => ['n2', 'n3'].some((id) => c.node(id).metrics().state === 'leader'));
    c.isolated.clear();
    await c.run(write); // the new leader's blank entry took index 3
    expect(c.member('n1').sm.kv.get('lost')).toBeNull();
  });

  it('shutdown rejects every pending call with SHUTTING_DOWN, and every later call too', async () => {
    const c = await elected();
    const leader = c.node('n1');
    c.isolated.add('n1'); // nothing can commit or be confirmed any more
    const write = expect(leader.clientWrite(put('a', '1'))).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    const read = expect(leader.ensureLinearizable()).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    const transfer = expect(leader.transferLeader('n2', 10_000)).rejects.toMatchObject({
      code: 'SHUTTING_DOWN',
    });
    await c.clock.advance(3 * TICK_MS);
    await leader.shutdown();
    await Promise.all([write, read, transfer]);
    await expect(leader.clientWrite(put('b', '2'))).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    await expect(leader.triggerSnapshot()).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    const applied = leader.metrics().lastApplied;
    await c.clock.advance(50 * TICK_MS); // no more ticks: nothing changes
    expect(leader.metrics().lastApplied).toBe(applied);
  });

  it('a forged leader message is refused by step (ProtocolViolation) and the node keeps serving', async () => {
    const c = await elected();
    const leader = c.node('n1');
    const { currentTerm } = leader.metrics();
    const forged: Message = {
      type: 'heartbeat',
      from: 'n9',
      to: 'n1',
      term: currentTerm,
      commit: 0,
      readSeq: 0,
    };
    expect(() => leader.step(forged)).toThrow(ProtocolViolation);
    expect(leader.metrics()).toMatchObject({ state: 'leader', currentTerm });
    const res = await c.run(leader.clientWrite(put('after', 'forgery')));
    expect(res.response).toEqual({ id: 'after=forgery', ok: true });
  });
});
