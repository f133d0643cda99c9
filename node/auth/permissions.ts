// Client authorization like etcd's, as pure functions over an immutable state: users (a client
// certificate's CN names one) hold roles; a role grants read, write or readwrite on key prefixes;
// the built-in role `root` grants everything. Authorization is off until it is enabled, and it
// can only be enabled while some user holds `root`, so whoever enables it (the operator's own
// client) cannot lock itself out. What a request touches is a list of `Need`s (every key of a
// get, put, delete, every op and compare of a txn, a range's or watch's whole prefix); a request
// passes only if every need is covered by one permission of one of the user's roles.
//
// The state changes only through `applyAuthChange`, which refuses anything invalid with a
// ConfluxError INVALID_REQUEST and otherwise returns a new state: meant to run identically on
// every member when the change is applied from the log.

import { z } from 'zod';
import { ConfluxError } from '../errors.js';

export const ROOT_ROLE = 'root';

export type Access = 'read' | 'write' | 'readwrite';

export interface Permission {
  /** Keys starting with this ('' = every key). */
  prefix: string;
  access: Access;
}

export interface Role {
  name: string;
  permissions: Permission[];
}

export interface User {
  name: string;
  roles: string[];
}

export interface AuthState {
  enabled: boolean;
  users: Readonly<Record<string, User>>;
  roles: Readonly<Record<string, Role>>;
}

export const EMPTY_AUTH_STATE: AuthState = { enabled: false, users: {}, roles: {} };

/** What one request touches: one key, or every key under a prefix (ranges and watches). */
export type Need = { key: string; access: 'read' | 'write' } | { prefix: string; access: 'read' | 'write' };

const nameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@:-]*$/, 'letters, digits and . _ @ : - (a certificate CN)');
const accessSchema = z.enum(['read', 'write', 'readwrite']);
const permissionSchema = z.strictObject({ prefix: z.string().max(64 * 1024), access: accessSchema });

/** Every change the admin API may make, as it would travel in a log entry. */
export const authChangeSchema = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('user-add'), user: nameSchema }),
  z.strictObject({ op: z.literal('user-delete'), user: nameSchema }),
  z.strictObject({ op: z.literal('role-add'), role: nameSchema }),
  z.strictObject({ op: z.literal('role-delete'), role: nameSchema }),
  z.strictObject({ op: z.literal('role-grant'), role: nameSchema, permission: permissionSchema }),
  z.strictObject({ op: z.literal('role-revoke'), role: nameSchema, prefix: z.string().max(64 * 1024) }),
  z.strictObject({ op: z.literal('user-grant-role'), user: nameSchema, role: nameSchema }),
  z.strictObject({ op: z.literal('user-revoke-role'), user: nameSchema, role: nameSchema }),
  z.strictObject({ op: z.literal('enable') }),
  z.strictObject({ op: z.literal('disable') }),
]);
export type AuthChange = z.infer<typeof authChangeSchema>;

const refuse = (message: string) => new ConfluxError('INVALID_REQUEST', message);

/** Parse untrusted input into a change (throws INVALID_REQUEST naming the field). */
export function parseAuthChange(input: unknown): AuthChange {
  const r = authChangeSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw refuse(
      `invalid auth change: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : ''}`,
    );
  }
  return r.data;
}

function holdsRoot(state: AuthState, users = state.users): boolean {
  return Object.values(users).some((u) => u.roles.includes(ROOT_ROLE));
}

function existingUser(state: AuthState, name: string): User {
  const u = state.users[name];
  if (!u) throw refuse(`no user ${name}`);
  return u;
}

function existingRole(state: AuthState, name: string): Role {
  const r = state.roles[name];
  if (!r) throw refuse(`no role ${name}`);
  return r;
}

/** `state` with `users`, refused when nobody would hold root while authorization is enabled. */
function withUsers(state: AuthState, users: Record<string, User>): AuthState {
  if (state.enabled && !holdsRoot(state, users)) {
    throw refuse(`no user would hold the ${ROOT_ROLE} role while authorization is enabled; disable it first`);
  }
  return { ...state, users };
}

/** Deleting a role also takes it from every user who held it. */
function deleteRole(state: AuthState, name: string): AuthState {
  if (name === ROOT_ROLE) throw refuse(`the ${ROOT_ROLE} role is built in`);
  existingRole(state, name);
  const { [name]: _gone, ...roles } = state.roles;
  const users = Object.fromEntries(
    Object.entries(state.users).map(([n, u]) => [n, { ...u, roles: u.roles.filter((r) => r !== name) }]),
  );
  return { ...state, roles, users };
}

/** A grant replaces any permission the role had on the same prefix; permissions stay sorted. */
function grantToRole(state: AuthState, name: string, permission: Permission): AuthState {
  if (name === ROOT_ROLE) throw refuse(`the ${ROOT_ROLE} role already grants everything`);
  const r = existingRole(state, name);
  const others = r.permissions.filter((p) => p.prefix !== permission.prefix);
  const permissions = [...others, permission].sort((a, b) => (a.prefix < b.prefix ? -1 : 1));
  return { ...state, roles: { ...state.roles, [r.name]: { ...r, permissions } } };
}

