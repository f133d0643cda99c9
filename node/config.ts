// The node's configuration: command-line flags and CONFLUX_* environment variables, parsed by one
// zod schema. A bad value stops the node at start with a message naming the setting.

import { parseArgs } from 'node:util';
import { z } from 'zod';
import { hostPortSchema, isLoopback } from './shapes/address.js';
import { nodeIdPrefixSchema, nodeIdSchema } from './shapes/node-id.js';

/** Each setting: its flag, its environment variable, and whether it takes a value. */
const SETTINGS = {
  nodeId: { flag: 'node-id', env: 'CONFLUX_NODE_ID' },
  nodeIdPrefix: { flag: 'node-id-prefix', env: 'CONFLUX_NODE_ID_PREFIX' },
  dataDir: { flag: 'data-dir', env: 'CONFLUX_DATA_DIR' },
  apiAddr: { flag: 'api-addr', env: 'CONFLUX_API_ADDR' },
  adminAddr: { flag: 'admin-addr', env: 'CONFLUX_ADMIN_ADDR' },
  raftAddr: { flag: 'raft-addr', env: 'CONFLUX_RAFT_ADDR' },
  metricsAddr: { flag: 'metrics-addr', env: 'CONFLUX_METRICS_ADDR' },
  advertiseApiAddr: { flag: 'advertise-api-addr', env: 'CONFLUX_ADVERTISE_API_ADDR' },
  advertiseAdminAddr: { flag: 'advertise-admin-addr', env: 'CONFLUX_ADVERTISE_ADMIN_ADDR' },
  advertiseRaftAddr: { flag: 'advertise-raft-addr', env: 'CONFLUX_ADVERTISE_RAFT_ADDR' },
  initialCluster: { flag: 'initial-cluster', env: 'CONFLUX_INITIAL_CLUSTER' },
  bootstrapExpect: { flag: 'bootstrap-expect', env: 'CONFLUX_BOOTSTRAP_EXPECT' },
  join: { flag: 'join', env: 'CONFLUX_JOIN' },
  tlsCert: { flag: 'tls-cert', env: 'CONFLUX_TLS_CERT' },
  tlsKey: { flag: 'tls-key', env: 'CONFLUX_TLS_KEY' },
  tlsCa: { flag: 'tls-ca', env: 'CONFLUX_TLS_CA' },
  adminCa: { flag: 'admin-ca', env: 'CONFLUX_ADMIN_CA' },
  tlsReloadIntervalMs: { flag: 'tls-reload-interval-ms', env: 'CONFLUX_TLS_RELOAD_INTERVAL_MS' },
  devInsecure: { flag: 'dev-insecure', env: 'CONFLUX_DEV_INSECURE', boolean: true },
  devInsecureNetworks: { flag: 'dev-insecure-networks', env: 'CONFLUX_DEV_INSECURE_NETWORKS' },
  followerRedirect: { flag: 'follower-redirect', env: 'CONFLUX_FOLLOWER_REDIRECT', boolean: true },
  tickMs: { flag: 'tick-ms', env: 'CONFLUX_TICK_MS' },
  electionTicks: { flag: 'election-ticks', env: 'CONFLUX_ELECTION_TICKS' },
  snapshotEntries: { flag: 'snapshot-entries', env: 'CONFLUX_SNAPSHOT_ENTRIES' },
  snapshotLogMib: { flag: 'snapshot-log-mib', env: 'CONFLUX_SNAPSHOT_LOG_MIB' },
  maxKeyBytes: { flag: 'max-key-bytes', env: 'CONFLUX_MAX_KEY_BYTES' },
  maxValueBytes: { flag: 'max-value-bytes', env: 'CONFLUX_MAX_VALUE_BYTES' },
  maxBodyBytes: { flag: 'max-body-bytes', env: 'CONFLUX_MAX_BODY_BYTES' },
  rateLimitPerSecond: { flag: 'rate-limit', env: 'CONFLUX_RATE_LIMIT' },
  watchHistory: { flag: 'watch-history', env: 'CONFLUX_WATCH_HISTORY' },
  requestTimeoutMs: { flag: 'request-timeout-ms', env: 'CONFLUX_REQUEST_TIMEOUT_MS' },
  maxResponseBytes: { flag: 'max-response-bytes', env: 'CONFLUX_MAX_RESPONSE_BYTES' },
  quotaBytes: { flag: 'quota-bytes', env: 'CONFLUX_QUOTA_BYTES' },
  maxConnections: { flag: 'max-connections', env: 'CONFLUX_MAX_CONNECTIONS' },
  maxConnectionsPerClient: { flag: 'max-connections-per-client', env: 'CONFLUX_MAX_CONNECTIONS_PER_CLIENT' },
  maxNewConnectionsPerSecond: {
    flag: 'max-new-connections-per-second',
    env: 'CONFLUX_MAX_NEW_CONNECTIONS_PER_SECOND',
  },
  maxWatchers: { flag: 'max-watchers', env: 'CONFLUX_MAX_WATCHERS' },
  maxWatchersPerClient: { flag: 'max-watchers-per-client', env: 'CONFLUX_MAX_WATCHERS_PER_CLIENT' },
  readHeaderTimeoutMs: { flag: 'read-header-timeout-ms', env: 'CONFLUX_READ_HEADER_TIMEOUT_MS' },
  readTimeoutMs: { flag: 'read-timeout-ms', env: 'CONFLUX_READ_TIMEOUT_MS' },
  idleTimeoutMs: { flag: 'idle-timeout-ms', env: 'CONFLUX_IDLE_TIMEOUT_MS' },
  logLevel: { flag: 'log-level', env: 'CONFLUX_LOG_LEVEL' },
  backupDestination: { flag: 'backup-destination', env: 'CONFLUX_BACKUP_DESTINATION' },
  backupKeepLast: { flag: 'backup-keep-last', env: 'CONFLUX_BACKUP_KEEP_LAST' },
  backupMaxAgeDays: { flag: 'backup-max-age-days', env: 'CONFLUX_BACKUP_MAX_AGE_DAYS' },
  s3Endpoint: { flag: 's3-endpoint', env: 'CONFLUX_S3_ENDPOINT' },
  s3Region: { flag: 's3-region', env: 'CONFLUX_S3_REGION' },
  s3PathStyle: { flag: 's3-path-style', env: 'CONFLUX_S3_PATH_STYLE', boolean: true },
  catchUpMaxLag: { flag: 'catch-up-max-lag', env: 'CONFLUX_CATCH_UP_MAX_LAG' },
  catchUpStableMs: { flag: 'catch-up-stable-ms', env: 'CONFLUX_CATCH_UP_STABLE_MS' },
  catchUpTimeoutMs: { flag: 'catch-up-timeout-ms', env: 'CONFLUX_CATCH_UP_TIMEOUT_MS' },
} as const satisfies Record<string, { flag: string; env: string; boolean?: boolean }>;

