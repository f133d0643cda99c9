// The permission logic alone: which changes apply, and which requests a user's roles allow.

import { describe, expect, it } from 'vitest';
import {
  type AuthChange,
  type AuthState,
  applyAuthChange,
  authorize,
  EMPTY_AUTH_STATE,
  parseAuthChange,
  txnNeeds,
} from './permissions.js';

const apply = (state: AuthState, ...changes: AuthChange[]) => changes.reduce(applyAuthChange, state);

/** app reads and writes config/app/, reads shared/; ops is root; ro reads config/. */
const state = apply(
  EMPTY_AUTH_STATE,
  { op: 'user-add', user: 'ops' },
  { op: 'user-grant-role', user: 'ops', role: 'root' },
  { op: 'role-add', role: 'app-rw' },
  { op: 'role-grant', role: 'app-rw', permission: { prefix: 'config/app/', access: 'readwrite' } },
  { op: 'role-grant', role: 'app-rw', permission: { prefix: 'shared/', access: 'read' } },
  { op: 'role-add', role: 'reader' },
  { op: 'role-grant', role: 'reader', permission: { prefix: 'config/', access: 'read' } },
  { op: 'user-add', user: 'app' },
  { op: 'user-grant-role', user: 'app', role: 'app-rw' },
  { op: 'user-add', user: 'ro' },
  { op: 'user-grant-role', user: 'ro', role: 'reader' },
  { op: 'enable' },
);

const allowed = (user: string | null, ...needs: Parameters<typeof authorize>[2]) => {
  try {
    authorize(state, user, needs);
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  }
};

describe('authorization', () => {
  it('lets everything through while it is disabled, even without a user', () => {
    const off = applyAuthChange(state, { op: 'disable' });
    expect(() => authorize(off, null, [{ key: 'anything', access: 'write' }])).not.toThrow();
    expect(() => authorize(EMPTY_AUTH_STATE, 'nobody', [{ prefix: '', access: 'read' }])).not.toThrow();
  });

  it('needs a certificate and a known user once enabled', () => {
    expect(allowed(null, { key: 'config/app/x', access: 'read' })).toBe('UNAUTHENTICATED');
    expect(allowed('mallory', { key: 'config/app/x', access: 'read' })).toBe('FORBIDDEN');
  });

  it('checks every key against the prefixes and the access of the user roles', () => {
    expect(allowed('app', { key: 'config/app/db', access: 'write' })).toBe('ok');
    expect(allowed('app', { key: 'config/app/db', access: 'read' })).toBe('ok');
    expect(allowed('app', { key: 'shared/tz', access: 'read' })).toBe('ok');
    expect(allowed('app', { key: 'shared/tz', access: 'write' })).toBe('FORBIDDEN');
    expect(allowed('app', { key: 'config/other', access: 'read' })).toBe('FORBIDDEN');
    // A prefix is a string prefix: config/app/ does not cover config/application.
    expect(allowed('app', { key: 'config/application', access: 'read' })).toBe('FORBIDDEN');
    expect(allowed('ro', { key: 'config/app/db', access: 'read' })).toBe('ok');
    expect(allowed('ro', { key: 'config/app/db', access: 'write' })).toBe('FORBIDDEN');
    expect(allowed('ops', { key: 'anything', access: 'write' }, { prefix: '', access: 'read' })).toBe('ok');
  });

  it('grants a range or watch only when one permission covers its whole prefix', () => {
    expect(allowed('app', { prefix: 'config/app/', access: 'read' })).toBe('ok');
    expect(allowed('app', { prefix: 'config/app/db/', access: 'read' })).toBe('ok');
    expect(allowed('app', { prefix: 'config/', access: 'read' })).toBe('FORBIDDEN');
    expect(allowed('app', { prefix: '', access: 'read' })).toBe('FORBIDDEN');
    expect(allowed('ro', { prefix: 'config/', access: 'read' })).toBe('ok');
  });

  it('checks every compare and every op of both branches of a transaction', () => {
    const txn = (compareKey: string, failureKey: string) =>
      txnNeeds({
        compare: [{ key: compareKey }],
        success: [
          { type: 'put', key: 'config/app/a' },
          { type: 'get', key: 'shared/b' },
        ],
        failure: [{ type: 'delete', key: failureKey }],
      });
    expect(allowed('app', ...txn('config/app/v', 'config/app/a'))).toBe('ok');
    // A compare reads: a key the user may not read cannot be probed through a compare.
    expect(allowed('app', ...txn('secret/x', 'config/app/a'))).toBe('FORBIDDEN');
    // The branch that will not run is checked too.
    expect(allowed('app', ...txn('config/app/v', 'shared/b'))).toBe('FORBIDDEN');
    expect(() => authorize(state, 'app', txn('secret/x', 'config/app/a'))).toThrow(
      /user app may not read key "secret\/x"/,
    );
  });
});

