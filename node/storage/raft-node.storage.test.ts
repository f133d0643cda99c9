// RaftNode on DiskStorage: a three-node cluster whose every Ready goes to real files, with a
// snapshot install over chunks and a full restart from disk.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RaftError } from '../raft/errors.js';
import { DEFAULT_CONFIG } from '../raft/raft.js';
import { RaftNode, realClock } from '../raft/raft-node.js';
import { SeededRng } from '../raft/rng.js';
import { encodeCommand, type KvResult, KvStateMachine } from '../raft/sim/kv-machine.js';
import type { Message, NodeId } from '../raft/types.js';
import { type DiskStorage, openStorage } from './storage.js';
import { tempDir } from './test-util.js';

const IDS = ['n1', 'n2', 'n3'];

interface Member {
  node: RaftNode<KvResult | null>;
  storage: DiskStorage;
  sm: KvStateMachine;
}

let root: string;
let cleanup: () => Promise<void>;
const members = new Map<NodeId, Member>();
const isolated = new Set<NodeId>();
let starts = 0;

beforeEach(async () => {
  ({ dir: root, cleanup } = await tempDir());
});

afterEach(async () => {
  for (const id of [...members.keys()]) await stop(id);
  await cleanup();
});

function send(messages: Message[]): void {
  for (const m of messages) {
    if (isolated.has(m.from) || isolated.has(m.to)) continue;
    queueMicrotask(() => members.get(m.to)?.node.step(m));
  }
}

async function start(id: NodeId): Promise<Member> {
  const { storage, state } = await openStorage(path.join(root, id), { segmentBytes: 4096 });
  const sm = new KvStateMachine();
  const node = RaftNode.start({
    config: { ...DEFAULT_CONFIG, id, rng: new SeededRng(++starts), snapshotChunkBytes: 64 },
    state,
    storage,
    stateMachine: sm,
    transport: { send },
    clock: realClock,
    tickMs: 2,
  });
  const m = { node, storage, sm };
  members.set(id, m);
  return m;
}

async function stop(id: NodeId): Promise<void> {
  const m = members.get(id);
  if (!m) return;
  members.delete(id);
  await m.node.shutdown();
  await m.storage.close();
}

async function until(pred: () => boolean, maxMs = 10_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${maxMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const member = (id: NodeId): Member => members.get(id) as Member;
const leader = (): Member => {
  const found = [...members.values()].find((m) => m.node.metrics().state === 'leader');
  if (!found) throw new Error('no leader');
  return found;
};
const hasLeader = () => [...members.values()].some((m) => m.node.metrics().state === 'leader');

/** Write through whoever leads now; an election in between (real timers, a busy machine) is retried. */
async function write(i: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    await until(hasLeader);
    try {
      await leader().node.clientWrite(put(i));
      return;
    } catch (err) {
      if (!(err instanceof RaftError) || Date.now() > deadline) throw err;
    }
  }
}

const put = (i: number) => encodeCommand({ op: 'put', key: `k${i % 7}`, value: `v${i}`, id: `w${i}` });

describe('RaftNode on DiskStorage', () => {
  it('replicates, installs a snapshot over chunks, and recovers everything after a full restart', async () => {
    for (const id of IDS) await start(id);
    await member('n1').node.initialize(IDS);
    for (let i = 0; i < 20; i++) await write(i);

    // n3 falls behind while the others compact their logs past it.
    const lagging = IDS.find((id) => member(id) !== leader()) as NodeId;
    isolated.add(lagging);
    for (let i = 20; i < 60; i++) await write(i);
    for (const id of IDS) if (id !== lagging) await member(id).node.triggerSnapshot();
    isolated.delete(lagging);
    await until(() => hasLeader() && member(lagging).sm.applied >= leader().sm.applied);
    expect(member(lagging).node.metrics().snapshot?.index).toBeGreaterThanOrEqual(40);

    for (let i = 60; i < 70; i++) await write(i);
    const expected = [...leader().sm.kv.data];
    const applied = leader().sm.applied;
    for (const id of IDS) await until(() => member(id).sm.applied === applied);

    for (const id of IDS) await stop(id);
    for (const id of IDS) await start(id);
    for (const id of IDS) await until(() => member(id).sm.applied >= applied);
    for (const id of IDS) expect([...member(id).sm.kv.data]).toEqual(expected);
    await write(70);
  });

  it('rebuilds its state from the older snapshot and the log when the newest snapshot file is corrupt', async () => {
    for (const id of IDS) await start(id);
    await member('n1').node.initialize(IDS);
    for (let i = 0; i < 20; i++) await write(i);
    const victim = IDS.find((id) => member(id) !== leader()) as NodeId;
    await until(() => member(victim).sm.applied >= leader().sm.applied);
    await member(victim).node.triggerSnapshot();
    for (let i = 20; i < 40; i++) await write(i);
    await until(() => member(victim).sm.applied >= leader().sm.applied);
    const newest = await member(victim).node.triggerSnapshot();
    expect(newest).not.toBeNull();
    for (let i = 40; i < 45; i++) await write(i);
    await until(() => member(victim).sm.applied >= leader().sm.applied);
    const before = { data: [...member(victim).sm.kv.data], applied: member(victim).sm.applied };
    await stop(victim);

    const snapDir = path.join(root, victim, 'snap');
    const file = path.join(
      snapDir,
      fs.readdirSync(snapDir).find((n) => n.startsWith(String(newest?.index).padStart(16, '0'))) as string,
    );
    const buf = fs.readFileSync(file);
    buf[0] = (buf[0] as number) ^ 0xff;
    fs.writeFileSync(file, buf);

    const m = await start(victim);
    // It starts from the older snapshot (the log holds everything after it) and catches up.
    expect(m.node.metrics().snapshot?.index).toBeLessThan(newest?.index ?? 0);
    await until(() => m.sm.applied >= before.applied);
    await write(45);
    await until(() => m.sm.applied >= leader().sm.applied);
    expect([...m.sm.kv.data]).toEqual([...leader().sm.kv.data]);
  });
});
