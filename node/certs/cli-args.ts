// Parsing of the certificate CLI's arguments, pure so that it is table-tested.

import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { isDnsName, isFileStem, unique } from './names.js';

export const USAGE = `usage: conflux certs --out DIR --nodes n1,n2,n3 [--ip ADDR]... [--dns NAME]... [--days N] [--force]

Writes ca.crt/ca.key, <node>.crt/<node>.key for each node and admin.crt/admin.key into DIR.
Node certificates name the node id (when it is a DNS name), localhost and 127.0.0.1, plus every
--ip and --dns given (repeatable, or comma-separated). --days defaults to 365. Existing files are
left alone unless --force is given.`;

export interface CliOptions {
  outDir: string;
  nodeIds: string[];
  ipAddresses: string[];
  dnsNames: string[];
  validDays: number;
  force: boolean;
}

export type ParsedArgs =
  | { kind: 'run'; options: CliOptions }
  | { kind: 'help' }
  | { kind: 'error'; message: string };

const RESERVED_STEMS = new Set(['ca', 'admin']);

function splitList(values: readonly string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim());
}

export function parseCliArgs(argv: readonly string[]): ParsedArgs {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(argv).values;
  } catch (err) {
    return { kind: 'error', message: err instanceof Error ? err.message : String(err) };
  }
  if (values.help) return { kind: 'help' };

  if (!values.out) return { kind: 'error', message: '--out DIR is required' };
  if (!values.nodes?.trim()) return { kind: 'error', message: '--nodes n1,n2,... is required' };
  const nodeIds = splitList([values.nodes]);
  for (const id of nodeIds) {
    if (!isFileStem(id)) return { kind: 'error', message: `invalid node id ${JSON.stringify(id)}` };
    if (RESERVED_STEMS.has(id))
      return { kind: 'error', message: `node id ${JSON.stringify(id)} is reserved` };
  }
  if (new Set(nodeIds).size !== nodeIds.length)
    return { kind: 'error', message: '--nodes lists a node twice' };

  const ipAddresses = splitList(values.ip);
  for (const ip of ipAddresses) {
    if (isIP(ip) === 0) return { kind: 'error', message: `--ip: not an IP address: ${JSON.stringify(ip)}` };
  }
  const dnsNames = splitList(values.dns);
  for (const name of dnsNames) {
    if (!isDnsName(name)) return { kind: 'error', message: `--dns: not a DNS name: ${JSON.stringify(name)}` };
  }

  const daysText = values.days ?? '365';
  const validDays = /^\d+$/.test(daysText) ? Number(daysText) : Number.NaN;
  if (!(validDays >= 1 && validDays <= 36_500)) {
    return {
      kind: 'error',
      message: `--days must be a whole number from 1 to 36500, got ${JSON.stringify(daysText)}`,
    };
  }

  return {
    kind: 'run',
    options: {
      outDir: values.out,
      nodeIds,
      ipAddresses: unique(['127.0.0.1', ...ipAddresses]),
      dnsNames: unique(dnsNames),
      validDays,
      force: values.force ?? false,
    },
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      out: { type: 'string' },
      nodes: { type: 'string' },
      ip: { type: 'string', multiple: true },
      dns: { type: 'string', multiple: true },
      days: { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