function revokeFromRole(state: AuthState, name: string, prefix: string): AuthState {
  const r = existingRole(state, name);
  if (!r.permissions.some((p) => p.prefix === prefix)) {
    throw refuse(`role ${r.name} has no permission on prefix ${JSON.stringify(prefix)}`);
  }
  const permissions = r.permissions.filter((p) => p.prefix !== prefix);
  return { ...state, roles: { ...state.roles, [r.name]: { ...r, permissions } } };
}

/** The state after `change`; throws INVALID_REQUEST (and changes nothing) when it cannot apply. */
export function applyAuthChange(state: AuthState, change: AuthChange): AuthState {
  switch (change.op) {
    case 'user-add':
      if (state.users[change.user]) throw refuse(`user ${change.user} exists`);
      return { ...state, users: { ...state.users, [change.user]: { name: change.user, roles: [] } } };
    case 'user-delete': {
      existingUser(state, change.user);
      const { [change.user]: _gone, ...users } = state.users;
      return withUsers(state, users);
    }
    case 'role-add':
      if (change.role === ROOT_ROLE || state.roles[change.role]) throw refuse(`role ${change.role} exists`);
      return { ...state, roles: { ...state.roles, [change.role]: { name: change.role, permissions: [] } } };
    case 'role-delete':
      return deleteRole(state, change.role);
    case 'role-grant':
      return grantToRole(state, change.role, change.permission);
    case 'role-revoke':
      return revokeFromRole(state, change.role, change.prefix);
    case 'user-grant-role': {
      const u = existingUser(state, change.user);
      if (change.role !== ROOT_ROLE) existingRole(state, change.role);
      if (u.roles.includes(change.role)) return state;
      return {
        ...state,
        users: { ...state.users, [u.name]: { ...u, roles: [...u.roles, change.role].sort() } },
      };
    }
    case 'user-revoke-role': {
      const u = existingUser(state, change.user);
      if (!u.roles.includes(change.role)) throw refuse(`user ${u.name} does not hold role ${change.role}`);
      return withUsers(state, {
        ...state.users,
        [u.name]: { ...u, roles: u.roles.filter((r) => r !== change.role) },
      });
    }
    case 'enable':
      if (!holdsRoot(state)) {
        throw refuse(
          `grant the ${ROOT_ROLE} role to a user (the operator's client) before enabling authorization`,
        );
      }
      return { ...state, enabled: true };
    case 'disable':
      return { ...state, enabled: false };
  }
}

const grants = (p: Permission, access: 'read' | 'write') => p.access === 'readwrite' || p.access === access;

/** Whether one permission covers one need: a key under its prefix, or a prefix inside it. */
function covers(p: Permission, need: Need): boolean {
  if (!grants(p, need.access)) return false;
  return 'key' in need ? need.key.startsWith(p.prefix) : need.prefix.startsWith(p.prefix);
}

/**
 * Throws FORBIDDEN naming the first need `user` may not have, UNAUTHENTICATED when there is no
 * user; returns when every need is covered (or authorization is off).
 */
export function authorize(state: AuthState, user: string | null, needs: readonly Need[]): void {
  if (!state.enabled) return;
  if (user === null) {
    throw new ConfluxError('UNAUTHENTICATED', 'authorization is enabled: present a client certificate');
  }
  const u = state.users[user];
  if (!u) throw new ConfluxError('FORBIDDEN', `no user ${user}`, { user });
  if (u.roles.includes(ROOT_ROLE)) return;
  const permissions = u.roles.flatMap((r) => state.roles[r]?.permissions ?? []);
  for (const need of needs) {
    if (!permissions.some((p) => covers(p, need))) {
      const what =
        'key' in need ? `key ${JSON.stringify(need.key)}` : `prefix ${JSON.stringify(need.prefix)}`;
      throw new ConfluxError('FORBIDDEN', `user ${user} may not ${need.access} ${what}`, {
        user,
        access: need.access,
        ...('key' in need ? { key: need.key } : { prefix: need.prefix }),
      });
    }
  }
}

/** What a transaction touches: every compare is read, both branches' gets read, puts and deletes write. */
export function txnNeeds(txn: {
  compare: readonly { key: string }[];
  success: readonly { type: 'get' | 'put' | 'delete'; key: string }[];
  failure: readonly { type: 'get' | 'put' | 'delete'; key: string }[];
}): Need[] {
  return [
    ...txn.compare.map((c): Need => ({ key: c.key, access: 'read' })),
    ...[...txn.success, ...txn.failure].map(
      (op): Need => ({ key: op.key, access: op.type === 'get' ? 'read' : 'write' }),
    ),
  ];
}
