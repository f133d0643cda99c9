import { describe, expect, it } from 'vitest';
import type { AuthChange } from '../../../node/auth/permissions.js';
import { type AuthSpec, authSpecSchema, CLIENT_CERTS_NEED_MANAGED_TLS } from '../../api/auth.js';
import type { ClusterStatus, OperationStatus } from '../../api/cluster.js';
import { findCondition } from '../conditions.js';
import { plan } from '../plan.js';
import type { CertView, Observation, OwnedView } from '../types.js';
import {
  type AuthDoc,
  authChanges,
  clientCertificatesDue,
  managedAfter,
  refusalOf,
  syncAuth,
} from './auth.js';
import { digest } from './context.js';
import { doc, member, NOW, prevStatus, world } from './member-fixtures.js';

const DAY = 24 * 60 * 60 * 1000;
const IDS = ['n-a', 'n-b', 'n-c'];
const spec = (s: Record<string, unknown>): AuthSpec => authSpecSchema.parse(s);
const none = { users: [], roles: [] };

const reader = { name: 'app-reader', permissions: [{ prefix: '/app/', access: 'read' }] };
const SPEC = spec({
  roles: [reader],
  users: [
    { name: 'ops', roles: ['root'] },
    { name: 'alice', roles: ['app-reader'], clientCertificate: true },
  ],
});
/** The cluster's state once SPEC is applied, plus bob, made by hand. */
const APPLIED: AuthDoc = {
  enabled: true,
  users: [
    { name: 'alice', roles: ['app-reader'] },
    { name: 'bob', roles: ['app-reader'] },
    { name: 'ops', roles: ['root'] },
  ],
  roles: [{ name: 'app-reader', permissions: [{ prefix: '/app/', access: 'read' }] }],
};
const EMPTY: AuthDoc = { enabled: false, users: [], roles: [] };
const MANAGED = { users: ['alice', 'ops'], roles: ['app-reader'] };

type ChangeCase = [
  name: string,
  spec: AuthSpec | undefined,
  doc: AuthDoc,
  managed: typeof MANAGED,
  want: AuthChange[],
];

const changeCases: ChangeCase[] = [
  [
    'a new cluster: roles, users, then enable last',
    SPEC,
    EMPTY,
    none,
    [
      { op: 'role-add', role: 'app-reader' },
      { op: 'role-grant', role: 'app-reader', permission: { prefix: '/app/', access: 'read' } },
      { op: 'user-add', user: 'ops' },
      { op: 'user-grant-role', user: 'ops', role: 'root' },
      { op: 'user-add', user: 'alice' },
      { op: 'user-grant-role', user: 'alice', role: 'app-reader' },
      { op: 'enable' },
    ],
  ],
  ['converged: nothing, and bob made by hand is left alone', SPEC, APPLIED, MANAGED, []],
  [
    'a user dropped from the spec is deleted; bob is not',
    spec({ roles: [reader], users: [{ name: 'ops', roles: ['root'] }] }),
    APPLIED,
    MANAGED,
    [{ op: 'user-delete', user: 'alice' }],
  ],
  [
    'a permission changed: granted anew (a grant replaces the same prefix), another revoked',
    spec({
      roles: [{ name: 'app-reader', permissions: [{ prefix: '/cfg/', access: 'readwrite' }] }],
      users: [
        { name: 'ops', roles: ['root'] },
        { name: 'alice', roles: ['app-reader'] },
      ],
    }),
    APPLIED,
    MANAGED,
    [
      { op: 'role-grant', role: 'app-reader', permission: { prefix: '/cfg/', access: 'readwrite' } },
      { op: 'role-revoke', role: 'app-reader', prefix: '/app/' },
    ],
  ],
  [
    'root moves from ops to alice: granted before it is revoked',
    spec({ roles: [reader], users: [{ name: 'ops' }, { name: 'alice', roles: ['app-reader', 'root'] }] }),
    APPLIED,
    MANAGED,
    [
      { op: 'user-grant-role', user: 'alice', role: 'root' },
      { op: 'user-revoke-role', user: 'ops', role: 'root' },
    ],
  ],
  [
    'enabled: false turns authorization off first and keeps the users',
    spec({ enabled: false, roles: [reader], users: SPEC.users }),
    APPLIED,
    MANAGED,
    [{ op: 'disable' }],
  ],
  [
    'a hand-made user the spec names is taken over',
    spec({ roles: [reader], users: [...SPEC.users, { name: 'bob', roles: [] }] }),
    APPLIED,
    MANAGED,
    [{ op: 'user-revoke-role', user: 'bob', role: 'app-reader' }],
  ],
  [
    'spec.auth removed: what it made goes, authorization off first (nobody would hold root)',
    undefined,
    APPLIED,
    MANAGED,
    [
      { op: 'disable' },
      { op: 'user-delete', user: 'alice' },
      { op: 'user-delete', user: 'ops' },
      { op: 'role-delete', role: 'app-reader' },
    ],
  ],
  [
    'spec.auth removed while a hand-made root remains: authorization stays on',
    undefined,
    { ...APPLIED, users: [...APPLIED.users, { name: 'sre', roles: ['root'] }] },
    MANAGED,
    [
      { op: 'user-delete', user: 'alice' },
      { op: 'user-delete', user: 'ops' },
      { op: 'role-delete', role: 'app-reader' },
    ],
  ],
];