type SettingName = keyof typeof SETTINGS;

const positiveInt = z.coerce.number().int().positive();
const flag = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((s) => s === 'true' || s === '1'),
]);

/**
 * `n1=127.0.0.1:7001/127.0.0.1:8001/127.0.0.1:9001,n2=...`: each member's Raft, API and admin
 * address (the admin address may be left out; `/_cluster/status` then cannot reach that member).
 */
const initialCluster = z.string().transform((text, ctx) => {
  const members: Record<string, { raft: string; api: string; admin: string }> = {};
  for (const part of text.split(',').filter(Boolean)) {
    const m = /^([^=]+)=([^/]+)\/([^/]+)(?:\/(.+))?$/.exec(part.trim());
    const id = nodeIdSchema.safeParse(m?.[1]);
    const ok = (addr: string | undefined) => addr === undefined || hostPortSchema.safeParse(addr).success;
    if (!m || !id.success || !m[2] || !m[3] || !ok(m[2]) || !ok(m[3]) || !ok(m[4])) {
      ctx.addIssue({
        code: 'custom',
        message: `"${part}" is not id=raftHost:port/apiHost:port[/adminHost:port]`,
      });
      return z.NEVER;
    }
    members[m[1] as string] = { raft: m[2], api: m[3], admin: m[4] ?? '' };
  }
  return members;
});

