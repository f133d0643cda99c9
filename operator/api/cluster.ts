// ConfluxCluster (conflux.io/v1alpha1): the single source of the CRD (crds/, generated), the
// Helm chart's copy and the operator's own validation. Defaults live here and are written into the
// CRD's OpenAPI schema, so the API server applies them; the operator parses with the same schema.

import { Cron } from 'croner';
import { z } from 'zod';
import { authSpecSchema } from './auth.js';

export const GROUP = 'conflux.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const DEFAULT_IMAGE = 'ghcr.io/conflux-io/conflux:0.1.0';

/** A Kubernetes resource quantity (`1Gi`, `500m`, `2`). */
export const quantitySchema = z
  .string()
  .regex(/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$/, 'not a Kubernetes quantity');

const dnsLabel = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'a DNS label (RFC 1123)');

export const resourcesSchema = z.strictObject({
  requests: z.record(z.string(), quantitySchema).optional(),
  limits: z.record(z.string(), quantitySchema).optional(),
});

export const secretKeyRefSchema = z.strictObject({
  name: dnsLabel.describe('Secret in the cluster namespace'),
  accessKeyIdKey: z.string().default('AWS_ACCESS_KEY_ID'),
  secretAccessKeyKey: z.string().default('AWS_SECRET_ACCESS_KEY'),
});

const S3_ONLY = 'endpoint, region, pathStyle and credentialsSecret apply only to s3:// destinations';

export const backupDestinationSchema = z
  .strictObject({
    uri: z
      .string()
      .regex(/^(s3|file):\/\//, 'expected s3://bucket/prefix or file:///dir')
      .describe('Where backups go: s3://bucket/prefix or file:///dir'),
    endpoint: z
      .string()
      .regex(/^https?:\/\//, 'an http(s) URL')
      .optional()
      .describe('S3-compatible endpoint'),
    region: z.string().optional(),
    pathStyle: z.boolean().default(false).describe('Path-style S3 requests (MinIO, Ceph)'),
    credentialsSecret: secretKeyRefSchema.optional(),
  })
  .check((ctx) => {
    const d = ctx.value;
    if (!d.uri.startsWith('s3://') && (d.endpoint || d.region || d.pathStyle || d.credentialsSecret))
      ctx.issues.push({ code: 'custom', message: S3_ONLY, input: d });
  });

export const retentionSchema = z
  .strictObject({
    keepLast: z.int().min(1).optional().describe('Keep at least the newest N backups'),
    maxAgeDays: z.number().positive().optional().describe('Keep every backup younger than this'),
  })
  .refine(
    (r) => r.keepLast !== undefined || r.maxAgeDays !== undefined,
    'backup.retention needs keepLast, maxAgeDays or both',
  );

/**
 * The variables the operator sets itself (identity, addresses, TLS): a node's identity and data
 * must survive every rolling update, so spec.env may not replace them.
 */
export const RESERVED_ENV = [
  'POD_NAME',
  'CONFLUX_NODE_ID',
  'CONFLUX_NODE_ID_PREFIX',
  'CONFLUX_DATA_DIR',
  'CONFLUX_API_ADDR',
  'CONFLUX_ADMIN_ADDR',
  'CONFLUX_RAFT_ADDR',
  'CONFLUX_ADVERTISE_API_ADDR',
  'CONFLUX_ADVERTISE_ADMIN_ADDR',
  'CONFLUX_ADVERTISE_RAFT_ADDR',
  'CONFLUX_INITIAL_CLUSTER',
  'CONFLUX_BOOTSTRAP_EXPECT',
  'CONFLUX_JOIN',
  'CONFLUX_TLS_CERT',
  'CONFLUX_TLS_KEY',
  'CONFLUX_TLS_CA',
  'CONFLUX_ADMIN_CA',
  'CONFLUX_DEV_INSECURE',
] as const;

export const envVarSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
    .max(128)
    .refine(
      (n) => !(RESERVED_ENV as readonly string[]).includes(n),
      'set by the operator; spec.env may not replace it',
    ),
  value: z.string().max(4096),
});

/** A cron expression croner accepts (5 fields; seconds and years optional), evaluated in UTC. */
const cronSchema = z
  .string()
  .min(1)
  .max(128)
  .refine((s) => {
    try {
      new Cron(s, { paused: true });
      return true;
    } catch {
      return false;
    }
  }, 'not a valid cron expression (for example "0 */6 * * *")');

