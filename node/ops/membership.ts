// The seed's membership flows on the leader.
//
// Safe add: prepare the new node (it learns the cluster id and the members' addresses, and proves
// it is the node asked for and not part of another cluster) -> add it as a learner -> wait until
// it is caught up -> promote it by a joint membership change. "Caught up" is an absolute lag
// (entries behind the leader's last index) held for a stable period; a ratio such as etcd's 90 %
// says nothing on a large log, and a single low sample says nothing under load.
//
// Safe remove: refuse when the voters left, counting only those that answered the leader within
// an election timeout, could not form a quorum (unless forced); the leader is never removed here:
// the caller transfers leadership first and asks the new leader.

import type { Logger } from 'pino';
import type { AddNodeRequest, Operation, PrepareRequest } from '../api/admin-contract.js';
import { ConfluxError } from '../errors.js';
import type { NodeMetrics } from '../metrics.js';
import { RaftError } from '../raft/errors.js';
import * as M from '../raft/membership.js';
import type { RaftNode } from '../raft/raft-node.js';
import type { NodeId, NodeInfo, RaftMetrics } from '../raft/types.js';
import type { AddressBook } from './address-book.js';
import type { OperationHandle, OperationQueue } from './operations.js';

/** How long a membership change waits for the previous one to settle. */
const SETTLE_PATIENCE_MS = 10_000;

/** How long the add flow waits for a new node to answer at all. */
const PREPARE_PATIENCE_MS = 60_000;

export interface CatchUpPolicy {
  /** Caught up means at most this many entries behind the leader's last index ... */
  maxLag: number;
  /** ... continuously for this long. */
  stableMs: number;
  /** Give up after this long; the node stays a learner and the operation fails. */
  timeoutMs: number;
  pollMs: number;
}

export interface MembershipDeps {
  raft: RaftNode<unknown>;
  nodeId: NodeId;
  addresses: AddressBook;
  queue: OperationQueue;
  /** Tell the node at `node.admin` which cluster it is about to join (POST /_internal/prepare). */
  prepare(node: NodeInfo, body: PrepareRequest): Promise<void>;
  metrics?: NodeMetrics;
  log: Logger;
  catchUp: CatchUpPolicy;
  /** A voter that has not answered the leader for this many ticks counts as unreachable. */
  electionTicks: number;
  electionTimeoutMs: number;
  sleep?: (ms: number) => Promise<void>;
}

export interface Accepted {
  /** 200 when nothing had to be done, 202 when an operation was queued or is already running. */
  status: 200 | 202;
  operation: Operation;
}

export const toNodeInfo = (r: {
  api_address: string;
  raft_address: string;
  admin_address: string;
}): NodeInfo => ({
  api: r.api_address,
  raft: r.raft_address,
  admin: r.admin_address,
});

export const toAddresses = (n: NodeInfo) => ({
  api_address: n.api,
  raft_address: n.raft,
  admin_address: n.admin,
});