/** `10.77.0.0/16,192.168.1.0/24`: IPv4 networks as [base, mask] pairs. */
const cidrList = z.string().transform((text, ctx) => {
  const nets: [number, number][] = [];
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(part);
    const base = m ? ipv4(m[1] as string) : null;
    const bits = Number(m?.[2]);
    if (base === null || !(bits >= 0 && bits <= 32)) {
      ctx.addIssue({ code: 'custom', message: `"${part}" is not an IPv4 network such as 10.77.0.0/16` });
      return z.NEVER;
    }
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    nets.push([(base & mask) >>> 0, mask]);
  }
  return nets;
});

/** An IPv4 address as an unsigned 32-bit number, or null. */
function ipv4(text: string): number | null {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return null;
  return parts.reduce((n, p) => ((n << 8) | p) >>> 0, 0);
}

/** Whether `addr` (host:port) is an IPv4 address inside one of `nets`. */
function inNetworks(addr: string, nets: [number, number][]): boolean {
  const ip = ipv4(addr.slice(0, addr.lastIndexOf(':')));
  return ip !== null && nets.some(([base, mask]) => (ip & mask) >>> 0 === base);
}

const BaseConfigSchema = z.object({
  nodeId: nodeIdSchema.optional(),
  /** Without --node-id: the first start makes `<prefix>-<8 hex>` (a StatefulSet passes the pod name). */
  nodeIdPrefix: nodeIdPrefixSchema.optional(),
  dataDir: z.string().min(1).default('./data'),
  apiAddr: hostPortSchema.default('127.0.0.1:8080'),
  adminAddr: hostPortSchema.default('127.0.0.1:8443'),
  raftAddr: hostPortSchema.default('127.0.0.1:7000'),
  /**
   * A separate plain-HTTP listener for /metrics, /healthz and /readyz (api/metrics-app.ts); when
   * set, the client port no longer serves /metrics.
   */
  metricsAddr: hostPortSchema.optional(),
  advertiseApiAddr: hostPortSchema.optional(),
  advertiseAdminAddr: hostPortSchema.optional(),
  advertiseRaftAddr: hostPortSchema.optional(),
  initialCluster: initialCluster.optional(),
  bootstrapExpect: positiveInt.optional(),
  join: hostPortSchema.optional(),
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  tlsCa: z.string().optional(),
  adminCa: z.string().optional(),
  /** How often the TLS files are read to pick up a renewed certificate or CA bundle. */
  tlsReloadIntervalMs: positiveInt.min(100).default(10_000),
  devInsecure: flag.default(false),
  /**
   * IPv4 networks (CIDR, comma-separated) --dev-insecure may dial and advertise besides loopback:
   * only for an isolated test network (e2e/chaos's network namespaces). Listeners stay loopback.
   */
  devInsecureNetworks: cidrList.default([]),
  followerRedirect: flag.default(false),
  tickMs: positiveInt.default(50),
  electionTicks: positiveInt.min(3).default(10),
  snapshotEntries: positiveInt.default(10_000),
  snapshotLogMib: positiveInt.max(1024).default(64),
  maxKeyBytes: positiveInt.max(64 * 1024).default(1024),
  maxValueBytes: positiveInt.default(1024 * 1024),
  maxBodyBytes: positiveInt.optional(),
  rateLimitPerSecond: positiveInt.optional(),
  watchHistory: positiveInt.default(10_000),
  requestTimeoutMs: positiveInt.default(5_000),
  /** Bytes of keys and values one answer may carry (ranges and long-polls page below it). */
  maxResponseBytes: positiveInt.default(16 * 1024 * 1024),
  /**
   * Stored bytes (keys, values, per-key overhead) above which writes that grow the data are
   * refused. Unset: 512 MiB, or less under a memory limit (api/quota.ts defaultQuotaBytes).
   */
  quotaBytes: positiveInt.optional(),
  /** Open connections per listener (client API, admin API); more are closed at once. */
  maxConnections: positiveInt.default(2048),
  /** ... and from one client address: one client cannot take every slot. */
  maxConnectionsPerClient: positiveInt.default(512),
  /**
   * Connections a listener accepts per second (a quarter of it at once); more are closed as soon
   * as they are accepted, before their TLS handshake, so a burst cannot stall the node past an
   * election timeout (api/limits.ts).
   */
  maxNewConnectionsPerSecond: positiveInt.default(500),
  /** Open watches (SSE streams and waiting long-polls) on this node, and from one client. */
  maxWatchers: positiveInt.default(1024),
  maxWatchersPerClient: positiveInt.default(256),
  /** A request's headers must arrive within this; the whole request within --read-timeout-ms. */
  readHeaderTimeoutMs: positiveInt.default(10_000),
  readTimeoutMs: positiveInt.default(30_000),
  /** A connection without traffic (between requests, or a stalled answer) is closed after this. */
  idleTimeoutMs: positiveInt.min(1_000).default(60_000),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Where POST /_cluster/backup writes when the request names no destination. */
  backupDestination: z
    .string()
    .regex(/^(s3|file):\/\//, 'expected s3://bucket/prefix or file:///dir')
    .optional(),
  backupKeepLast: positiveInt.optional(),
  backupMaxAgeDays: z.coerce.number().positive().optional(),
  s3Endpoint: z.url({ protocol: /^https?$/ }).optional(),
  s3Region: z.string().min(1).optional(),
  s3PathStyle: flag.default(false),
  /** A learner is caught up when its lag stays ≤ this many entries ... */
  catchUpMaxLag: z.coerce.number().int().nonnegative().default(100),
  /** ... for this long without interruption. */
  catchUpStableMs: positiveInt.default(1_000),
  /** The add flow gives up (the node stays a learner) when catch-up takes longer than this. */
  catchUpTimeoutMs: positiveInt.default(600_000),
});

type BaseConfig = z.output<typeof BaseConfigSchema>;

/** TLS files come as a set, and are required unless --dev-insecure. */
function tlsRules(c: BaseConfig, ctx: z.RefinementCtx): void {
  const tls = [c.tlsCert, c.tlsKey, c.tlsCa].filter(Boolean).length;
  if (tls !== 0 && tls !== 3)
    ctx.addIssue({
      code: 'custom',
      path: ['tlsCert'],
      message: 'give --tls-cert, --tls-key and --tls-ca together',
    });
  if (!c.devInsecure && tls === 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['tlsCert'],
      message: 'TLS files are required unless --dev-insecure is set',
    });
  }
}