describe('authChanges: the batch from the cluster to spec.auth', () => {
  it.each(changeCases)('%s', (_name, s, d, managed, want) => {
    const changes = authChanges(s, d, managed);
    expect(changes).toEqual(want);
    // Every batch it makes is one the node applies as a whole.
    expect(refusalOf(d, changes)).toBeNull();
  });

  it('a spec that drops the last root while enabled is refused with the node’s words', () => {
    const s = spec({ roles: [reader], users: [{ name: 'alice', roles: ['app-reader'] }] });
    const changes = authChanges(s, APPLIED, MANAGED);
    expect(changes).toEqual([{ op: 'user-delete', user: 'ops' }]);
    expect(refusalOf(APPLIED, changes)).toMatch(/root/);
  });

  it('enabling with nobody holding root is refused', () => {
    const changes = authChanges(spec({ users: [{ name: 'alice' }] }), EMPTY, none);
    expect(changes.at(-1)).toEqual({ op: 'enable' });
    expect(refusalOf(EMPTY, changes)).toMatch(/root/);
  });
});

describe('managedAfter: status.auth', () => {
  it('is what the spec names plus what it made that still exists', () => {
    const s = spec({ users: [{ name: 'ops', roles: ['root'] }] });
    expect(managedAfter(s, APPLIED, MANAGED)).toEqual({ users: ['alice', 'ops'], roles: ['app-reader'] });
    const gone = { ...APPLIED, users: APPLIED.users.filter((u) => u.name !== 'alice'), roles: [] };
    expect(managedAfter(s, gone, MANAGED)).toEqual({ users: ['ops'], roles: [] });
    // Unread (no leader): nothing is forgotten.
    expect(managedAfter(undefined, null, MANAGED)).toEqual(MANAGED);
  });
});

const cert = (toMs: number, problem: string | null = null): CertView => ({
  notBefore: new Date(NOW.getTime() - DAY).toISOString(),
  notAfter: new Date(NOW.getTime() + toMs).toISOString(),
  fingerprint: 'f',
  problem,
});

describe('clientCertificatesDue', () => {
  const now = NOW.getTime();
  it.each([
    ['missing', {}, [{ user: 'alice', reason: 'missing' }], []],
    ['valid', { alice: cert(300 * DAY) }, [], []],
    [
      'within 30 days of expiry',
      { alice: cert(29 * DAY) },
      [{ user: 'alice', reason: expect.stringMatching(/within 30 days/) }],
      [],
    ],
    [
      'broken',
      { alice: cert(300 * DAY, 'not signed by the CA') },
      [{ user: 'alice', reason: 'not signed by the CA' }],
      [],
    ],
    ['a certificate nobody wants any more', { alice: cert(300 * DAY), ops: cert(300 * DAY) }, [], ['ops']],
  ] as const)('%s', (_name, issued, issue, remove) => {
    expect(clientCertificatesDue(SPEC, issued as Record<string, CertView>, now)).toEqual({ issue, remove });
  });

  it('without spec.auth every issued certificate goes', () => {
    expect(clientCertificatesDue(undefined, { alice: cert(300 * DAY) }, now)).toEqual({
      issue: [],
      remove: ['alice'],
    });
  });
});

function settled(o: {
  auth?: Record<string, unknown>;
  doc?: AuthDoc | null;
  prev?: Partial<ClusterStatus>;
  certs?: Record<string, CertView>;
  owned?: OwnedView;
}): Observation {
  const w = world({
    slots: IDS.map((id, k) => member(k, id, { leader: IDS[0] })),
    doc: doc(Object.fromEntries(IDS.map((id) => [id, { reachable: true }])), IDS[0] ?? null),
    prev: prevStatus(Object.fromEntries(IDS.map((id, k) => [id, k])), o.prev ?? {}),
  });
  const cluster = { ...w.cluster, spec: { ...w.cluster.spec, ...(o.auth ? { auth: spec(o.auth) } : {}) } };
  return {
    ...w,
    cluster,
    owned: o.owned ?? {
      drift: [],
      pdbMinAvailable: 2,
      unsupported: [],
      tls: {
        managed: true,
        ca: cert(3000 * DAY),
        caProblem: null,
        rotation: { phase: null, since: null, next: null },
        node: cert(300 * DAY),
        admin: cert(300 * DAY),
      },
    },
    auth: o.doc === undefined ? EMPTY : o.doc,
    ...(o.certs ? { clientCertificates: o.certs } : {}),
  };
}