export class MembershipOps {
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly d: MembershipDeps) {
    this.sleep = d.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  addNode(req: AddNodeRequest): Accepted {
    const m = this.leaderMetrics();
    const id = req.node_id;
    const info = toNodeInfo(req);
    if (m.membership.retired.includes(id))
      throw new RaftError('RETIRED_NODE_ID', `node id ${id} was removed before and can never rejoin`);
    const known = m.membership.nodes[id];
    if (known && (known.api !== info.api || known.raft !== info.raft || known.admin !== info.admin)) {
      throw new ConfluxError('INVALID_REQUEST', `${id} is a member with other addresses`, {
        member: toAddresses(known),
      });
    }
    const running = this.d.queue.active('add-node', id);
    if (running) return { status: 202, operation: running };
    if (M.isVoter(m.membership, id) && !M.isJoint(m.membership))
      return { status: 200, operation: this.d.queue.done('add-node', id, 'already a voter') };
    const operation = this.d.queue.enqueue('add-node', id, (h) =>
      this.measure('add-node', this.runAdd(id, info, h)),
    );
    this.d.log.info({ node: id, operation: operation.id }, 'add node accepted');
    return { status: 202, operation };
  }

  async removeNode(id: NodeId, force: boolean): Promise<Accepted> {
    let m = this.leaderMetrics();
    if (!M.members(m.membership).includes(id)) {
      if (m.membership.retired.includes(id))
        return { status: 200, operation: this.d.queue.done('remove-node', id, 'already removed') };
      throw new ConfluxError('NODE_NOT_FOUND', `${id} is not a member of this cluster`);
    }
    if (id === this.d.nodeId)
      throw new RaftError(
        'INVALID_MEMBERSHIP',
        'the leader does not remove itself; transfer leadership first',
      );
    const running = this.d.queue.active('remove-node', id);
    if (running) return { status: 202, operation: running };
    // A leader elected a moment ago has not heard from every voter yet: give them one election
    // timeout to answer before judging them unreachable.
    for (
      let waited = 0;
      !force && !removalCheck(m, id, this.d.electionTicks).ok && waited < this.d.electionTimeoutMs;
      waited += 50
    ) {
      await this.sleep(50);
      m = this.leaderMetrics();
    }
    this.guardQuorum(m, id, force);
    const operation = this.d.queue.enqueue('remove-node', id, (h) =>
      this.measure('remove-node', this.runRemove(id, force, h)),
    );
    this.d.log.warn({ node: id, force, operation: operation.id }, 'remove node accepted');
    return { status: 202, operation };
  }

  private async runAdd(id: NodeId, info: NodeInfo, h: OperationHandle): Promise<void> {
    let m = this.leaderMetrics();
    const clusterId = m.membership.cluster?.id;
    if (!clusterId) throw new RaftError('NOT_INITIALIZED', 'the cluster has no id yet');
    if (!M.members(m.membership).includes(id)) {
      h.step('preparing');
      const members = Object.fromEntries(
        Object.entries({ ...this.d.addresses.all(), [id]: info }).map(([n, a]) => [n, toAddresses(a)]),
      );
      await this.prepareWhenUp(info, { cluster_id: clusterId, node_id: id, members });
      h.step('adding-learner');
      this.d.addresses.hint({ [id]: info });
      await this.settled(() => this.d.raft.addLearner(id, info));
    }
    h.step('catching-up');
    await this.waitCaughtUp(id, h);
    h.step('promoting');
    m = this.leaderMetrics();
    if (!M.isVoter(m.membership, id)) {
      const voters = m.membership.configs.at(-1) ?? [];
      await this.settled(() => this.d.raft.changeMembership([...voters, id]));
    }
    this.d.log.info({ node: id }, 'node added as a voter');
  }

  /** A node asked for right after its pod was created may not listen yet: retry while unreachable. */
  private async prepareWhenUp(info: NodeInfo, body: PrepareRequest): Promise<void> {
    const deadline = Date.now() + Math.min(this.d.catchUp.timeoutMs, PREPARE_PATIENCE_MS);
    for (;;) {
      try {
        await this.d.prepare(info, body);
        return;
      } catch (err) {
        const unreachable = err instanceof ConfluxError && err.code === 'NODE_UNREACHABLE';
        if (!unreachable || Date.now() > deadline) throw err;
      }
      this.leaderMetrics(); // stop early when leadership moved on
      await this.sleep(250);
    }
  }

  private async waitCaughtUp(id: NodeId, h: OperationHandle): Promise<void> {
    const { maxLag, stableMs, timeoutMs, pollMs } = this.d.catchUp;
    const started = Date.now();
    let since: number | null = null;
    for (;;) {
      const m = this.leaderMetrics();
      const matched = m.replication?.[id]?.matched ?? 0;
      const lag = Math.max(0, m.lastLogIndex - matched);
      h.lag(lag);
      const now = Date.now();
      if (lag <= maxLag) {
        since ??= now;
        if (now - since >= stableMs) return;
      } else {
        since = null;
      }
      if (now - started > timeoutMs) {
        throw new ConfluxError(
          'CATCH_UP_TIMEOUT',
          `${id} is still ${lag} entries behind after ${timeoutMs} ms; it stays a learner (retry to resume)`,
          { lag },
        );
      }
      await this.sleep(pollMs);
    }
  }

  private async runRemove(id: NodeId, force: boolean, h: OperationHandle): Promise<void> {
    const m = this.leaderMetrics();
    if (!M.members(m.membership).includes(id)) return;
    this.guardQuorum(m, id, force); // again: reachability may have changed while queued
    h.step('removing');
    if (M.isVoter(m.membership, id)) {
      const voters = (m.membership.configs.at(-1) ?? []).filter((v) => v !== id);
      await this.settled(() => this.d.raft.changeMembership(voters));
    } else {
      await this.settled(() => this.d.raft.removeLearner(id));
    }
    this.d.log.warn({ node: id }, 'node removed');
  }

  /**
   * Run a membership change once the previous one settled: the engine leaves a joint
   * configuration on its own right after it commits, so MEMBERSHIP_CHANGE_IN_PROGRESS is brief.
   */
  private async settled<T>(change: () => Promise<T>): Promise<T> {
    for (let waited = 0; ; waited += 50) {
      try {
        return await change();
      } catch (err) {
        const busy = err instanceof RaftError && err.code === 'MEMBERSHIP_CHANGE_IN_PROGRESS';
        if (!busy || waited >= SETTLE_PATIENCE_MS) throw err;
      }
      await this.sleep(50);
    }
  }

  private guardQuorum(m: RaftMetrics, id: NodeId, force: boolean): void {
    if (!M.isVoter(m.membership, id)) return;
    const check = removalCheck(m, id, this.d.electionTicks);
    if (check.remaining.length === 0)
      throw new RaftError('INVALID_MEMBERSHIP', `${id} is the last voter; a cluster needs one`);
    if (check.ok) return;
    const detail = `removing ${id} leaves ${check.remaining.length} voters of which ${check.reachable.length} are reachable (${check.reachable.join(', ') || 'none'}); a quorum needs ${check.quorum}`;
    if (!force) {
      throw new ConfluxError('QUORUM_AT_RISK', `${detail}; use ?force=true to remove it anyway`, {
        reachable: check.reachable,
        quorum: check.quorum,
      });
    }
    this.d.log.warn({ node: id, ...check }, `FORCED removal: ${detail}`);
  }

  private leaderMetrics(): RaftMetrics {
    const m = this.d.raft.metrics();
    if (m.state !== 'leader') {
      throw new RaftError('NOT_LEADER', `node ${this.d.nodeId} is not the leader`, m.currentLeader);
    }
    return m;
  }

  private async measure(kind: Operation['kind'], work: Promise<void>): Promise<void> {
    const end = this.d.metrics?.membershipChangeSeconds.startTimer({ kind });
    try {
      await work;
      this.d.metrics?.membershipChanges.inc({ kind, outcome: 'succeeded' });
    } catch (err) {
      this.d.metrics?.membershipChanges.inc({ kind, outcome: 'failed' });
      this.d.log.warn({ err, kind }, 'membership operation failed');
      throw err;
    } finally {
      end?.();
    }
  }
}