/** --dev-insecure listens, dials and advertises on loopback (or --dev-insecure-networks) only. */
function devInsecureRules(c: BaseConfig, ctx: z.RefinementCtx): void {
  if (c.devInsecure) {
    for (const key of ['apiAddr', 'adminAddr', 'raftAddr', 'metricsAddr'] as const) {
      const addr = c[key];
      if (addr !== undefined && !isLoopback(addr)) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `--dev-insecure serves plain HTTP and is refused on ${addr}; use a loopback address`,
        });
      }
    }
    // Nor does it dial or advertise anything off this machine in plain text.
    const dialed: [string, string | undefined][] = [
      ['--advertise-api-addr', c.advertiseApiAddr],
      ['--advertise-admin-addr', c.advertiseAdminAddr],
      ['--advertise-raft-addr', c.advertiseRaftAddr],
      ['--join', c.join],
      ...Object.entries(c.initialCluster ?? {}).flatMap(([id, m]) =>
        [m.raft, m.api, m.admin]
          .filter(Boolean)
          .map((a): [string, string] => [`--initial-cluster (${id})`, a]),
      ),
    ];
    for (const [what, addr] of dialed) {
      if (addr !== undefined && !isLoopback(addr) && !inNetworks(addr, c.devInsecureNetworks)) {
        ctx.addIssue({
          code: 'custom',
          path: ['devInsecure'],
          message: `--dev-insecure sends plain text and refuses the non-loopback address ${addr} in ${what}`,
        });
      }
    }
  }
}

/** One way to form the cluster, and one way to name the node. */
function formationRules(c: BaseConfig, ctx: z.RefinementCtx): void {
  const starts = [
    c.initialCluster && '--initial-cluster',
    c.bootstrapExpect && '--bootstrap-expect',
    c.join && '--join',
  ];
  if (starts.filter(Boolean).length > 1) {
    ctx.addIssue({
      code: 'custom',
      path: ['join'],
      message: `choose one way to form the cluster, not ${starts.filter(Boolean).join(' and ')}`,
    });
  }
  if (c.nodeId && c.nodeIdPrefix) {
    ctx.addIssue({
      code: 'custom',
      path: ['nodeIdPrefix'],
      message: 'give --node-id or --node-id-prefix, not both',
    });
  }
}

