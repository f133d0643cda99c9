// The reconciler's vocabulary: what `observe` gathers, and the one next step `plan` chooses.
// Everything here is plain data, so plan() stays a pure function that table tests can drive.

import type {
  ClusterStatus as ClusterStatusDoc,
  InternalStatus,
  Operation,
} from '../../node/api/admin-contract.js';
import type { ClusterStatus, ConfluxCluster } from '../api/cluster.js';
import type { MemberPod } from '../platform/platform.js';

/** One member slot as observed: the pod, and what its node said on `/_internal/status`. */
export interface SlotView {
  pod: MemberPod;
  /** Null when the node did not answer (not running yet, or unreachable). */
  node: InternalStatus | null;
  /** Why `node` is null, for conditions and events. */
  error?: string;
}

export interface Observation {
  now: Date;
  cluster: ConfluxCluster;
  /** Member slots that exist now (the StatefulSet's replicas). */
  setSize: number;
  /** Every existing slot by ordinal, 0..setSize-1 (and any left beyond it, still terminating). */
  slots: SlotView[];
  /** Ordinals that have a volume, in the set or left beyond it by a scale-down. */
  volumes: number[];
  /** `/_cluster/status` from a member that answered (null before bootstrap or when none did). */
  status: ClusterStatusDoc | null;
  /** The admin operation named in `cluster.status.operation.operationId`, if it could be read. */
  operation: Operation | null;
  /** The pod template revision the spec asks for now (what a restarted member runs). */
  templateRevision?: string;
}

/** The one step the reconciler takes next. Every action is idempotent. */
export type Action =
  /** Make slots 0..size-1 exist (and everything the cluster owns up to date). */
  | { type: 'ensure-members'; size: number }
  /** POST /_cluster/initialize on slot 0 with every slot 0..size-1 as a member. */
  | { type: 'initialize'; ordinals: number[] }
  /** POST /_cluster/restore on slot 0. */
  | { type: 'restore'; snapshotUri: string; expectedClusterId?: string }
  /** POST /_cluster/nodes for the node in slot `ordinal` (safe add, learner first). */
  | { type: 'add-member'; ordinal: number }
  /** Move leadership away from the node in slot `ordinal` (POST /_cluster/leader/transfer). */
  | { type: 'transfer-leader'; ordinal: number }
  /** DELETE /_cluster/nodes/{id} for the node `nodeId` (in slot `ordinal`, or gone). */
  | { type: 'remove-member'; ordinal: number; nodeId: string }
  /** Delete the volume of a slot that left the set (reclaimPolicy Delete). */
  | { type: 'delete-volume'; ordinal: number }
  /** Nothing to do until something changes; look again after `requeueMs`. */
  | { type: 'wait'; reason: string; requeueMs: number }
  /** Converged. */
  | { type: 'none' }
  /** Restart slot `ordinal` on the current pod template, keeping its volume (rolling update). */
  | { type: 'restart-member'; ordinal: number; revision: string }
  /**
   * POST /_cluster/force-new-cluster on the node `nodeId` in slot `ordinal` (quorum-loss recovery,
   * only from spec.recovery): it becomes the one voter of a new cluster that keeps its log.
   */
  | { type: 'force-new-cluster'; ordinal: number; nodeId: string; expectedClusterId: string; request: string }
  /** Wipe slot `ordinal`'s volume and start it again empty (a node of a cluster that was replaced). */
  | { type: 'recreate-member'; ordinal: number };

export interface Plan {
  action: Action;
  /** The status to write (computed from the observation and the action). */
  status: ClusterStatus;
  /** Events to record, once per transition (the reconciler deduplicates by reason+message). */
  events: { type: 'Normal' | 'Warning'; reason: string; message: string }[];
}