export interface RemovalCheck {
  ok: boolean;
  remaining: NodeId[];
  reachable: NodeId[];
  quorum: number;
}

/**
 * Whether the voters left after removing `id` can still decide: a majority of them must have
 * answered the leader (this node) within `electionTicks`. Pure, for the leader's metrics.
 */
export function removalCheck(m: RaftMetrics, id: NodeId, electionTicks: number): RemovalCheck {
  const remaining = (m.membership.configs.at(-1) ?? []).filter((v) => v !== id);
  const reachable = remaining.filter((v) => {
    if (v === m.id) return true;
    const ago = m.replication?.[v]?.lastContactTicksAgo;
    return ago !== null && ago !== undefined && ago <= electionTicks;
  });
  const quorum = Math.floor(remaining.length / 2) + 1;
  return { ok: reachable.length >= quorum, remaining, reachable, quorum };
}

/** The voter that will stay, holding the most of the log (ties: the lowest id, deterministic). */
export function bestTransferTarget(m: RaftMetrics, electionTicks: number): NodeId | null {
  const stays = m.membership.configs.at(-1) ?? [];
  const candidates = stays
    .filter((id) => id !== m.id && M.isVoter(m.membership, id))
    .filter((id) => {
      const ago = m.replication?.[id]?.lastContactTicksAgo;
      return ago !== null && ago !== undefined && ago <= electionTicks;
    })
    .map((id) => ({ id, matched: m.replication?.[id]?.matched ?? 0 }))
    .sort((a, b) => b.matched - a.matched || a.id.localeCompare(b.id));
  return candidates[0]?.id ?? null;
}
