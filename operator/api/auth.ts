// spec.auth of a ConfluxCluster: the client users and roles the operator keeps in the cluster's
// replicated auth state (etcd's model, node/auth/permissions.ts), and the client certificates it
// issues for them (README "Security", docs/reference/crd.md). Both lists are Kubernetes list maps keyed
// by name, so server-side apply merges them entry by entry and the API server refuses duplicates.

import { z } from 'zod';
import type { CelRule } from './crd.js';

/** The role every member knows without being told: it grants every key (node/auth/permissions.ts). */
export const ROOT_ROLE = 'root';

/**
 * A managed user's name: its client certificate's CN and part of its Secret's name
 * (`<cluster>-client-<user>`), so a DNS label.
 */
const userNameSchema = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'a DNS label (lowercase letters, digits and dashes)');

/** A role's name, as the node accepts it (node/auth/permissions.ts). */
const roleNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@:-]*$/, 'letters, digits and . _ @ : -');

export const authPermissionSchema = z.strictObject({
  prefix: z.string().max(1024).describe("Keys starting with this ('' is every key)"),
  access: z.enum(['read', 'write', 'readwrite']),
});

export const authRoleSchema = z.strictObject({
  name: roleNameSchema
    .refine((n) => n !== ROOT_ROLE, 'root is built in and grants every key')
    .describe('The role (root is built in and cannot be declared)'),
  permissions: z
    .array(authPermissionSchema)
    .max(64)
    .default([])
    .refine((ps) => new Set(ps.map((p) => p.prefix)).size === ps.length, 'one permission per prefix')
    .describe('What the role may do, one entry per key prefix'),
});

export const authUserSchema = z.strictObject({
  name: userNameSchema.describe("The user: a client certificate's subject CN names it"),
  roles: z
    .array(roleNameSchema)
    .max(16)
    .default([])
    .refine((rs) => new Set(rs).size === rs.length, 'each role once')
    .describe('Roles of spec.auth.roles, or root'),
  clientCertificate: z
    .boolean()
    .default(false)
    .describe(
      'The operator issues a client certificate (CN = name) into the Secret <cluster>-client-<name> (ca.crt, tls.crt, tls.key), renews it, and deletes it with the user',
    ),
});

export const authSpecSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        'Authorization on the client port (needs TLS and a user holding root); false leaves the users and roles in place but unenforced',
      ),
    roles: z.array(authRoleSchema).max(64).default([]),
    users: z.array(authUserSchema).max(64).default([]),
  })
  .check((ctx) => {
    const { roles, users } = ctx.value;
    const issue = (message: string) => ctx.issues.push({ code: 'custom', message, input: ctx.value });
    if (new Set(roles.map((r) => r.name)).size !== roles.length) issue('auth.roles names must be unique');
    if (new Set(users.map((u) => u.name)).size !== users.length) issue('auth.users names must be unique');
    const declared = new Set([ROOT_ROLE, ...roles.map((r) => r.name)]);
    for (const u of users) {
      for (const r of u.roles) if (!declared.has(r)) issue(ROLE_UNDECLARED(u.name, r));
    }
  })
  .describe(
    'Client users and roles the operator keeps in the cluster; users and roles made by hand (conflux auth) under other names are left alone',
  );
export type AuthSpec = z.output<typeof authSpecSchema>;

const ROLE_UNDECLARED = (user: string, role: string) =>
  `auth.users ${user}: role ${role} is neither root nor declared in auth.roles`;

/** Only the operator's own CA can sign what it issues (plan stalls with this too). */
export const CLIENT_CERTS_NEED_MANAGED_TLS =
  'clientCertificate needs tls.operatorManaged: the operator signs client certificates with the CA it manages';

/** The CEL rules of spec.auth (spread into crd.ts CEL_RULES), mirroring the checks above. */
export const AUTH_CEL_RULES: readonly CelRule[] = [
  {
    kind: 'ConfluxCluster',
    path: 'spec.auth',
    rule:
      "!has(self.users) || self.users.all(u, !has(u.roles) || u.roles.all(r, r == 'root' || " +
      '(has(self.roles) && self.roles.exists(x, x.name == r))))',
    message: 'every role a user of spec.auth holds is root or declared in spec.auth.roles',
    reason: 'FieldValueInvalid',
    fieldPath: '.users',
  },
  {
    kind: 'ConfluxCluster',
    path: 'spec.auth',
    rule: "!has(self.roles) || self.roles.all(r, r.name != 'root')",
    message: 'spec.auth.roles may not declare root: it is built in and grants every key',
    reason: 'FieldValueForbidden',
    fieldPath: '.roles',
  },
  {
    kind: 'ConfluxCluster',
    path: 'spec',
    rule:
      '!has(self.auth) || !has(self.auth.users) || !self.auth.users.exists(u, has(u.clientCertificate) && u.clientCertificate) || ' +
      '!has(self.tls) || !has(self.tls.operatorManaged) || self.tls.operatorManaged',
    message: CLIENT_CERTS_NEED_MANAGED_TLS,
    reason: 'FieldValueForbidden',
    fieldPath: '.auth.users',
  },
];

/** The list maps of spec.auth (dot path under spec, and its keys), marked in the CRD. */
export const AUTH_LIST_MAPS: readonly { path: string; keys: string[] }[] = [
  { path: 'auth.roles', keys: ['name'] },
  { path: 'auth.roles.permissions', keys: ['prefix'] },
  { path: 'auth.users', keys: ['name'] },
];
