// The rule that keeps the cluster's client users and roles as spec.auth declares them, and the
// client certificates the operator issues for them (README "Security", docs/reference/crd.md). Pure:
// the observation carries the auth document the leader answered (GET /_cluster/auth) and each
// issued certificate's validity, never key material.
//
// What the operator manages: the users and roles spec.auth names, plus the ones it made before
// (status.auth) until they are gone. A user or role made by hand (`conflux auth`) under another
// name is never changed or deleted; one that spec.auth names is taken over and made as declared.
// Removing spec.auth deletes what the operator made (authorization is turned off first if it
// would otherwise leave nobody holding root).
//
// The changes go to the leader as one batch, applied in order, all or none (node/auth/admin.ts):
// disable first, then roles and their permissions, users and their roles, deletions, enable
// last, so no intermediate state locks anybody out. The batch is tried here on the observed state
// with the node's own applyAuthChange, so a spec the node would refuse stalls with its message.
//
// A side step (owned.ts sideStep, status.operation kind Auth for the pass that applies it): it
// runs only when no flow (scale, replacement, roll...) is in flight, after those rules, so it
// never replaces one; an interrupted flow always goes first.

import { z } from 'zod';
import {
  type AuthChange,
  type AuthState,
  applyAuthChange,
  type Permission,
  ROOT_ROLE,
} from '../../../node/auth/permissions.js';
import { type AuthSpec, CLIENT_CERTS_NEED_MANAGED_TLS } from '../../api/auth.js';
import type { ClusterStatus } from '../../api/cluster.js';
import type { CertView } from '../types.js';
import { type Ctx, type Rule, stall } from './context.js';
import { RENEW_BEFORE_MS, sideStep } from './owned.js';

/** The document GET and POST /_cluster/auth answer, parsed at the boundary (observe). */
export const authDocSchema = z.object({
  enabled: z.boolean(),
  users: z.array(z.object({ name: z.string(), roles: z.array(z.string()) })),
  roles: z.array(
    z.object({
      name: z.string(),
      permissions: z.array(z.object({ prefix: z.string(), access: z.enum(['read', 'write', 'readwrite']) })),
    }),
  ),
});
export type AuthDoc = z.infer<typeof authDocSchema>;

export type ManagedAuth = NonNullable<ClusterStatus['auth']>;

/** Whether observe must read the cluster's auth document: something to keep, or to clean up. */
export function authWanted(spec: AuthSpec | undefined, managed: ManagedAuth | undefined): boolean {
  return spec !== undefined || (managed?.users.length ?? 0) > 0 || (managed?.roles.length ?? 0) > 0;
}

function stateOf(doc: AuthDoc): AuthState {
  return {
    enabled: doc.enabled,
    users: Object.fromEntries(doc.users.map((u) => [u.name, { name: u.name, roles: [...u.roles] }])),
    roles: Object.fromEntries(doc.roles.map((r) => [r.name, { name: r.name, permissions: r.permissions }])),
  };
}

const samePermission = (a: Permission, b: Permission) => a.prefix === b.prefix && a.access === b.access;

/** The role changes that make `want` from what the cluster has (`have`, absent: a new role). */
function roleChanges(want: AuthSpec['roles'][number], have: AuthState['roles'][string] | undefined) {
  const changes: AuthChange[] = have ? [] : [{ op: 'role-add', role: want.name }];
  const had = have?.permissions ?? [];
  for (const p of want.permissions) {
    if (!had.some((h) => samePermission(h, p)))
      changes.push({ op: 'role-grant', role: want.name, permission: p });
  }
  for (const h of had) {
    if (!want.permissions.some((p) => p.prefix === h.prefix))
      changes.push({ op: 'role-revoke', role: want.name, prefix: h.prefix });
  }
  return changes;
}

