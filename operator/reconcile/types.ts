// The reconciler's vocabulary: what `observe` gathers, and the one next step `plan` chooses.
// Everything here is plain data, so plan() stays a pure function that table tests can drive.

import type {
  ClusterStatus as ClusterStatusDoc,
  InternalStatus,
  Operation,
} from '../../node/api/admin-contract.js';
import type { AuthChange } from '../../node/auth/permissions.js';
import type { ClusterStatus, ConfluxCluster } from '../api/cluster.js';
import type { MemberPod } from '../platform/platform.js';
import type { AuthDoc } from './plan/auth.js';
import type { Reason } from './reasons.js';

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
  /** The objects the cluster owns besides its members, and its certificates (absent: not observed). */
  owned?: OwnedView;
  /** The client users and roles (GET /_cluster/auth); null or absent: not read (see plan/auth.ts). */
  auth?: AuthDoc | null;
  /** The client certificates the operator issued for spec.auth's users, by user (absent: not observed). */
  clientCertificates?: Record<string, CertView>;
}

/** One certificate as observed: its validity, and what is wrong with it regardless of the clock. */
export interface CertView {
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the certificate (as members report what they serve and trust). */
  fingerprint: string;
  /** Missing key, not signed by the signing CA, a name it lacks...; null when only time can fault it. */
  problem: string | null;
}

/** The cluster's TLS material as its Secrets hold it (docs/OPERATOR.md, "Certificates"). */
export interface TlsView {
  /** The operator issues and renews it; otherwise the user provides it and it is only reported. */
  managed: boolean;
  /** The signing CA; null when missing or unusable (then `caProblem` says why). */
  ca: CertView | null;
  caProblem: string | null;
  /** The CA rotation recorded in the CA Secret: its phase, since when, and the CA taking over. */
  rotation: { phase: 'trust-new' | 'issue-new' | null; since: string | null; next: CertView | null };
  /** The node certificate every member serves; null when missing. */
  node: CertView | null;
  /** The operator's admin client certificate; null when missing. */
  admin: CertView | null;
}

/** What the cluster owns besides its members, as it is now. */
export interface OwnedView {
  /** Owned objects that are missing or differ from what the operator applies, one line each. */
  drift: string[];
  /** The PodDisruptionBudget's minAvailable now (null: no budget). */
  pdbMinAvailable: number | null;
  /** Null without TLS (dev-insecure). */
  tls: TlsView | null;
  /** Settings this platform cannot run the cluster with, one line each (the cluster is refused). */
  unsupported: string[];
}

/** The one step the reconciler takes next. Every action is idempotent. */
export type Action =
  /**
   * Make slots 0..size-1 exist (and everything the cluster owns up to date); the disruption
   * budget at `minAvailable` when given (plan prices the live voters in).
   */
  | { type: 'ensure-members'; size: number; minAvailable?: number }
  /** Re-apply what the cluster owns besides its StatefulSet (Services, budget, Secrets). */
  | { type: 'repair-owned'; minAvailable: number; repairs: string[] }
  /** Re-issue the certificates that are due (missing, broken, close to expiry). */
  | { type: 'renew-certificates'; reasons: string[] }
  /** One step of the CA rotation (docs/OPERATOR.md, "Certificates"). */
  | { type: 'rotate-ca'; step: 'start' | 'promote' | 'finish'; reason: string }
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
  | { type: 'recreate-member'; ordinal: number }
  /**
   * POST /_cluster/auth with `changes` (one batch, none when empty), then issue the client
   * certificates of `issueCertificates` and delete those of `removeCertificates` (plan/auth.ts).
   */
  | { type: 'sync-auth'; changes: AuthChange[]; issueCertificates: string[]; removeCertificates: string[] };

export interface Plan {
  action: Action;
  /** The status to write (computed from the observation and the action). */
  status: ClusterStatus;
  /** Events to record, once per transition (the reconciler deduplicates by reason+message). */
  events: { type: 'Normal' | 'Warning'; reason: Reason; message: string }[];
}