/** Limits that depend on each other, and a static cluster that lists this node. */
function limitRules(c: BaseConfig, ctx: z.RefinementCtx): void {
  if (c.readHeaderTimeoutMs > c.readTimeoutMs) {
    ctx.addIssue({
      code: 'custom',
      path: ['readHeaderTimeoutMs'],
      message: `must not exceed --read-timeout-ms (${c.readTimeoutMs})`,
    });
  }
  if (c.maxResponseBytes < 2 * c.maxValueBytes) {
    // One watch event or txn answer may carry a value and its previous value.
    ctx.addIssue({
      code: 'custom',
      path: ['maxResponseBytes'],
      message: `must be at least twice --max-value-bytes (${2 * c.maxValueBytes})`,
    });
  }
  if (c.maxConnectionsPerClient > c.maxConnections) {
    ctx.addIssue({
      code: 'custom',
      path: ['maxConnectionsPerClient'],
      message: `must not exceed --max-connections (${c.maxConnections})`,
    });
  }
  if (c.maxWatchersPerClient > c.maxWatchers) {
    ctx.addIssue({
      code: 'custom',
      path: ['maxWatchersPerClient'],
      message: `must not exceed --max-watchers (${c.maxWatchers})`,
    });
  }
  if (c.initialCluster && c.nodeId && !c.initialCluster[c.nodeId]) {
    ctx.addIssue({
      code: 'custom',
      path: ['initialCluster'],
      message: `does not list this node (${c.nodeId})`,
    });
  }
}

export const ConfigSchema = BaseConfigSchema.superRefine(tlsRules)
  .superRefine(devInsecureRules)
  .superRefine(formationRules)
  .superRefine(limitRules)
  .transform((c) => ({
    ...c,
    advertiseApiAddr: c.advertiseApiAddr ?? c.apiAddr,
    advertiseAdminAddr: c.advertiseAdminAddr ?? c.adminAddr,
    advertiseRaftAddr: c.advertiseRaftAddr ?? c.raftAddr,
    maxBodyBytes: c.maxBodyBytes ?? c.maxValueBytes + 64 * 1024,
  }));

