// The cluster-operations API contract: zod schemas of every request and response body of the
// admin port (docs/ARCHITECTURE.md §7). The node validates requests with them; the operator and
// the CLI import them to validate answers. Field names follow the seed (snake_case).

import { z } from 'zod';
import { hostPortSchema } from '../shapes/address.js';
import { clusterIdSchema } from '../shapes/cluster-id.js';
import { nodeIdSchema } from '../shapes/node-id.js';

// The shapes every part of the node shares, re-exported for the operator and the CLI.
export { clusterIdSchema, hostPortSchema, nodeIdSchema };

/** A member's advertised addresses. */
export const memberAddressesSchema = z.strictObject({
  api_address: hostPortSchema,
  raft_address: hostPortSchema,
  admin_address: hostPortSchema,
});
export type MemberAddresses = z.infer<typeof memberAddressesSchema>;

// -- Requests ------------------------------------------------------------------------------------

export const addNodeRequestSchema = memberAddressesSchema.extend({ node_id: nodeIdSchema });
export type AddNodeRequest = z.infer<typeof addNodeRequestSchema>;

export const transferRequestSchema = z.strictObject({ target_node_id: nodeIdSchema.optional() });

export const initializeRequestSchema = z.strictObject({
  members: z
    .record(nodeIdSchema, memberAddressesSchema)
    .refine((m) => Object.keys(m).length > 0, 'at least one member'),
});
export type InitializeRequest = z.infer<typeof initializeRequestSchema>;

export const backupRequestSchema = z.strictObject({
  /** `s3://bucket/prefix` or `file:///path`; defaults to the node's --backup-destination. */
  destination: z.string().min(1).max(2048).optional(),
  /** Back up even when nothing changed since the newest backup in the destination. */
  force: z.boolean().optional(),
});

export const restoreRequestSchema = z.strictObject({
  snapshot_uri: z.string().min(1).max(2048),
  /** Refuse unless the backup was taken from this cluster. */
  expected_cluster_id: clusterIdSchema.optional(),
});

/**
 * Quorum-loss recovery on the node that receives it (never forwarded): it becomes the only voter
 * of a new cluster that keeps its whole log. `node_id` must be the receiving node's own id.
 */
export const forceNewClusterRequestSchema = z.strictObject({
  node_id: nodeIdSchema,
  /** Refuse unless the node still belongs to this (old) cluster; a retry after success is answered again. */
  expected_cluster_id: clusterIdSchema.optional(),
  /** Recover even though a quorum of the voters still answers (splits the cluster: last resort). */
  force: z.boolean().optional(),
});
export type ForceNewClusterRequest = z.infer<typeof forceNewClusterRequestSchema>;

/** A node asking the bootstrap node (or any member) to be part of the cluster. */
export const joinRequestSchema = memberAddressesSchema.extend({
  node_id: nodeIdSchema,
  /** The cluster this node already belongs to, if any: a join into another cluster is refused. */
  cluster_id: clusterIdSchema.nullable(),
});
export type JoinRequest = z.infer<typeof joinRequestSchema>;

/** Sent by the leader to a node about to be added, so it knows the cluster it joins and its members. */
export const prepareRequestSchema = z.strictObject({
  cluster_id: clusterIdSchema,
  node_id: nodeIdSchema,
  members: z.record(nodeIdSchema, memberAddressesSchema),
});
export type PrepareRequest = z.infer<typeof prepareRequestSchema>;

// -- Responses -----------------------------------------------------------------------------------

export const roleSchema = z.enum(['Leader', 'Follower', 'Learner', 'Candidate']);
export type Role = z.infer<typeof roleSchema>;

export const leaderResponseSchema = z.object({
  leader_id: nodeIdSchema,
  term: z.number().int().nonnegative(),
  api_address: z.string().nullable(),
  raft_address: z.string().nullable(),
  admin_address: z.string().nullable(),
});

export const operationStateSchema = z.enum(['pending', 'running', 'succeeded', 'failed']);

export const operationSchema = z.object({
  id: z.string(),
  kind: z.enum(['add-node', 'remove-node']),
  node_id: nodeIdSchema,
  state: operationStateSchema,
  /** The step in progress or reached last, for example `catching-up`. */
  step: z.string(),
  created_at: z.string(),
  finished_at: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  /** Learner catch-up progress (add-node only). */
  lag: z.number().int().nullable(),
});
export type Operation = z.infer<typeof operationSchema>;

export const recoveredFromSchema = z.object({
  /** The cluster that lost its quorum. */
  cluster_id: z.string(),
  /** The survivor whose log the new cluster kept. */
  node_id: z.string(),
  /** The survivor's last log index when it was recovered. */
  index: z.number().int(),
  at: z.string(),
});

/** One certificate a node has loaded. */
export const certSummarySchema = z.object({
  subject: z.string(),
  issuer: z.string(),
  serial: z.string(),
  fingerprint_sha256: z.string(),
  not_before: z.string(),
  not_after: z.string(),
});