const AUTH = {
  roles: [reader],
  users: [
    { name: 'ops', roles: ['root'] },
    { name: 'alice', roles: ['app-reader'], clientCertificate: true },
  ],
};

describe('syncAuth in plan()', () => {
  it('applies spec.auth as a side step named in status, conditions and an event', () => {
    const p = plan(settled({ auth: AUTH, certs: {} }));
    expect(p.action).toMatchObject({
      type: 'sync-auth',
      issueCertificates: ['alice'],
      removeCertificates: [],
    });
    expect(p.action.type === 'sync-auth' && p.action.changes.at(-1)).toEqual({ op: 'enable' });
    expect(p.status.operation).toMatchObject({ kind: 'Auth', step: 'applying' });
    expect(p.status.auth).toEqual({ users: ['alice', 'ops'], roles: ['app-reader'] });
    expect(findCondition(p.status.conditions, 'Progressing')).toMatchObject({
      status: 'True',
      reason: 'SyncingAuth',
    });
    expect(p.events).toContainEqual(expect.objectContaining({ reason: 'SyncingAuth', type: 'Normal' }));
  });

  it('converged: nothing to do, the side step ends', () => {
    const prevOp: OperationStatus = { kind: 'Auth', step: 'applying', startedAt: NOW.toISOString() };
    const p = plan(
      settled({
        auth: AUTH,
        doc: APPLIED,
        certs: { alice: cert(300 * DAY) },
        prev: { auth: MANAGED, operation: prevOp },
      }),
    );
    expect(p.action).toEqual({ type: 'none' });
    expect(p.status.operation ?? null).toBeNull();
    expect(p.status.auth).toEqual(MANAGED);
  });

  it('never replaces a flow in flight, and follows a side step', () => {
    const at = NOW.toISOString();
    const flow: OperationStatus = { kind: 'RollingUpdate', ordinal: 1, step: 'restarting', startedAt: at };
    expect(syncAuth(digest(settled({ auth: AUTH, certs: {}, prev: { operation: flow } })))).toBeNull();
    const repair: OperationStatus = { kind: 'Repair', step: 'applying', startedAt: at };
    const after = syncAuth(digest(settled({ auth: AUTH, certs: {}, prev: { operation: repair } })));
    expect(after?.operation).toMatchObject({ kind: 'Auth' });
  });

  it('removing a user deletes it and its certificate', () => {
    const s = { roles: [reader], users: [{ name: 'ops', roles: ['root'] }] };
    const p = plan(
      settled({ auth: s, doc: APPLIED, certs: { alice: cert(300 * DAY) }, prev: { auth: MANAGED } }),
    );
    expect(p.action).toEqual({
      type: 'sync-auth',
      changes: [{ op: 'user-delete', user: 'alice' }],
      issueCertificates: [],
      removeCertificates: ['alice'],
    });
  });

  it('stalls with the reason when the spec cannot be applied, changing nothing', () => {
    const p = plan(settled({ auth: { users: [{ name: 'alice' }] } }));
    expect(p.action.type).toBe('wait');
    expect(findCondition(p.status.conditions, 'Stalled')).toMatchObject({
      status: 'True',
      reason: 'AuthRefused',
    });
    expect(findCondition(p.status.conditions, 'Stalled')?.message).toMatch(/root/);
  });

  it('refuses client certificates without the operator’s CA, and authorization without TLS', () => {
    const own = settled({ auth: AUTH }).owned as OwnedView;
    const userTls = plan(
      settled({
        auth: AUTH,
        owned: { ...own, tls: { ...(own.tls as NonNullable<OwnedView['tls']>), managed: false } },
      }),
    );
    expect(findCondition(userTls.status.conditions, 'Stalled')?.message).toBe(CLIENT_CERTS_NEED_MANAGED_TLS);
    const insecure = plan(settled({ auth: AUTH, owned: { ...own, tls: null } }));
    expect(findCondition(insecure.status.conditions, 'Stalled')?.message).toMatch(/needs TLS/);
  });

  it('waits for a leader to read the users from', () => {
    expect(plan(settled({ auth: AUTH, doc: null })).action).toEqual({ type: 'none' });
  });
});
