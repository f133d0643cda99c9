// `conflux auth status|enable|disable|user ...|role ...`: users and roles of client authorization
// through the admin API (GET/POST /_cluster/auth, docs/reference/admin-api.md). Each command is
// one change, applied by the leader (followers redirect; callMember follows).

import type { AuthChange } from '../../node/auth/permissions.js';
import { CliError, type CommandContext, json, jsonOf } from './context.js';
import { callMember } from './members.js';

interface AuthDoc {
  enabled: boolean;
  users: { name: string; roles: string[] }[];
  roles: { name: string; permissions: { prefix: string; access: string }[] }[];
}

function print(ctx: CommandContext, doc: AuthDoc): void {
  if (ctx.target.json) {
    ctx.io.stdout(json(doc));
    return;
  }
  const lines = [`client authorization ${doc.enabled ? 'enabled' : 'disabled'}`];
  for (const u of doc.users) lines.push(`user ${u.name}: ${u.roles.join(', ') || '(no roles)'}`);
  for (const r of doc.roles) {
    const grants = r.permissions.map((p) => `${p.access} ${JSON.stringify(p.prefix)}`);
    lines.push(`role ${r.name}: ${grants.join(', ') || '(no permissions)'}`);
  }
  ctx.io.stdout(lines.join('\n'));
}

export async function authStatus(ctx: CommandContext): Promise<void> {
  const path = '/_cluster/auth';
  const { url, answer } = await callMember(ctx, 'admin', { method: 'GET', path });
  print(ctx, jsonOf(url, path, answer) as AuthDoc);
}

export async function authChange(ctx: CommandContext, change: AuthChange): Promise<void> {
  const path = '/_cluster/auth';
  const { url, answer } = await callMember(ctx, 'admin', {
    method: 'POST',
    path,
    json: { changes: [change] },
  });
  print(ctx, jsonOf(url, path, answer) as AuthDoc);
}

const ACCESS = ['read', 'write', 'readwrite'] as const;

export function accessOf(access: string): (typeof ACCESS)[number] {
  const a = ACCESS.find((x) => x === access);
  if (!a)
    throw new CliError(`error: access must be read, write or readwrite, not ${JSON.stringify(access)}`, 2);
  return a;
}
