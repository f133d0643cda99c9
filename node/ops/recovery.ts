// POST /_cluster/force-new-cluster: quorum-loss recovery, etcd's --force-new-cluster. The node
// that receives the request (it is never forwarded) becomes the only voter of a NEW cluster that
// keeps its whole log; the other members are then added back, with new ids, by the add flow.
//
// What it does to the data, and why it is a last resort:
// - Every entry this node holds is kept, and every one of them becomes committed — including
//   entries the old cluster never committed (a write whose client saw a timeout may appear). Entries
//   the old cluster did commit but this node never received are lost: recover from the most
//   up-to-date survivor (highest last log term, then index; the operator checks this).
// - The new cluster has a new id that records where it came from (`recovered_from`): the peer
//   transport refuses members of the old cluster id, and every old member id is retired, so a
//   returning old member can never mix its log with the new one. Old members must be wiped.
//
// Refusals: a body that names another node (INVALID_REQUEST, against a request sent to the wrong
// node); a pristine node (NOTHING_TO_RECOVER); voters that still have a reachable quorum
// (QUORUM_INTACT: that is no quorum loss) unless `force`; a node that left `expected_cluster_id`
// for another cluster than the one recovered from it (CLUSTER_MISMATCH). The same request again
// after a success answers the same document, so a caller may retry.
//
// The Raft node is not restarted: the core appends the new single-voter membership in a new term
// and commits it at once (RaftCore.forceNewCluster), which is durable in the log like any entry.
// Then the node snapshots and compacts its log behind that entry: a node added later starts from
// the snapshot, never from the old cluster's entries, whose memberships carry the old cluster id
// (a new node replaying them would take that id and refuse the new cluster's leader for good).

import { randomUUID } from 'node:crypto';
import type {
  ClusterStatus,
  ForceNewClusterRequest,
  ForceNewClusterResponse,
} from '../api/admin-contract.js';
import { ConfluxError } from '../errors.js';
import { isInitialized } from '../raft/membership.js';
import type { MembershipChange } from '../raft/raft-node.js';
import type { ClusterIdentity, NodeId, NodeInfo, RaftMetrics, SnapshotMeta } from '../raft/types.js';
import { waitForLeadership } from './leadership.js';
import { recoveredFromDoc } from './status.js';

/** What the recovery needs from the Raft node (a `RaftNode` fits). */
export interface RecoveryRaft {
  metrics(): RaftMetrics;
  forceNewCluster(cluster: ClusterIdentity, self: NodeInfo): Promise<MembershipChange>;
  triggerSnapshot(): Promise<SnapshotMeta | null>;
}

export interface RecoveryLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RecoveryServiceDeps {
  raft: RecoveryRaft;
  nodeId: NodeId;
  /** This node's advertised addresses, the only ones the new membership records. */
  selfInfo: NodeInfo;
  /** The cluster's aggregated status as this node sees it (which voters answer). */
  clusterStatus(): Promise<ClusterStatus>;
  logger: RecoveryLogger;
  /** Id of the new cluster (default `crypto.randomUUID()`). */
  mintClusterId?: () => string;
  now?: () => Date;
  /** How long to wait for this node to lead after the recovery (default 10 s). */
  leaderTimeoutMs?: number;
}

export class RecoveryService {
  private running = false;

  constructor(private readonly deps: RecoveryServiceDeps) {}

  async run(req: ForceNewClusterRequest): Promise<ForceNewClusterResponse> {
    if (this.running) throw new ConfluxError('OPERATION_IN_PROGRESS', 'a recovery is already running');
    this.running = true;
    try {
      return await this.recover(req);
    } finally {
      this.running = false;
    }
  }

