// The auth step's I/O: observe asks the leader for the auth document only when spec.auth or
// status.auth gives it something to keep; act sends the batch before touching certificates, so a
// removed user is refused before its Secret goes, and a refused batch issues or deletes nothing.

import { beforeEach, describe, expect, it, vi } from 'vitest';
import { confluxClusterSchema } from '../api/cluster.js';
import type { Platform } from '../platform/platform.js';
import { observeAuth, syncAuth } from './auth-io.js';
import { member, world } from './plan/member-fixtures.js';
import type { Action } from './types.js';

const admin = vi.hoisted(() => ({ calls: [] as unknown[][], failure: null as Error | null }));
const DOC = { enabled: true, users: [{ name: 'ops', roles: ['root'] }], roles: [] };

vi.mock('../../node/api/admin-client.js', async (original) => {
  const real = await original<typeof import('../../node/api/admin-client.js')>();
  return {
    ...real,
    adminCallParsed: async (schema: { parse(x: unknown): unknown }, ...args: unknown[]) => {
      admin.calls.push(args);
      if (admin.failure) throw admin.failure;
      return schema.parse(DOC);
    },
  };
});

const CLIENT = { timeoutMs: 5_000 };
const cluster = (spec: Record<string, unknown>, status?: Record<string, unknown>) =>
  confluxClusterSchema.parse({
    apiVersion: 'conflux.io/v1alpha1',
    kind: 'ConfluxCluster',
    metadata: { name: 'demo', namespace: 'default' },
    spec,
    ...(status ? { status } : {}),
  });

function recording(withCerts = true) {
  const calls: string[] = [];
  const platform = {
    kind: 'kubernetes',
    adminClient: async () => CLIENT,
    ...(withCerts
      ? {
          syncClientCertificates: async (_c: unknown, issue: string[], remove: string[]) => {
            calls.push(`certs issue=${issue} remove=${remove}`);
          },
        }
      : {}),
  } as unknown as Platform;
  return { platform, calls };
}

const sync = (changes: unknown[], issue: string[], remove: string[]) =>
  ({ type: 'sync-auth', changes, issueCertificates: issue, removeCertificates: remove }) as Extract<
    Action,
    { type: 'sync-auth' }
  >;

beforeEach(() => {
  admin.calls.length = 0;
  admin.failure = null;
});

describe('observeAuth', () => {
  it('reads GET /_cluster/auth from the address given, parsed', async () => {
    const doc = await observeAuth(cluster({ auth: {} }), '10.0.0.1:8443', CLIENT);
    expect(doc).toEqual(DOC);
    expect(admin.calls).toEqual([['10.0.0.1:8443', 'GET', '/_cluster/auth', undefined, CLIENT]]);
  });

  it('asks nothing without spec.auth or managed names, or without a member to ask', async () => {
    expect(await observeAuth(cluster({}), '10.0.0.1:8443', CLIENT)).toBeNull();
    expect(await observeAuth(cluster({ auth: {} }), undefined, CLIENT)).toBeNull();
    expect(admin.calls).toEqual([]);
    // Names it made are still to clean up after spec.auth is gone.
    const left = cluster({}, { auth: { users: ['alice'], roles: [] } });
    expect(await observeAuth(left, '10.0.0.1:8443', CLIENT)).toEqual(DOC);
  });

  it('a member that does not answer is no document, not an error', async () => {
    admin.failure = new Error('ECONNREFUSED');
    expect(await observeAuth(cluster({ auth: {} }), '10.0.0.1:8443', CLIENT)).toBeNull();
  });
});

describe('syncAuth (act)', () => {
  const obs = () => world({ slots: [member(0, 'n-a', { leader: 'n-a' })], doc: null, prev: {} });
  const leader = () => '10.0.0.9:8443';

  it('sends the batch to the leader, then issues and deletes certificates', async () => {
    const { platform, calls } = recording();
    const changes = [{ op: 'user-delete', user: 'alice' }];
    await syncAuth(platform, obs(), sync(changes, ['bob'], ['alice']), leader);
    expect(admin.calls).toEqual([['10.0.0.9:8443', 'POST', '/_cluster/auth', { changes }, CLIENT]]);
    expect(calls).toEqual(['certs issue=bob remove=alice']);
  });

  it('sends no empty batch; a refused batch touches no certificate', async () => {
    const { platform, calls } = recording();
    await syncAuth(platform, obs(), sync([], ['bob'], []), leader);
    expect(admin.calls).toEqual([]);
    admin.failure = new Error('refused');
    await expect(syncAuth(platform, obs(), sync([{ op: 'enable' }], [], ['alice']), leader)).rejects.toThrow(
      'refused',
    );
    expect(calls).toEqual(['certs issue=bob remove=']);
  });

  it('a platform that issues no client certificates says so', async () => {
    const { platform } = recording(false);
    await expect(syncAuth(platform, obs(), sync([], ['bob'], []), leader)).rejects.toThrow(
      /issues no client certificates/,
    );
  });
});
