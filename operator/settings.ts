// The operator's settings: command-line flags and CONFLUX_OPERATOR_* environment variables, parsed
// by one zod schema as the node's are (node/config.ts). Flags win. A bad value stops the operator
// at start with a message naming the setting. docs/reference/flags.md lists them.

import { parseArgs } from 'node:util';
import { z } from 'zod';
import { hostPortSchema } from '../node/shapes/address.js';
import { DNS_LABEL } from '../node/shapes/node-id.js';

/** Each setting: its flag and its environment variable. */
export const OPERATOR_SETTINGS = {
  namespace: { flag: 'namespace', env: 'CONFLUX_OPERATOR_NAMESPACE' },
  metricsAddr: { flag: 'metrics-addr', env: 'CONFLUX_OPERATOR_METRICS_ADDR' },
  leaderElect: { flag: 'leader-elect', env: 'CONFLUX_OPERATOR_LEADER_ELECT' },
  leaseNamespace: { flag: 'lease-namespace', env: 'CONFLUX_OPERATOR_LEASE_NAMESPACE' },
  leaseName: { flag: 'lease-name', env: 'CONFLUX_OPERATOR_LEASE_NAME' },
  logLevel: { flag: 'log-level', env: 'CONFLUX_OPERATOR_LOG_LEVEL' },
  memberAddress: { flag: 'member-address', env: 'CONFLUX_OPERATOR_MEMBER_ADDRESS' },
  networkPolicy: { flag: 'network-policy', env: 'CONFLUX_OPERATOR_NETWORK_POLICY' },
} as const satisfies Record<string, { flag: string; env: string }>;

type SettingName = keyof typeof OPERATOR_SETTINGS;

const namespaceName = z
  .string()
  .regex(DNS_LABEL, 'a namespace name: lowercase letters, digits and dashes, up to 63');
/** A Kubernetes object name (RFC 1123 subdomain). */
const objectName = z
  .string()
  .max(253)
  .regex(
    /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/,
    'a Kubernetes object name: lowercase letters, digits, "-" and "."',
  );
const bool = z.enum(['true', 'false']).transform((s) => s === 'true');

export const OperatorSettingsSchema = z.strictObject({
  /** Watch this namespace only; all namespaces when unset. */
  namespace: namespaceName.optional(),
  metricsAddr: hostPortSchema.default('0.0.0.0:8080'),
  leaderElect: bool.default(true),
  /** Where the Lease lives; the operator's own namespace when unset. */
  leaseNamespace: namespaceName.optional(),
  leaseName: objectName.default('conflux-operator'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How the operator reaches members: their headless-Service DNS names, or their pod IPs. */
  memberAddress: z.enum(['dns', 'pod-ip']).default('dns'),
  /** Give every cluster a NetworkPolicy (operator/platform/network-policy.ts). */
  networkPolicy: bool.default(false),
});

export interface OperatorConfig extends Omit<z.output<typeof OperatorSettingsSchema>, 'leaseNamespace'> {
  leaseNamespace: string;
  /** The Lease holder's identity: POD_NAME, else the host name. */
  identity: string;
  /** The operator's own namespace (the downward API's POD_NAMESPACE). */
  podNamespace: string;
}

export class OperatorSettingsError extends Error {
  override readonly name = 'OperatorSettingsError';
}

/** Flags win over environment variables; an empty variable counts as unset. */
export function loadOperatorConfig(argv: string[], env: NodeJS.ProcessEnv, hostname: string): OperatorConfig {
  const options = Object.fromEntries(
    Object.values(OPERATOR_SETTINGS).map((s) => [s.flag, { type: 'string' as const }]),
  );
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new OperatorSettingsError((err as Error).message);
  }
  const raw: Partial<Record<SettingName, string | boolean>> = {};
  for (const [name, s] of Object.entries(OPERATOR_SETTINGS) as [
    SettingName,
    { flag: string; env: string },
  ][]) {
    const value = values[s.flag] ?? env[s.env];
    if (value !== undefined && value !== '') raw[name] = value;
  }
  const parsed = OperatorSettingsSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = issue.path[0] as SettingName | undefined;
      const s = name ? OPERATOR_SETTINGS[name] : undefined;
      return `${s ? `--${s.flag} (${s.env})` : 'settings'}: ${issue.message}`;
    });
    throw new OperatorSettingsError(`invalid settings:\n  ${lines.join('\n  ')}`);
  }
  const podNamespace = env.POD_NAMESPACE || 'conflux-system';
  return {
    ...parsed.data,
    leaseNamespace: parsed.data.leaseNamespace ?? podNamespace,
    identity: env.POD_NAME || hostname,
    podNamespace,
  };
}