  private async recover(req: ForceNewClusterRequest): Promise<ForceNewClusterResponse> {
    const { raft, nodeId, logger } = this.deps;
    if (req.node_id !== nodeId) {
      throw new ConfluxError(
        'INVALID_REQUEST',
        `this is node ${nodeId}, the request names ${req.node_id}: force-new-cluster acts only on the node named`,
      );
    }
    const m = raft.metrics();
    const cluster = m.membership.cluster;
    const replay = await this.replay(m, req);
    if (replay) return replay;
    if (!isInitialized(m.membership) && m.lastLogIndex === 0) {
      throw new ConfluxError(
        'NOTHING_TO_RECOVER',
        `node ${nodeId} is pristine: it holds no cluster to recover`,
      );
    }
    const oldId = cluster?.id ?? null;
    if (req.expected_cluster_id !== undefined && req.expected_cluster_id !== oldId) {
      throw new ConfluxError(
        'CLUSTER_MISMATCH',
        `node ${nodeId} belongs to cluster ${oldId ?? '(none)'}, the request expects ${req.expected_cluster_id}`,
        { expected: req.expected_cluster_id, actual: oldId },
      );
    }
    if (!req.force) await this.requireQuorumLoss();

    const recoveredFrom = {
      clusterId: oldId ?? '',
      nodeId,
      index: m.lastLogIndex,
      at: (this.deps.now?.() ?? new Date()).toISOString(),
    };
    const identity: ClusterIdentity = {
      id: this.deps.mintClusterId?.() ?? randomUUID(),
      restoredFrom: cluster?.restoredFrom ?? null,
      recoveredFrom,
    };
    const change = await raft.forceNewCluster(identity, this.deps.selfInfo);
    await this.compactBehind(change.index ?? raft.metrics().lastLogIndex);
    logger.warn(
      { clusterId: identity.id, recoveredFrom, forced: req.force === true },
      'forced a new cluster from this node after a quorum loss: it is the only voter; add the other members back',
    );
    await waitForLeadership(this.deps.raft, {
      nodeId: this.deps.nodeId,
      done: 'the new cluster is formed',
      timeoutMs: this.deps.leaderTimeoutMs,
    });
    return {
      cluster_id: identity.id,
      node_id: nodeId,
      recovered_from: recoveredFromDoc(recoveredFrom),
      log_index: change.index ?? raft.metrics().lastLogIndex,
    };
  }

  /**
   * Snapshot at or after the new cluster's first membership (`index`), so the log no longer holds
   * the old cluster's entries (see the file header).
   */
  private async compactBehind(index: number): Promise<void> {
    const { raft } = this.deps;
    // A snapshot already under way (the periodic one) is older: then take another.
    for (let tries = 0; tries < 3 && (raft.metrics().snapshot?.index ?? 0) < index; tries++) {
      await raft.triggerSnapshot();
    }
  }

  /** The answer to a retried request: this node already leads the cluster recovered from it. */
  private async replay(m: RaftMetrics, req: ForceNewClusterRequest): Promise<ForceNewClusterResponse | null> {
    const cluster = m.membership.cluster;
    const from = cluster?.recoveredFrom;
    if (!cluster || !from || from.nodeId !== this.deps.nodeId) return null;
    if (req.expected_cluster_id === undefined || req.expected_cluster_id !== from.clusterId) return null;
    // A crash may have come between the recovery and its snapshot: the retry finishes the job.
    await this.compactBehind(from.index + 1);
    return {
      cluster_id: cluster.id,
      node_id: this.deps.nodeId,
      recovered_from: recoveredFromDoc(from),
      log_index: m.lastLogIndex,
    };
  }

  private async requireQuorumLoss(): Promise<void> {
    const doc = await this.deps.clusterStatus();
    if (doc.fault_tolerance < 0) return;
    const reachable = Object.entries(doc.nodes)
      .filter(([, n]) => n.voter && n.is_reachable)
      .map(([id]) => id);
    throw new ConfluxError(
      'QUORUM_INTACT',
      `the voters still have a reachable quorum (${reachable.join(', ')} answer): this is no quorum loss, so the cluster is not rebuilt; pass force: true only if those members are gone for good`,
      { reachable },
    );
  }
}
