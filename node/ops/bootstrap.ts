// How a cluster comes into being, and how a node learns which cluster it belongs to.
//
// - initialize (operator, or a human): only a never-initialized node accepts it. What it was
//   initialized with is recorded in the data dir before the first entry is written, so the same
//   request again is answered 200 and a different one 409, across restarts.
// - prepare (the leader, before adding a node): the node learns the cluster id and the members'
//   addresses, so it can answer the leader; it refuses a cluster other than its own.
// - join (seed flow b, no operator): `--bootstrap-expect N` on node 0, `--join` on the others.
//   Node 0 collects N-1 joins, then initializes with exactly those members. Race-free because
//   only the node started with --bootstrap-expect ever initializes; a joiner never does, so a
//   restart of any node at any moment cannot produce a second cluster: node 0 restarting before
//   it initialized has no state and collects the (retried) joins again; after, its log holds the
//   cluster. Joins are idempotent, and a join naming another cluster id is refused.

import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  type InitializeRequest,
  type JoinRequest,
  type MemberAddresses,
  memberAddressesSchema,
  type PrepareRequest,
} from '../api/admin-contract.js';
import { ConfluxError } from '../errors.js';
import { RaftError } from '../raft/errors.js';
import * as M from '../raft/membership.js';
import type { RaftNode } from '../raft/raft-node.js';
import type { NodeId, NodeInfo, RaftMetrics } from '../raft/types.js';
import { readRecord, writeRecord } from '../storage/index.js';
import { backoffDelayMs } from '../transport/backoff.js';
import type { AddressBook } from './address-book.js';
import { type Accepted, type MembershipOps, toAddresses, toNodeInfo } from './membership.js';

const INITIALIZE_RECORD = 'initialized.json';
const initializeRecordSchema = z.object({
  fingerprint: z.string(),
  cluster_id: z.string(),
  members: z.record(z.string(), memberAddressesSchema),
});

export interface BootstrapDeps {
  raft: RaftNode<unknown>;
  nodeId: NodeId;
  self: NodeInfo;
  dataDir: string;
  addresses: AddressBook;
  membership: MembershipOps;
  /** POST /_internal/prepare on another node. */
  prepare(node: NodeInfo, body: PrepareRequest): Promise<void>;
  /** With --bootstrap-expect: the cluster size this node waits for before it initializes. */
  bootstrapExpect?: number;
  log: Logger;
}

export type InitializeResult = { cluster_id: string; members: Record<NodeId, MemberAddresses> };

export type JoinAnswer =
  | { status: 200; body: { state: 'member'; cluster_id: string; members: Record<NodeId, MemberAddresses> } }
  | { status: 202; body: { state: 'waiting'; joined: number; expected: number } }
  | { status: 202; body: { state: 'adding'; operation: Accepted['operation'] } };

export class Bootstrap {
  /** Joins node 0 collected while it waits for --bootstrap-expect members (lost on restart: joiners retry). */
  private readonly pending = new Map<NodeId, NodeInfo>();
  /** The cluster a leader told this (still empty) node it is about to join. */
  private boundTo: string | null = null;
  private initializing: Promise<InitializeResult> | null = null;
  private readonly stopped = new AbortController();

  constructor(private readonly d: BootstrapDeps) {}

  /** This node's cluster id: from its membership, else the one it was prepared for. */
  clusterId(): string | null {
    return this.d.raft.metrics().membership.cluster?.id ?? this.boundTo;
  }

  async initialize(req: InitializeRequest): Promise<InitializeResult> {
    const members = req.members;
    const fingerprint = fingerprintOf(members);
    const record = readRecord(this.d.dataDir, INITIALIZE_RECORD, initializeRecordSchema);
    if (record) {
      if (record.fingerprint === fingerprint)
        return { cluster_id: record.cluster_id, members: record.members };
      throw new ConfluxError(
        'CLUSTER_MISMATCH',
        `this node was initialized as cluster ${record.cluster_id} with other members; it is not initialized twice`,
        { cluster_id: record.cluster_id },
      );
    }
    if (this.initializing) throw new ConfluxError('OPERATION_IN_PROGRESS', 'an initialize is running');
    this.requirePristine('initialize');
    const mine = members[this.d.nodeId];
    if (!mine) throw new ConfluxError('INVALID_REQUEST', `members must include this node (${this.d.nodeId})`);
    const self = toAddresses(this.d.self);
    if (
      mine.api_address !== self.api_address ||
      mine.raft_address !== self.raft_address ||
      mine.admin_address !== self.admin_address
    ) {
      throw new ConfluxError(
        'INVALID_REQUEST',
        `members.${this.d.nodeId} differs from this node's advertised addresses`,
        {
          advertised: self,
        },
      );
    }
    this.initializing = this.start(members, fingerprint);
    try {
      return await this.initializing;
    } finally {
      this.initializing = null;
    }
  }

