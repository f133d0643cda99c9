// Admission cases of spec.auth's CEL rules (operator/api/auth.ts), run by cel.test.ts with the
// other rules of the CRD: [name, object, old object (undefined = create), messages expected].

import { AUTH_CEL_RULES } from './auth.js';
import { API_VERSION } from './cluster.js';

const [ROLES_DECLARED, ROOT_BUILT_IN, MANAGED_TLS] = AUTH_CEL_RULES.map((r) => r.message);

const withAuth = (auth: Record<string, unknown>, tls?: Record<string, unknown>) => ({
  apiVersion: API_VERSION,
  kind: 'ConfluxCluster',
  metadata: { name: 'c', namespace: 'default' },
  spec: { auth, ...(tls ? { tls } : {}) },
});
const ownTls = { operatorManaged: false, nodeSecretName: 'node-tls', adminSecretName: 'admin-tls' };

const reader = { name: 'app-reader', permissions: [{ prefix: '/app/', access: 'read' }] };

export function authCases(): [string, object, object | undefined, string[]][] {
  return [
    [
      'auth: users holding root and declared roles',
      withAuth({
        roles: [reader],
        users: [
          { name: 'ops', roles: ['root'] },
          { name: 'alice', roles: ['app-reader'], clientCertificate: true },
        ],
      }),
      undefined,
      [],
    ],
    ['auth: a user without roles, no roles declared', withAuth({ users: [{ name: 'bob' }] }), undefined, []],
    [
      'auth: a user holding an undeclared role',
      withAuth({ roles: [reader], users: [{ name: 'alice', roles: ['app-writer'] }] }),
      undefined,
      [ROLES_DECLARED ?? ''],
    ],
    [
      'auth: a role when none is declared',
      withAuth({ users: [{ name: 'alice', roles: ['app-reader'] }] }),
      undefined,
      [ROLES_DECLARED ?? ''],
    ],
    [
      'auth: client certificates with user-provided TLS',
      withAuth({ users: [{ name: 'bob', clientCertificate: true }] }, ownTls),
      undefined,
      [MANAGED_TLS ?? ''],
    ],
    [
      'auth: users without certificates, user-provided TLS',
      withAuth({ users: [{ name: 'bob' }] }, ownTls),
      undefined,
      [],
    ],
    ['auth: declaring root', withAuth({ roles: [{ name: 'root' }] }), undefined, [ROOT_BUILT_IN ?? '']],
  ];
}