describe('auth changes', () => {
  it('refuses to enable authorization while no user holds root', () => {
    const s = apply(EMPTY_AUTH_STATE, { op: 'user-add', user: 'a' });
    expect(() => applyAuthChange(s, { op: 'enable' })).toThrow(/grant the root role/);
  });

  it('never leaves an enabled cluster without a root user', () => {
    expect(() => applyAuthChange(state, { op: 'user-delete', user: 'ops' })).toThrow(/no user would hold/);
    expect(() => applyAuthChange(state, { op: 'user-revoke-role', user: 'ops', role: 'root' })).toThrow(
      /no user would hold/,
    );
    const off = applyAuthChange(state, { op: 'disable' });
    expect(applyAuthChange(off, { op: 'user-delete', user: 'ops' }).users.ops).toBeUndefined();
  });

  it('refuses unknown users and roles, duplicates and the built-in root role by name', () => {
    expect(() => applyAuthChange(state, { op: 'user-add', user: 'app' })).toThrow(/user app exists/);
    expect(() => applyAuthChange(state, { op: 'role-add', role: 'root' })).toThrow(/role root exists/);
    expect(() => applyAuthChange(state, { op: 'role-delete', role: 'root' })).toThrow(/built in/);
    expect(() => applyAuthChange(state, { op: 'user-grant-role', user: 'x', role: 'reader' })).toThrow(
      /no user x/,
    );
    expect(() => applyAuthChange(state, { op: 'user-grant-role', user: 'app', role: 'nope' })).toThrow(
      /no role nope/,
    );
    expect(() => applyAuthChange(state, { op: 'role-revoke', role: 'reader', prefix: 'zzz' })).toThrow(
      /no permission on prefix "zzz"/,
    );
  });

  it('replaces a permission on the same prefix, and deleting a role takes it from its users', () => {
    const s = applyAuthChange(state, {
      op: 'role-grant',
      role: 'reader',
      permission: { prefix: 'config/', access: 'readwrite' },
    });
    expect(s.roles.reader?.permissions).toEqual([{ prefix: 'config/', access: 'readwrite' }]);
    const gone = applyAuthChange(s, { op: 'role-delete', role: 'reader' });
    expect(gone.users.ro?.roles).toEqual([]);
    expect(() => authorize(gone, 'ro', [{ key: 'config/x', access: 'read' }])).toThrow(/may not read/);
    // The original state is untouched (changes are pure).
    expect(state.roles.reader?.permissions).toEqual([{ prefix: 'config/', access: 'read' }]);
  });

  it('parses untrusted changes strictly', () => {
    expect(parseAuthChange({ op: 'user-add', user: 'CN-app_1' })).toEqual({
      op: 'user-add',
      user: 'CN-app_1',
    });
    expect(() => parseAuthChange({ op: 'user-add', user: 'a b' })).toThrow(/user: letters, digits/);
    expect(() =>
      parseAuthChange({ op: 'role-grant', role: 'r', permission: { prefix: 'a', access: 'all' } }),
    ).toThrow(/permission.access/);
    expect(() => parseAuthChange({ op: 'enable', extra: 1 })).toThrow(/invalid auth change/);
  });
});
