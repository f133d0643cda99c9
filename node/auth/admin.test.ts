// The admin handlers of client authorization, against a store and a stand-in for the Raft node:
// leader only, all or none, and no enabling without TLS.

import { describe, expect, it } from 'vitest';
import { KvStore } from '../kv/store.js';
import { normal } from '../kv/test-helpers.js';
import type { RaftNode } from '../raft/raft-node.js';
import { getAuth, postAuth } from './admin.js';
import type { AuthChange } from './permissions.js';

function node(state: 'leader' | 'follower', tls = true) {
  const kv = new KvStore();
  const raft = {
    metrics: () => ({ state, currentLeader: state === 'leader' ? 'n1' : 'n2' }),
    ensureLinearizable: async () => kv.applied,
    clientWrite: async (data: Uint8Array) => ({ response: kv.apply(normal(kv.applied + 1, data)) }),
  } as unknown as RaftNode<unknown>;
  return { kv, ctx: { raft, authState: () => kv.auth, tls } };
}

const rootUser: AuthChange[] = [
  { op: 'user-add', user: 'ops' },
  { op: 'user-grant-role', user: 'ops', role: 'root' },
];

describe('/_cluster/auth handlers', () => {
  it('apply changes on the leader and answer the sorted state', async () => {
    const { ctx, kv } = node('leader');
    const out = await postAuth(ctx, {
      changes: [{ op: 'user-add', user: 'zed' }, ...rootUser, { op: 'enable' }],
    });
    expect(out).toEqual({
      enabled: true,
      users: [
        { name: 'ops', roles: ['root'] },
        { name: 'zed', roles: [] },
      ],
      roles: [],
    });
    expect(await getAuth(ctx)).toEqual(out);
    expect(kv.auth.enabled).toBe(true);
  });

  it('refuse a batch with one bad change, applying none of it', async () => {
    const { ctx, kv } = node('leader');
    await expect(
      postAuth(ctx, { changes: [...rootUser, { op: 'role-delete', role: 'nope' }] }),
    ).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
      message: expect.stringMatching(/none applied: no role nope/),
    });
    expect(kv.auth.users).toEqual({});
  });

  it('refuse to enable without TLS, whoever holds root', async () => {
    const { ctx, kv } = node('leader', false);
    await expect(postAuth(ctx, { changes: [...rootUser, { op: 'enable' }] })).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
      message: expect.stringMatching(/needs TLS/),
    });
    expect(kv.applied).toBe(0);
  });

  it('send followers to the leader (NOT_LEADER, which the route turns into a 307)', async () => {
    const { ctx } = node('follower');
    await expect(getAuth(ctx)).rejects.toMatchObject({ code: 'NOT_LEADER' });
    await expect(postAuth(ctx, { changes: rootUser })).rejects.toMatchObject({ code: 'NOT_LEADER' });
  });
});