  private async start(
    members: Record<NodeId, MemberAddresses>,
    fingerprint: string,
  ): Promise<InitializeResult> {
    const clusterId = randomUUID();
    // Recorded first: a crash after this point answers the same request with the same id.
    writeRecord(this.d.dataDir, INITIALIZE_RECORD, { fingerprint, cluster_id: clusterId, members });
    const nodes = Object.fromEntries(Object.entries(members).map(([id, a]) => [id, toNodeInfo(a)]));
    this.d.addresses.hint(nodes);
    await this.d.raft.initialize(Object.keys(members), {
      nodes,
      cluster: { id: clusterId, restoredFrom: null },
    });
    this.d.log.info({ clusterId, members: Object.keys(members) }, 'cluster initialized');
    this.prepareMembers(clusterId, members);
    return { cluster_id: clusterId, members };
  }

  /** Tell every other initial member which cluster it is in, retrying until each answered. */
  private prepareMembers(clusterId: string, members: Record<NodeId, MemberAddresses>): void {
    for (const [id, addresses] of Object.entries(members)) {
      if (id === this.d.nodeId) continue;
      const body: PrepareRequest = { cluster_id: clusterId, node_id: id, members };
      void retry(() => this.d.prepare(toNodeInfo(addresses), body), {
        until: () => (this.d.raft.metrics().replication?.[id]?.matched ?? 0) > 0,
        log: this.d.log.child({ member: id }),
        signal: this.stopped.signal,
      });
    }
  }

  /**
   * --join: ask `send` (node 0, or any member) to make this node a voter, with backoff and
   * jitter, until it is one. A refusal (another cluster) is logged loudly and retried slowly: an
   * operator must fix the configuration; this node never initializes a cluster of its own.
   */
  startJoining(send: (body: JoinRequest) => Promise<{ status: number; body: unknown }>): void {
    const isVoter = () => M.isVoter(this.d.raft.metrics().membership, this.d.nodeId);
    void retry(
      async () => {
        if (isVoter()) return;
        const answer = await send({
          node_id: this.d.nodeId,
          cluster_id: this.clusterId(),
          ...toAddresses(this.d.self),
        });
        if (answer.status === 409) this.d.log.error({ answer: answer.body }, 'join refused');
        throw new Error(`not a voter yet (join answered ${answer.status})`);
      },
      {
        until: isVoter,
        log: this.d.log.child({ component: 'join' }),
        signal: this.stopped.signal,
        maxMs: 2_000,
      },
    );
  }

  stop(): void {
    this.stopped.abort();
  }

  prepare(req: PrepareRequest): { node_id: NodeId; cluster_id: string } {
    if (req.node_id !== this.d.nodeId) {
      throw new ConfluxError('INVALID_REQUEST', `this is node ${this.d.nodeId}, not ${req.node_id}`, {
        node_id: this.d.nodeId,
      });
    }
    const own = this.clusterId();
    if (own && own !== req.cluster_id) {
      throw new ConfluxError(
        'CLUSTER_MISMATCH',
        `this node belongs to cluster ${own}, not ${req.cluster_id}`,
        {
          cluster_id: own,
        },
      );
    }
    this.boundTo = req.cluster_id;
    this.d.addresses.hint(
      Object.fromEntries(Object.entries(req.members).map(([id, a]) => [id, toNodeInfo(a)])),
    );
    return { node_id: this.d.nodeId, cluster_id: req.cluster_id };
  }

  async join(req: JoinRequest): Promise<JoinAnswer> {
    const own = this.clusterId();
    if (req.cluster_id && req.cluster_id !== own) {
      throw new ConfluxError(
        'CLUSTER_MISMATCH',
        own
          ? `${req.node_id} belongs to cluster ${req.cluster_id}; this is cluster ${own}`
          : `${req.node_id} belongs to cluster ${req.cluster_id}, which this node is not part of`,
        { cluster_id: own },
      );
    }
    const m = this.d.raft.metrics();
    if (M.isInitialized(m.membership)) return this.joinInitialized(m, req);
    const expected = this.d.bootstrapExpect;
    if (!expected) {
      throw new RaftError(
        'NOT_INITIALIZED',
        `node ${this.d.nodeId} is not initialized and does not coordinate a bootstrap`,
      );
    }
    if (req.node_id === this.d.nodeId)
      throw new ConfluxError('INVALID_REQUEST', 'a node does not join itself');
    this.pending.set(req.node_id, toNodeInfo(req));
    this.d.log.info({ node: req.node_id, joined: this.pending.size + 1, expected }, 'join received');
    if (this.pending.size + 1 < expected) {
      return { status: 202, body: { state: 'waiting', joined: this.pending.size + 1, expected } };
    }
    const result = await this.initializeFromJoins(expected);
    return result.members[req.node_id]
      ? { status: 200, body: { state: 'member', ...result } }
      : this.joinInitialized(this.d.raft.metrics(), req);
  }

