// What the reconciler needs from where the cluster runs. Two implementations: Kubernetes
// (a StatefulSet and its companions, through @kubernetes/client-node) and Local (child
// `conflux-node` processes on loopback, data dirs as volumes) for `npm start` and tests. The
// reconciler's code is the same for both.

import type { AdminClientOptions } from '../../node/api/admin-client.js';
import type { ClusterStatus, ConfluxBackup, ConfluxCluster } from '../api/cluster.js';
import type { CertView, OwnedView } from '../reconcile/types.js';

/** One member slot of the set (a StatefulSet pod, or a local process), by ordinal. */
export interface MemberPod {
  ordinal: number;
  /** `<cluster>-<ordinal>`: stable across restarts of the slot. */
  name: string;
  /** The process runs (a pod Running, a child process alive). */
  running: boolean;
  /** Its readiness probe passes (`/readyz`: a member with a known leader, or a learner). */
  ready: boolean;
  /** Advertised addresses, host:port. */
  addresses: { api: string; raft: string; admin: string };
  /** The pod template revision the slot runs (absent while no process or pod exists). */
  revision?: string;
  /** The slot runs another revision than the cluster's current one: a rolling update restarts it. */
  outdated?: boolean;
}

export interface Platform {
  readonly kind: 'local' | 'kubernetes';
  /**
   * Create or update everything the cluster owns so that member slots 0..size-1 exist (services,
   * certificates, disruption budget, the StatefulSet at `size` replicas, or the processes).
   * Idempotent. Slots at `size` and above are stopped; their volumes are kept. `minAvailable`
   * sizes the disruption budget (plan prices the live voters in; default a quorum of the spec).
   */
  ensureMembers(cluster: ConfluxCluster, size: number, minAvailable?: number): Promise<void>;
  /**
   * What the cluster owns besides its member slots (Services, disruption budget, TLS Secrets) as
   * it is now, with each certificate's validity. A platform without such objects omits it.
   */
  observeOwned?(cluster: ConfluxCluster): Promise<OwnedView>;
  /** Apply the owned objects again (the StatefulSet untouched), the budget at `minAvailable`. */
  repairOwned?(cluster: ConfluxCluster, minAvailable: number): Promise<void>;
  /** Re-issue what is due of the operator-managed TLS material (the CA only when missing or expired). */
  renewCertificates?(cluster: ConfluxCluster): Promise<void>;
  /** One step of the CA rotation, then the leaf Secrets made current under the new CA set. */
  rotateCa?(cluster: ConfluxCluster, step: 'start' | 'promote' | 'finish'): Promise<void>;
  /** The client certificates issued for spec.auth's users (their Secrets), by user name. */
  observeClientCertificates?(cluster: ConfluxCluster): Promise<Record<string, CertView>>;
  /** Issue (again) the client certificates of the users `issue`, delete those of `remove`. */
  syncClientCertificates?(cluster: ConfluxCluster, issue: string[], remove: string[]): Promise<void>;
  /** How many member slots exist now (the StatefulSet's replicas). 0 before the first ensure. */
  setSize(cluster: ConfluxCluster): Promise<number>;
  /** The member slots that exist, by ordinal. */
  pods(cluster: ConfluxCluster): Promise<MemberPod[]>;
  /** Ordinals of the slots that have a volume (a PVC, a data dir), in the set or left beyond it. */
  volumes(cluster: ConfluxCluster): Promise<number[]>;
  /** Delete the volume of slot `ordinal` (which must be beyond the set size). */
  deleteVolume(cluster: ConfluxCluster, ordinal: number): Promise<void>;
  /** How the operator reaches the members' admin ports (TLS client certificate, or plain HTTP). */
  adminClient(cluster: ConfluxCluster): Promise<AdminClientOptions>;
  /** Environment for backups: S3 credentials from the cluster's referenced Secret, if any. */
  backupCredentials(
    cluster: ConfluxCluster,
  ): Promise<{ accessKeyId: string; secretAccessKey: string } | undefined>;
  /** The pod template revision of `cluster` as specified now: what a restarted member runs. */
  templateRevision(cluster: ConfluxCluster): Promise<string>;
  /**
   * Restart slot `ordinal` on the current pod template, keeping its volume (so its node id and
   * data): delete the pod (the StatefulSet, updateStrategy OnDelete, re-creates it), or stop the
   * process and start it again. Returns once the old one is asked to go (Kubernetes) or the new
   * one is started (Local).
   */
  restartMember(cluster: ConfluxCluster, ordinal: number): Promise<void>;
  /**
   * Wipe slot `ordinal` (in the set) and start it again empty: its node comes back pristine with a
   * new id. Deletes the volume and the pod (Kubernetes: the PVC, then the pod; the StatefulSet
   * re-creates both), or stops the process, deletes its data dir and starts it (Local).
   */
  recreateMember(cluster: ConfluxCluster, ordinal: number): Promise<void>;
}

/** Thrown by `writeStatus` when the object changed since it was read (HTTP 409). */
export class ConflictError extends Error {
  override readonly name = 'ConflictError';
}

/** Where ConfluxCluster and ConfluxBackup resources live (the API server, or a local store). */
/**
 * A ConfluxCluster the API server holds but the operator's schema refuses (something the CRD
 * admits that the operator cannot run): what is needed to report it without running it.
 */
export interface InvalidCluster {
  metadata: { name: string; namespace: string; uid?: string; generation?: number; resourceVersion?: string };
  /** Its status as last written (the members keep running as they were). */
  status: ClusterStatus;
  /** `field: problem`, one per schema issue. */
  problems: string[];
}

export interface ResourceStore {
  listClusters(): Promise<ConfluxCluster[]>;
  /** The cluster, or null when it is gone or does not parse (see invalidCluster). */
  getCluster(namespace: string, name: string): Promise<ConfluxCluster | null>;
  /** The cluster when it exists but does not parse; null otherwise. Stores that validate on write omit it. */
  invalidCluster?(namespace: string, name: string): Promise<InvalidCluster | null>;
  /** Replace the status of an invalid cluster; ConflictError on a stale resourceVersion. */
  writeInvalidClusterStatus?(cluster: InvalidCluster, status: ClusterStatus): Promise<void>;
  /** Replace the status subresource; ConflictError on a stale resourceVersion. */
  writeClusterStatus(cluster: ConfluxCluster, status: ClusterStatus): Promise<ConfluxCluster>;
  listBackups(namespace: string): Promise<ConfluxBackup[]>;
  writeBackupStatus(
    backup: ConfluxBackup,
    status: NonNullable<ConfluxBackup['status']>,
  ): Promise<ConfluxBackup>;
  /** A Kubernetes Event about `object` (deduplicated by the store where it can). */
  event(
    object: ConfluxCluster | ConfluxBackup,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void>;
  /** Calls `onChange` with namespace/name whenever a cluster or backup changes; returns a stop function. */
  watch(onChange: (key: { namespace: string; name: string }) => void): () => void;
}