/** A user's changes, in two parts: adds and grants first, revokes after (see authChanges). */
function userChanges(want: AuthSpec['users'][number], have: AuthState['users'][string] | undefined) {
  const had = have?.roles ?? [];
  const add: AuthChange[] = have ? [] : [{ op: 'user-add', user: want.name }];
  const grants = want.roles.filter((r) => !had.includes(r));
  const revokes = had.filter((r) => !want.roles.includes(r));
  return {
    grant: [...add, ...grants.map((role): AuthChange => ({ op: 'user-grant-role', user: want.name, role }))],
    revoke: revokes.map((role): AuthChange => ({ op: 'user-revoke-role', user: want.name, role })),
  };
}

/**
 * The batch that takes the cluster's auth state (`doc`) to `spec`, touching only managed names
 * (`managed`: what the operator made before). Empty when nothing differs.
 */
export function authChanges(spec: AuthSpec | undefined, doc: AuthDoc, managed: ManagedAuth): AuthChange[] {
  const have = stateOf(doc);
  const roles = spec?.roles ?? [];
  const users = spec?.users ?? [];
  const staleUsers = managed.users.filter((n) => have.users[n] && !users.some((u) => u.name === n));
  const staleRoles = managed.roles.filter((n) => have.roles[n] && !roles.some((r) => r.name === n));
  const userParts = users.map((u) => userChanges(u, have.users[u.name]));
  const body: AuthChange[] = [
    ...roles.flatMap((r) => roleChanges(r, have.roles[r.name])),
    // Every grant before any revoke, so root moving from one user to another stays held.
    ...userParts.flatMap((p) => p.grant),
    ...userParts.flatMap((p) => p.revoke),
    ...staleUsers.map((user): AuthChange => ({ op: 'user-delete', user })),
    ...staleRoles.map((role): AuthChange => ({ op: 'role-delete', role })),
  ];
  const wantEnabled = spec ? spec.enabled : doc.enabled && rootHeldAfter(have, body);
  const disable = doc.enabled && !wantEnabled ? [{ op: 'disable' } as const] : [];
  const enable = !doc.enabled && wantEnabled ? [{ op: 'enable' } as const] : [];
  return [...disable, ...body, ...enable];
}

/** Whether some user still holds root once `changes` are applied (authorization off meanwhile). */
function rootHeldAfter(state: AuthState, changes: AuthChange[]): boolean {
  try {
    const after = changes.reduce(applyAuthChange, { ...state, enabled: false });
    return Object.values(after.users).some((u) => u.roles.includes(ROOT_ROLE));
  } catch {
    return true; // the batch itself is refused: simulate() reports why
  }
}