export const clusterSpecSchema = z.strictObject({
  replicas: z.int().min(1).max(99).default(3).describe('Voting members'),
  image: z.string().min(1).default(DEFAULT_IMAGE),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  resources: resourcesSchema.optional(),
  storage: z
    .strictObject({
      size: quantitySchema.default('1Gi'),
      storageClassName: z.string().optional(),
      reclaimPolicy: z
        .enum(['Retain', 'Delete'])
        .default('Delete')
        .describe("What happens to a member's volume when scale-down removes it"),
    })
    .prefault({}),
  raft: z
    .strictObject({
      tickMs: z.int().min(1).max(1000).default(50),
      electionTicks: z.int().min(3).max(100).default(10),
      snapshotEntries: z.int().min(100).default(10_000),
    })
    .prefault({}),
  tls: z
    .strictObject({
      operatorManaged: z
        .boolean()
        .default(true)
        .describe('Operator-managed CA and certificates (default), or Secrets the user provides'),
      nodeSecretName: dnsLabel
        .optional()
        .describe('With operatorManaged false: a Secret with ca.crt, tls.crt, tls.key valid for every pod'),
      adminSecretName: dnsLabel
        .optional()
        .describe('With operatorManaged false: the admin client certificate the operator presents'),
    })
    .refine(
      (t) =>
        !(t.operatorManaged === false) || (t.nodeSecretName !== undefined && t.adminSecretName !== undefined),
      'tls.nodeSecretName and tls.adminSecretName are required when tls.operatorManaged is false',
    )
    .refine(
      (t) =>
        t.operatorManaged === false || (t.nodeSecretName === undefined && t.adminSecretName === undefined),
      'tls.nodeSecretName and tls.adminSecretName are used only when tls.operatorManaged is false',
    )
    .prefault({}),
  backup: z
    .strictObject({
      schedule: cronSchema.describe('Cron expression (5 fields, UTC)'),
      destination: backupDestinationSchema,
      retention: retentionSchema.optional(),
      suspend: z.boolean().default(false),
    })
    .optional(),
  restore: z
    .strictObject({
      snapshotUri: z
        .string()
        .regex(/^(s3|file):\/\//, 'expected the s3:// or file:// URI of a backup')
        .describe('The backup to restore from (its .snap object or its manifest)'),
      expectedClusterId: z.string().optional(),
    })
    .optional()
    .describe('Honoured only while the cluster was never bootstrapped; immutable after creation'),
  env: z
    .array(envVarSchema)
    .max(64)
    .optional()
    .refine(
      (list) => new Set(list?.map((e) => e.name)).size === (list?.length ?? 0),
      'env names must be unique',
    )
    .describe('Extra environment variables for every node (a change rolls the members one at a time)'),
  rollingUpdate: z
    .strictObject({
      readyTimeoutSeconds: z
        .int()
        .min(10)
        .max(3600)
        .optional()
        .describe(
          'How long a restarted member may take to be Ready and caught up (default 180) before the roll stalls',
        ),
    })
    .optional(),
  recovery: z
    .strictObject({
      forceNewClusterFrom: dnsLabel.describe(
        'The surviving member (its node id or its pod name) to rebuild a one-member cluster from',
      ),
    })
    .optional()
    .describe(
      'Quorum-loss recovery, a last resort: acted on only while a majority of the members is gone; remove it once status.recoveredFrom records the recovery',
    ),
  availability: z
    .enum(['KeepQuorum', 'AllowDowntime'])
    .default('KeepQuorum')
    .describe(
      'What node drains may do: KeepQuorum (default) evicts only while the live voters keep a quorum, which blocks drains of a 1- or 2-member cluster; AllowDowntime always lets one member go',
    ),
  auth: authSpecSchema.optional(),
  paused: z.boolean().default(false).describe('Stop every action on this cluster'),
});
export type ClusterSpec = z.output<typeof clusterSpecSchema>;

export const CONDITION_TYPES = [
  'Ready',
  'Available',
  'Progressing',
  'Degraded',
  'Bootstrapped',
  'BackupSucceeded',
  'Stalled',
] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

export const conditionSchema = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string(),
  message: z.string(),
  lastTransitionTime: z.string(),
  observedGeneration: z.int().optional(),
});
export type Condition = z.infer<typeof conditionSchema>;

