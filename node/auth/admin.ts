// The admin API of client authorization (docs/reference/admin-api.md): `GET /_cluster/auth`
// answers the users, roles and switch as the leader has applied them (after a ReadIndex barrier,
// so it shows every change acknowledged before); `POST /_cluster/auth` `{changes: [...]}` proposes
// them as one `auth` command, applied in order, all or none, on every member. Both run on the
// leader only; a follower redirects (admin-routes.ts leaderOrRedirect).

import { z } from 'zod';
import { ConfluxError } from '../errors.js';
import { encodeCommand } from '../kv/commands.js';
import type { KvApplyResult } from '../kv/types.js';
import { RaftError } from '../raft/errors.js';
import type { RaftNode } from '../raft/raft-node.js';
import { type AuthState, authChangeSchema } from './permissions.js';

export const authChangesRequestSchema = z.strictObject({
  changes: z.array(authChangeSchema).min(1, 'give at least one change').max(1000),
});

export interface AuthAdminContext {
  raft: RaftNode<unknown>;
  /** The applied auth state of this node. */
  authState(): AuthState;
  /** Whether the client API speaks TLS: without it nobody can be authenticated. */
  tls: boolean;
}

/** The document GET and POST answer: users and roles sorted by name. */
export function authStatus(s: AuthState) {
  const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : 1);
  return {
    enabled: s.enabled,
    users: Object.values(s.users)
      .map((u) => ({ name: u.name, roles: [...u.roles] }))
      .sort(byName),
    roles: Object.values(s.roles)
      .map((r) => ({ name: r.name, permissions: r.permissions.map((p) => ({ ...p })) }))
      .sort(byName),
  };
}

function mustLead(ctx: AuthAdminContext): void {
  const m = ctx.raft.metrics();
  if (m.state !== 'leader') throw new RaftError('NOT_LEADER', 'not the leader', m.currentLeader);
}

export async function getAuth(ctx: AuthAdminContext) {
  mustLead(ctx);
  await ctx.raft.ensureLinearizable();
  return authStatus(ctx.authState());
}

export async function postAuth(ctx: AuthAdminContext, request: z.output<typeof authChangesRequestSchema>) {
  if (!ctx.tls && request.changes.some((c) => c.op === 'enable')) {
    throw new ConfluxError(
      'INVALID_REQUEST',
      'client authorization needs TLS: without it no client can be authenticated (this node runs --dev-insecure)',
    );
  }
  mustLead(ctx);
  const { response } = await ctx.raft.clientWrite(encodeCommand({ type: 'auth', changes: request.changes }));
  const r = response as KvApplyResult;
  if (r.type !== 'auth') throw new Error(`auth change answered with ${r.type}`);
  if (!r.ok) throw new ConfluxError('INVALID_REQUEST', `auth changes refused, none applied: ${r.reason}`);
  return authStatus(ctx.authState());
}
