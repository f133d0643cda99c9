// The auth state inside the key-value store's snapshot (format in node/kv/snapshot-format.ts): a
// trailing, length-prefixed section present only when
// the state is not empty, flagged in the header. Canonical JSON (users and roles sorted by name,
// fields in a fixed order), so every member that reached the same state writes the same bytes,
// whether it applied the log or installed a snapshot. Decoding validates the shape with zod and
// the references (every role a user holds exists, root held while enabled) so a corrupt or hostile
// section cannot install a state that applyAuthChange could never have produced.

import { z } from 'zod';
import { SnapshotFormatError } from '../kv/errors.js';
import { type AuthState, EMPTY_AUTH_STATE, ROOT_ROLE } from './permissions.js';

const name = z.string().min(1).max(128);
const sectionSchema = z.strictObject({
  v: z.literal(1),
  enabled: z.boolean(),
  users: z.array(z.strictObject({ name, roles: z.array(name) })),
  roles: z.array(
    z.strictObject({
      name,
      permissions: z.array(
        z.strictObject({ prefix: z.string(), access: z.enum(['read', 'write', 'readwrite']) }),
      ),
    }),
  ),
});

/** Whether `state` is the state of a cluster that never used authorization. */
export const isEmptyAuthState = (s: AuthState): boolean =>
  !s.enabled && Object.keys(s.users).length === 0 && Object.keys(s.roles).length === 0;

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The section's bytes; undefined for the empty state (the snapshot then has no section). */
export function encodeAuthSection(s: AuthState): Uint8Array | undefined {
  if (isEmptyAuthState(s)) return undefined;
  const canonical = {
    v: 1,
    enabled: s.enabled,
    users: Object.values(s.users)
      .map((u) => ({ name: u.name, roles: [...u.roles].sort() }))
      .sort(byName),
    roles: Object.values(s.roles)
      .map((r) => ({
        name: r.name,
        permissions: r.permissions.map((p) => ({ prefix: p.prefix, access: p.access })),
      }))
      .sort(byName),
  };
  return new TextEncoder().encode(JSON.stringify(canonical));
}

const bad = (message: string) => new SnapshotFormatError('malformed', `auth section: ${message}`);

/** The state a section holds (undefined bytes: the empty state); throws SnapshotFormatError. */
export function decodeAuthSection(bytes: Uint8Array | undefined): AuthState {
  if (bytes === undefined) return EMPTY_AUTH_STATE;
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw bad(`not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const r = sectionSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw bad(i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid');
  }
  const roles: AuthState['roles'] = Object.fromEntries(r.data.roles.map((x) => [x.name, x]));
  if (Object.keys(roles).length !== r.data.roles.length) throw bad('a role appears twice');
  if (roles[ROOT_ROLE]) throw bad(`the ${ROOT_ROLE} role is built in`);
  const users: AuthState['users'] = Object.fromEntries(r.data.users.map((x) => [x.name, x]));
  if (Object.keys(users).length !== r.data.users.length) throw bad('a user appears twice');
  for (const u of r.data.users) {
    for (const role of u.roles) {
      if (role !== ROOT_ROLE && !roles[role]) throw bad(`user ${u.name} holds unknown role ${role}`);
    }
  }
  if (r.data.enabled && !r.data.users.some((u) => u.roles.includes(ROOT_ROLE))) {
    throw bad(`enabled while no user holds ${ROOT_ROLE}`);
  }
  return { enabled: r.data.enabled, users, roles };
}