/** The TLS material a node serves with right now (null without TLS). */
export const tlsStatusSchema = z.object({
  cert: certSummarySchema,
  /** Every CA the node trusts for members and clients (the bundle, in file order). */
  ca: z.array(certSummarySchema),
  loaded_at: z.string(),
  reloads: z.number().int().nonnegative(),
  reload_failures: z.number().int().nonnegative(),
  /** Why the TLS files on disk are refused (the previous material stays in use); null when not. */
  last_error: z.string().nullable(),
});

export const quotaStatusSchema = z.object({
  db_bytes: z.number().int().nonnegative(),
  quota_bytes: z.number().int().positive(),
  alarm: z.boolean(),
});

/** What `/_internal/status` answers: one node's own view. */
export const internalStatusSchema = z.object({
  node_id: nodeIdSchema,
  cluster_id: z.string().nullable(),
  initialized: z.boolean(),
  status: roleSchema,
  current_term: z.number().int().nonnegative(),
  leader_id: z.string().nullable(),
  log_index: z.number().int().nonnegative(),
  committed: z.number().int().nonnegative(),
  last_applied_log: z.number().int().nonnegative(),
  voters: z.array(z.array(z.string())),
  learners: z.array(z.string()),
  nodes: z.record(z.string(), memberAddressesSchema),
  /** Only on the leader: each other member's replication state. */
  replication: z
    .record(
      z.string(),
      z.object({ matched: z.number().int(), last_contact_ms: z.number().nullable(), state: z.string() }),
    )
    .nullable(),
  restored_from: z.object({ cluster_id: z.string(), uri: z.string(), index: z.number().int() }).nullable(),
  /** Term of the last log entry: with log_index, how up to date this node's log is. */
  last_log_term: z.number().int().nonnegative().optional(),
  /** Set when this cluster was rebuilt from one survivor after a quorum loss. */
  recovered_from: recoveredFromSchema.nullable().optional(),
  /** The TLS material this node serves with (null without TLS; absent from older nodes). */
  tls: tlsStatusSchema.nullable().optional(),
  /** The storage quota: stored bytes, the quota, and whether the NOSPACE alarm is on (absent from older nodes). */
  quota: quotaStatusSchema.optional(),
});
export type InternalStatus = z.infer<typeof internalStatusSchema>;

export const memberStatusSchema = z.object({
  status: roleSchema.or(z.literal('Unknown')),
  is_reachable: z.boolean(),
  log_index: z.number().int().nullable(),
  last_applied_log: z.number().int().nullable(),
  /** How far this member's log is behind the leader's (null when unknown). */
  lag: z.number().int().nullable(),
  voter: z.boolean(),
  api_address: z.string().nullable(),
  admin_address: z.string().nullable(),
  /** The leader this member sees (split views are reported in `errors`). */
  leader_id: z.string().nullable(),
  term: z.number().int().nullable(),
});

export const clusterStatusSchema = z.object({
  cluster_id: z.string().nullable(),
  leader_id: z.string().nullable(),
  current_term: z.number().int().nonnegative(),
  last_applied_log: z.number().int().nonnegative(),
  nodes: z.record(z.string(), memberStatusSchema),
  voters: z.number().int().nonnegative(),
  /** How many voters may fail (given those reachable now) before the cluster loses its quorum. */
  fault_tolerance: z.number().int(),
  healthy: z.boolean(),
  errors: z.array(z.string()),
  restored_from: internalStatusSchema.shape.restored_from,
  /**
   * Members whose NOSPACE alarm is on (their stored bytes reached their quota: writes that add
   * data are refused until deletes free space). Not counted against `healthy`. Absent from older nodes.
   */
  alarms: z
    .array(
      z.object({
        node_id: z.string(),
        alarm: z.literal('NOSPACE'),
        db_bytes: z.number(),
        quota_bytes: z.number(),
      }),
    )
    .optional(),
});
export type ClusterStatus = z.infer<typeof clusterStatusSchema>;

export const backupResponseSchema = z.object({
  skipped: z.boolean(),
  uri: z.string(),
  manifest_uri: z.string(),
  cluster_id: z.string(),
  last_index: z.number().int(),
  revision: z.number().int(),
  bytes: z.number().int(),
  sha256: z.string(),
  created_at: z.string(),
  /** Backups removed by retention in this call. */
  deleted: z.array(z.string()),
});

export const restoreResponseSchema = z.object({
  cluster_id: z.string(),
  restored_from: z.object({ cluster_id: z.string(), uri: z.string(), index: z.number().int() }),
  node_id: z.string(),
  keys: z.number().int(),
  revision: z.number().int(),
});

export const initializeResponseSchema = z.object({
  cluster_id: z.string(),
  members: z.record(z.string(), memberAddressesSchema),
});

export const forceNewClusterResponseSchema = z.object({
  cluster_id: z.string(),
  node_id: z.string(),
  recovered_from: recoveredFromSchema,
  /** The new cluster's last log index right after the recovery. */
  log_index: z.number().int(),
});
export type ForceNewClusterResponse = z.infer<typeof forceNewClusterResponseSchema>;