/** Null when the node would apply the batch to `doc`, else its refusal. */
export function refusalOf(doc: AuthDoc, changes: AuthChange[]): string | null {
  try {
    changes.reduce(applyAuthChange, stateOf(doc));
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** The managed names to record in status.auth: what spec names, and what it made that still exists. */
export function managedAfter(
  spec: AuthSpec | undefined,
  doc: AuthDoc | null,
  prev: ManagedAuth,
): ManagedAuth {
  const keep = (names: string[], exists: (n: string) => boolean, wanted: string[]) =>
    [
      ...new Set([...wanted, ...names.filter((n) => !wanted.includes(n) && (doc === null || exists(n)))]),
    ].sort();
  return {
    users: keep(
      prev.users,
      (n) => doc?.users.some((u) => u.name === n) ?? true,
      (spec?.users ?? []).map((u) => u.name),
    ),
    roles: keep(
      prev.roles,
      (n) => doc?.roles.some((r) => r.name === n) ?? true,
      (spec?.roles ?? []).map((r) => r.name),
    ),
  };
}

/** status.auth after this pass (undefined when nothing is or was managed). */
export function authStatus(ctx: Ctx): ManagedAuth | undefined {
  const prev = ctx.prev.auth ?? { users: [], roles: [] };
  const managed = managedAfter(ctx.spec.auth, ctx.obs.auth ?? null, prev);
  return managed.users.length + managed.roles.length > 0 ? managed : undefined;
}

/** Why a client certificate must be issued again at `now`, or null. */
function clientCertDue(view: CertView | undefined, now: number): string | null {
  if (!view) return 'missing';
  if (view.problem) return view.problem;
  const notAfter = Date.parse(view.notAfter);
  if (notAfter <= now) return `expired at ${view.notAfter}`;
  if (notAfter - now < RENEW_BEFORE_MS) return `expires at ${view.notAfter}, within 30 days`;
  return null;
}

/** The client certificates to issue (with why) and the ones whose user no longer wants one. */
export function clientCertificatesDue(
  spec: AuthSpec | undefined,
  issued: Record<string, CertView>,
  now: number,
): { issue: { user: string; reason: string }[]; remove: string[] } {
  const wanted = (spec?.users ?? []).filter((u) => u.clientCertificate).map((u) => u.name);
  const issue = wanted.flatMap((user) => {
    const reason = clientCertDue(issued[user], now);
    return reason ? [{ user, reason }] : [];
  });
  return {
    issue,
    remove: Object.keys(issued)
      .filter((u) => !wanted.includes(u))
      .sort(),
  };
}

/** A short account of a batch for events: `user-add alice, role-grant app-reader /app/ read, ...`. */
export function describeChanges(changes: AuthChange[]): string {
  return changes
    .map((c) => {
      const subject = 'user' in c ? ` ${c.user}` : 'role' in c ? ` ${c.role}` : '';
      const detail =
        c.op === 'role-grant'
          ? ` ${JSON.stringify(c.permission.prefix)} ${c.permission.access}`
          : c.op === 'role-revoke'
            ? ` ${JSON.stringify(c.prefix)}`
            : c.op === 'user-grant-role' || c.op === 'user-revoke-role'
              ? ` ${c.role}`
              : '';
      return `${c.op}${subject}${detail}`;
    })
    .join(', ');
}

/** Keep spec.auth's users, roles and client certificates; see the head of this file. */
export const syncAuth: Rule = (ctx: Ctx) => {
  const spec = ctx.spec.auth;
  const doc = ctx.obs.auth ?? null;
  if (!authWanted(spec, ctx.prev.auth)) return null;
  const op = sideStep(ctx, 'Auth', 'applying');
  if (op === 'keep') return null; // a flow is in flight: it goes first, auth follows once it is done
  const wantsCerts = (spec?.users ?? []).some((u) => u.clientCertificate);
  const tls = ctx.obs.owned?.tls;
  if (wantsCerts && tls && !tls.managed)
    return stall({ reason: 'AuthRefused', message: CLIENT_CERTS_NEED_MANAGED_TLS }, null);
  if (spec?.enabled && !tls) {
    // No TLS material observed: the cluster runs --dev-insecure (the Local platform, or no TLS).
    const message = 'spec.auth.enabled needs TLS on the client port: this cluster runs without it';
    return stall({ reason: 'AuthRefused', message }, null);
  }
  if (doc === null) return null; // no leader answered: the next pass tries again
  const changes = authChanges(spec, doc, ctx.prev.auth ?? { users: [], roles: [] });
  const refused = refusalOf(doc, changes);
  if (refused) {
    const message = `spec.auth cannot be applied, nothing was changed: ${refused}`;
    return stall({ reason: 'AuthRefused', message }, null);
  }
  const certs = ctx.obs.clientCertificates
    ? clientCertificatesDue(spec, ctx.obs.clientCertificates, ctx.obs.now.getTime())
    : { issue: [], remove: [] };
  if (changes.length === 0 && certs.issue.length === 0 && certs.remove.length === 0) return null;
  const parts = [
    ...(changes.length > 0 ? [`auth changes: ${describeChanges(changes)}`] : []),
    ...certs.issue.map((c) => `client certificate of ${c.user}: ${c.reason}`),
    ...(certs.remove.length > 0 ? [`deleting the client certificates of ${certs.remove.join(', ')}`] : []),
  ];
  const message = parts.join('; ');
  return {
    action: {
      type: 'sync-auth',
      changes,
      issueCertificates: certs.issue.map((c) => c.user),
      removeCertificates: certs.remove,
    },
    operation: op,
    progress: { reason: 'SyncingAuth', message },
    events: [{ type: 'Normal', reason: 'SyncingAuth', message }],
  };
};