export type NodeConfig = z.output<typeof ConfigSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Flags win over environment variables; both are validated by one schema. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): NodeConfig {
  const options = Object.fromEntries(
    Object.values(SETTINGS).map((s) => [
      s.flag,
      { type: 'boolean' in s ? ('boolean' as const) : ('string' as const) },
    ]),
  );
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const raw: Partial<Record<SettingName, string | boolean>> = {};
  for (const [name, s] of Object.entries(SETTINGS) as [SettingName, (typeof SETTINGS)[SettingName]][]) {
    const value = values[s.flag] ?? env[s.env];
    if (value !== undefined && value !== '') raw[name] = value;
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = issue.path[0] as SettingName | undefined;
      const where =
        name && SETTINGS[name] ? `--${SETTINGS[name].flag} (${SETTINGS[name].env})` : 'configuration';
      return `${where}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return parsed.data;
}

/** One line per setting for `conflux-node --help`; a setting without one still shows its flag. */
const HELP: Partial<Record<SettingName, string>> = {
  nodeId: "the node's id, kept in the data dir (default: <prefix>-<8 hex> at first start)",
  nodeIdPrefix: 'without --node-id, the first start makes <prefix>-<8 hex> (default n)',
  dataDir: 'WAL, snapshots and the node id',
  apiAddr: 'client API listen address',
  adminAddr: 'cluster-operations API listen address',
  raftAddr: 'peer (Raft) listen address',
  metricsAddr:
    'plain-HTTP listen address for /metrics, /healthz and /readyz (default: none; /metrics then moves off the client port)',
  advertiseApiAddr: 'the client API address peers and clients are told (default: the listen address)',
  advertiseAdminAddr: 'the admin address peers and clients are told (default: the listen address)',
  advertiseRaftAddr: 'the Raft address peers are told (default: the listen address)',
  initialCluster: 'static formation: n1=RAFT/API[/ADMIN],n2=... (each HOST:PORT)',
  bootstrapExpect: 'self-bootstrap on one node: wait for N-1 --join requests, then initialize',
  join: 'self-bootstrap on the others: ask this admin address to make this node a voter',
  tlsCert: 'PEM certificate: HTTPS and mutual TLS between peers (required unless --dev-insecure)',
  tlsKey: 'PEM key of --tls-cert',
  tlsCa: 'PEM CA bundle trusted for members and clients',
  adminCa: 'PEM CA of admin client certificates',
  tlsReloadIntervalMs: 'how often the TLS files are re-read and applied without a restart',
  devInsecure: 'plain HTTP/TCP without TLS; refused unless every address is loopback',
  devInsecureNetworks:
    'IPv4 networks (CIDR, comma-separated) --dev-insecure may dial and advertise: isolated test networks only',
  followerRedirect: 'followers answer 307 to the leader instead of proxying',
  tickMs: 'Raft tick',
  electionTicks: 'elections after this many to twice this many ticks without a leader',
  snapshotEntries: 'snapshot and compact the log every N applied entries',
  snapshotLogMib:
    'also snapshot once the log holds this many MiB: bounds its memory and the replay at restart',
  maxKeyBytes: 'longest key',
  maxValueBytes: 'largest value',
  maxBodyBytes: 'largest request body (default: --max-value-bytes + 64 KiB)',
  rateLimitPerSecond: 'requests per second per client (default: off)',
  watchHistory: 'revisions of watch history kept',
  requestTimeoutMs: 'a write or linearizable read waits at most this long',
  maxResponseBytes: 'keys and values one answer may carry',
  quotaBytes:
    'storage quota: writes that add data are refused with NO_SPACE once reached (default 512 MiB, less under a memory limit)',
  maxConnections: 'open connections per listener',
  maxConnectionsPerClient: 'open connections per listener from one address',
  maxNewConnectionsPerSecond: 'connections a listener accepts per second (a quarter of it at once)',
  maxWatchers: 'open watches on this node',
  maxWatchersPerClient: 'open watches from one client address',
  readHeaderTimeoutMs: "a request's headers must arrive within this",
  readTimeoutMs: 'the whole request must arrive within this',
  idleTimeoutMs: 'a connection without traffic this long is closed',
  logLevel: 'fatal, error, warn, info, debug, trace or silent (pino JSON logs)',
  backupDestination: 'where POST /_cluster/backup writes by default: s3://bucket/prefix or file:///dir',
  backupKeepLast: 'retention: keep this many backups of this cluster',
  backupMaxAgeDays: 'retention: delete backups older than this (both limits must be passed)',
  s3Endpoint: 'S3-compatible endpoint URL (MinIO, Ceph, ...); credentials from the AWS environment',
  s3Region: 'S3 region',
  s3PathStyle: 'path-style S3 URLs',
  catchUpMaxLag: 'the add flow promotes a learner once it stays within this many entries ...',
  catchUpStableMs: '... for this long',
  catchUpTimeoutMs: 'the add flow gives up (the node stays a learner) after this long',
};

/** `conflux-node --help`: every setting of SETTINGS with its variable and default. */
export function usage(): string {
  // The defaults as the schema fills them in (--dev-insecure only to pass its TLS rule).
  const defaults = ConfigSchema.safeParse({ devInsecure: true });
  const filled: Record<string, unknown> = defaults.success ? defaults.data : {};
  const lines = [
    'usage: conflux-node [flags]',
    '',
    'One Conflux node. Every setting is a flag or its environment variable; flags win. A bad value',
    'stops the node at start with a message naming the setting.',
    '',
  ];
  for (const [name, s] of Object.entries(SETTINGS) as [SettingName, (typeof SETTINGS)[SettingName]][]) {
    const isBoolean = 'boolean' in s;
    const fallback = isBoolean ? 'off' : name.startsWith('advertise') ? undefined : filled[name];
    const shown = name === 'maxBodyBytes' || name === 'devInsecureNetworks' ? undefined : fallback;
    const meta = [s.env, ...(shown === undefined ? [] : [`default ${String(shown)}`])].join(', ');
    lines.push(`  --${s.flag}${isBoolean ? '' : ' <value>'}  (${meta})`);
    const help = HELP[name];
    if (help) lines.push(`      ${help}`);
  }
  lines.push('  -h, --help  this text', '');
  return lines.join('\n');
}
