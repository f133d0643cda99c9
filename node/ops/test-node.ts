// Test support for the operations services: a single node over real disk storage (RaftNode,
// DiskStorage, KvStore) whose transport sends nowhere, and a few helpers to drive it.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeCommand } from '../kv/commands.js';
import { KvStore } from '../kv/store.js';
import type { KvApplyResult } from '../kv/types.js';
import { DEFAULT_CONFIG } from '../raft/raft.js';
import { RaftNode, realClock } from '../raft/raft-node.js';
import { SeededRng } from '../raft/rng.js';
import type { NodeInfo } from '../raft/types.js';
import { type DiskStorage, openStorage } from '../storage/index.js';

export interface TestNode {
  id: string;
  dir: string;
  raft: RaftNode<KvApplyResult>;
  kv: KvStore;
  storage: DiskStorage;
  stop(): Promise<void>;
}

export const TEST_NODE_INFO: NodeInfo = {
  raft: '127.0.0.1:7001',
  api: '127.0.0.1:7002',
  admin: '127.0.0.1:7003',
};

const enc = new TextEncoder();

/** Nodes opened under one temp root; `reset()` stops them and removes the root. */
export class TestNodes {
  root = '';
  private nodes: TestNode[] = [];

  constructor(private readonly prefix: string) {}

  async setUp(): Promise<void> {
    this.root = await mkdtemp(join(tmpdir(), this.prefix));
  }

  async reset(): Promise<void> {
    for (const n of this.nodes) await n.stop();
    this.nodes = [];
    await rm(this.root, { recursive: true, force: true });
  }

  /** Open (or reopen) the node stored in `root/name`. */
  async open(name: string, id = 'n1'): Promise<TestNode> {
    const dir = join(this.root, name);
    const { storage, state } = await openStorage(dir);
    const kv = new KvStore({ snapshotChunkBytes: 1024 });
    const raft = RaftNode.start<KvApplyResult>({
      config: { ...DEFAULT_CONFIG, id, rng: new SeededRng(this.nodes.length + 1) },
      state,
      storage,
      stateMachine: kv,
      transport: { send: () => {} },
      clock: realClock,
      tickMs: 2,
    });
    let stopped = false;
    const node: TestNode = {
      id,
      dir,
      raft,
      kv,
      storage,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await raft.shutdown();
        await storage.close();
      },
    };
    this.nodes.push(node);
    return node;
  }

  /** A one-node cluster `clusterId`, initialized and leading. */
  async cluster(clusterId: string, name = 'a', id = 'n1'): Promise<TestNode> {
    const node = await this.open(name, id);
    await node.raft.initialize([node.id], {
      nodes: { [node.id]: TEST_NODE_INFO },
      cluster: { id: clusterId, restoredFrom: null },
    });
    await until(() => node.raft.metrics().state === 'leader');
    return node;
  }
}

export async function until(pred: () => boolean, maxMs = 10_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${maxMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function put(node: TestNode, key: string, value: string): Promise<number> {
  const { index } = await node.raft.clientWrite(
    encodeCommand({ type: 'put', key, value: enc.encode(value) }),
  );
  return index;
}

export async function del(node: TestNode, key: string): Promise<number> {
  const { index } = await node.raft.clientWrite(encodeCommand({ type: 'delete', key }));
  return index;
}