  /** --bootstrap-expect 1: nothing to wait for. */
  async bootstrapAlone(): Promise<void> {
    const m = this.d.raft.metrics();
    if (this.d.bootstrapExpect !== 1 || M.isInitialized(m.membership) || m.currentTerm > 0) return;
    await this.initializeFromJoins(1);
  }

  private initializeFromJoins(expected: number): Promise<InitializeResult> {
    if (this.initializing) return this.initializing;
    // Exactly `expected` members: this node and the first joiners by id (deterministic).
    const chosen = [...this.pending.keys()].sort().slice(0, expected - 1);
    const members: Record<NodeId, MemberAddresses> = { [this.d.nodeId]: toAddresses(this.d.self) };
    for (const id of chosen) members[id] = toAddresses(this.pending.get(id) as NodeInfo);
    return this.initialize({ members });
  }

  private joinInitialized(m: RaftMetrics, req: JoinRequest): JoinAnswer {
    const clusterId = m.membership.cluster?.id ?? '';
    if (M.isVoter(m.membership, req.node_id) && !M.isJoint(m.membership)) {
      const members = Object.fromEntries(
        Object.entries(m.membership.nodes).map(([id, n]) => [id, toAddresses(n)]),
      );
      return { status: 200, body: { state: 'member', cluster_id: clusterId, members } };
    }
    // A node joining a running cluster goes through the safe add flow (on the leader).
    const accepted = this.d.membership.addNode({
      node_id: req.node_id,
      api_address: req.api_address,
      raft_address: req.raft_address,
      admin_address: req.admin_address,
    });
    if (accepted.status === 200) return this.joinInitialized(this.d.raft.metrics(), req);
    return { status: 202, body: { state: 'adding', operation: accepted.operation } };
  }

  private requirePristine(what: string): void {
    const m = this.d.raft.metrics();
    if (M.isInitialized(m.membership) || m.currentTerm > 0 || m.lastLogIndex > 0) {
      throw new ConfluxError(
        'NOT_EMPTY',
        `node ${this.d.nodeId} already belongs to cluster ${m.membership.cluster?.id ?? '(unknown)'}; ${what} refused`,
        { cluster_id: m.membership.cluster?.id ?? null },
      );
    }
    if (this.boundTo) {
      throw new ConfluxError(
        'NOT_EMPTY',
        `node ${this.d.nodeId} is being added to cluster ${this.boundTo}; ${what} refused`,
        {
          cluster_id: this.boundTo,
        },
      );
    }
  }
}

/** Same members, same addresses, in any order: the same request. */
export function fingerprintOf(members: Record<NodeId, MemberAddresses>): string {
  const canonical = Object.keys(members)
    .sort()
    .map((id) => {
      const a = members[id] as MemberAddresses;
      return [id, a.raft_address, a.api_address, a.admin_address];
    });
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

/** The cluster id of a static --initial-cluster: every member computes the same one. */
export function staticClusterId(members: Record<NodeId, NodeInfo>): string {
  return `static-${fingerprintOf(Object.fromEntries(Object.entries(members).map(([id, n]) => [id, toAddresses(n)]))).slice(0, 32)}`;
}

/** Retry `fn` with the transport's backoff (capped, full jitter) until it succeeds or `until` holds. */
export async function retry(
  fn: () => Promise<unknown>,
  opts: { until?: () => boolean; log: Logger; minMs?: number; maxMs?: number; signal?: AbortSignal },
): Promise<void> {
  const min = opts.minMs ?? 200;
  const max = opts.maxMs ?? 5_000;
  for (let attempt = 0; !opts.signal?.aborted; attempt++) {
    if (opts.until?.()) return;
    try {
      await fn();
      return;
    } catch (err) {
      if (attempt % 10 === 0) opts.log.warn({ err: (err as Error).message, attempt }, 'will retry');
    }
    await new Promise((r) => setTimeout(r, backoffDelayMs(attempt, min, max, Math.random)));
  }
}