export const PHASES = [
  'Pending',
  'Bootstrapping',
  'Restoring',
  'Running',
  'Scaling',
  'Degraded',
  'Paused',
  'Failed',
] as const;

export const memberStatusSchema = z.object({
  id: z.string(),
  pod: z.string().optional(),
  role: z.string(),
  reachable: z.boolean(),
  lag: z.int().nullable().optional(),
});

/** The step in flight, so a restarted operator resumes it instead of starting another. */
export const operationStatusSchema = z.object({
  kind: z.enum([
    'Bootstrap',
    'Restore',
    'ScaleUp',
    'ScaleDown',
    'RollingUpdate',
    'Replace',
    'Recovery',
    'CertificateRenewal',
    'CARotation',
    'Repair',
    'Auth',
  ]),
  /** The member (pod ordinal) the step is about. */
  ordinal: z.int().min(0).optional(),
  step: z.string(),
  /** The admin API's operation id (add/remove), when one is running. */
  operationId: z.string().optional(),
  /** Replace: the id of the lost member the slot's new node replaces. */
  replaces: z.string().optional(),
  /** RollingUpdate: the pod template revision the member is being rolled to. */
  revision: z.string().optional(),
  startedAt: z.string(),
});
export type OperationStatus = z.infer<typeof operationStatusSchema>;

export const clusterStatusSchema = z.object({
  observedGeneration: z.int().optional(),
  phase: z.enum(PHASES).optional(),
  conditions: z.array(conditionSchema).optional(),
  replicas: z.int().optional(),
  readyReplicas: z.int().optional(),
  selector: z.string().optional(),
  clusterId: z.string().optional(),
  leaderId: z.string().optional(),
  term: z.int().optional(),
  faultTolerance: z.int().optional(),
  members: z.array(memberStatusSchema).optional(),
  lastBackup: z.object({ time: z.string(), uri: z.string(), revision: z.int().optional() }).optional(),
  nextBackup: z.string().optional(),
  restoredFrom: z.object({ clusterId: z.string(), uri: z.string() }).optional(),
  /** The last quorum-loss recovery: the cluster it replaced and the survivor it kept. */
  recoveredFrom: z
    .object({
      clusterId: z.string(),
      nodeId: z.string(),
      pod: z.string().optional(),
      at: z.string(),
      /** The spec.recovery.forceNewClusterFrom it consumed; dropped once spec.recovery is removed. */
      request: z.string().optional(),
    })
    .optional(),
  operation: operationStatusSchema.nullable().optional(),
  /** The client users and roles the operator manages (spec.auth's, and those it made still to delete). */
  auth: z.object({ users: z.array(z.string()), roles: z.array(z.string()) }).optional(),
});
export type ClusterStatus = z.infer<typeof clusterStatusSchema>;

export const objectMetaSchema = z.looseObject({
  name: dnsLabel,
  namespace: z.string().default('default'),
  uid: z.string().optional(),
  generation: z.int().optional(),
  resourceVersion: z.string().optional(),
  creationTimestamp: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const confluxClusterSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('ConfluxCluster'),
  metadata: objectMetaSchema,
  spec: clusterSpecSchema.prefault({}),
  status: clusterStatusSchema.optional(),
});
export type ConfluxCluster = z.output<typeof confluxClusterSchema>;

/** An on-demand backup (GitOps-friendly: a resource, not an imperative call). */
export const backupSpecSchema = z.strictObject({
  clusterName: dnsLabel,
  /** Defaults to the cluster's spec.backup.destination. */
  destination: backupDestinationSchema.optional(),
});

export const backupStatusSchema = z.object({
  observedGeneration: z.int().optional(),
  phase: z.enum(['Pending', 'Running', 'Succeeded', 'Failed']).optional(),
  conditions: z.array(conditionSchema).optional(),
  uri: z.string().optional(),
  clusterId: z.string().optional(),
  revision: z.int().optional(),
  bytes: z.int().optional(),
  startedAt: z.string().optional(),
  completedAt: z.string().optional(),
  message: z.string().optional(),
});

export const confluxBackupSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('ConfluxBackup'),
  metadata: objectMetaSchema,
  spec: backupSpecSchema,
  status: backupStatusSchema.optional(),
});
export type ConfluxBackup = z.output<typeof confluxBackupSchema>;
