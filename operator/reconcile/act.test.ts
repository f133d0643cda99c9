// act() on a recording Platform: each action type calls the right platform operation or admin route
// with the right arguments, and a failing call surfaces as act()'s error. The admin client is
// replaced by a recorder that answers canned documents (parsed by the route's real schema): no HTTP.

import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { AdminAnswer, AdminClientOptions } from '../../node/api/admin-client.js';
import {
  forceNewClusterResponseSchema,
  initializeResponseSchema,
  operationSchema,
  restoreResponseSchema,
} from '../../node/api/admin-contract.js';
import { ConfluxError } from '../../node/errors.js';
import type { ConfluxCluster } from '../api/cluster.js';
import type { Platform } from '../platform/platform.js';
import { act } from './act.js';
import { down, member, pristine, world } from './plan/member-fixtures.js';
import type { Action, Observation, SlotView } from './types.js';

/** Every admin call act() makes, and what the next ones answer (by path), or the error they throw. */
const admin = vi.hoisted(() => ({
  calls: [] as { fn: 'call' | 'parsed'; schema?: unknown; args: unknown[] }[],
  answers: new Map<string, unknown>(),
  failure: null as Error | null,
  raw: { status: 200, body: {} } as { status: number; body: unknown },
}));

vi.mock('../../node/api/admin-client.js', async (original) => {
  const real = await original<typeof import('../../node/api/admin-client.js')>();
  return {
    ...real,
    adminCall: async (...args: unknown[]): Promise<AdminAnswer> => {
      admin.calls.push({ fn: 'call', args });
      if (admin.failure) throw admin.failure;
      return admin.raw;
    },
    adminCallParsed: async (schema: { parse(x: unknown): unknown }, ...args: unknown[]) => {
      admin.calls.push({ fn: 'parsed', schema, args });
      if (admin.failure) throw admin.failure;
      return schema.parse(admin.answers.get(args[2] as string));
    },
  };
});

const CLIENT: AdminClientOptions = { timeoutMs: 5_000 };

type Call = { op: string; args: unknown[] };

/** A Platform that records each call and answers canned values; `fail` makes one operation reject. */
function recordingPlatform(o: { optional?: boolean; revision?: string; fail?: string } = {}) {
  const calls: Call[] = [];
  const record =
    <T>(op: string, answer: T) =>
    async (...args: unknown[]): Promise<T> => {
      calls.push({ op, args });
      if (o.fail === op) throw new Error(`${op} failed`);
      return answer;
    };
  const platform: Platform = {
    kind: 'kubernetes',
    ensureMembers: record('ensureMembers', undefined),
    setSize: record('setSize', 3),
    pods: record('pods', []),
    volumes: record('volumes', []),
    deleteVolume: record('deleteVolume', undefined),
    adminClient: record('adminClient', CLIENT),
    backupCredentials: record('backupCredentials', undefined),
    templateRevision: record('templateRevision', o.revision ?? 'rev-2'),
    restartMember: record('restartMember', undefined),
    recreateMember: record('recreateMember', undefined),
    ...(o.optional === false
      ? {}
      : {
          repairOwned: record('repairOwned', undefined),
          renewCertificates: record('renewCertificates', undefined),
          rotateCa: record('rotateCa', undefined),
        }),
  };
  return { platform, calls };
}

/** The slot with its node's own address book filled in (how memberOf finds an admin address). */
function addressed(s: SlotView): SlotView {
  const node = s.node!;
  const a = s.pod.addresses;
  return {
    ...s,
    node: {
      ...node,
      nodes: { [node.node_id]: { api_address: a.api, raft_address: a.raft, admin_address: a.admin } },
    },
  };
}

const addressesOf = (s: SlotView) => ({
  api_address: s.pod.addresses.api,
  raft_address: s.pod.addresses.raft,
  admin_address: s.pod.addresses.admin,
});

/** Slot 0 leads (n0), slot 1 follows (n1), slot 2 holds a pristine node (n2), slot 3 is down. */
const running = (): Observation =>
  world({
    slots: [
      addressed(member(0, 'n0', { leader: 'n0' })),
      member(1, 'n1', { leader: 'n0' }),
      pristine(2, 'n2'),
      down(3),
    ],
    doc: null,
    prev: {},
  });

/** Three pristine slots, nothing bootstrapped. */
const pristineSet = (): Observation =>
  world({ slots: [pristine(0, 'p0'), pristine(1, 'p1'), pristine(2, 'p2')], doc: null, prev: {} });

const OPERATION = {
  id: 'op-7',
  kind: 'add-node',
  node_id: 'n2',
  state: 'running',
  step: 'catching-up',
  created_at: '2026-02-01T12:00:00.000Z',
  finished_at: null,
  error: null,
  lag: 3,
};

beforeEach(() => {
  admin.calls.length = 0;
  admin.answers.clear();
  admin.failure = null;
  admin.raw = { status: 200, body: {} };
});

describe('act: platform actions', () => {
  const cases: { action: Action; op: string; args: (c: ConfluxCluster) => unknown[] }[] = [
    {
      action: { type: 'ensure-members', size: 5, minAvailable: 2 },
      op: 'ensureMembers',
      args: (c) => [c, 5, 2],
    },
    {
      action: { type: 'repair-owned', minAvailable: 2, repairs: ['Service demo'] },
      op: 'repairOwned',
      args: (c) => [c, 2],
    },
    {
      action: { type: 'renew-certificates', reasons: ['expiring'] },
      op: 'renewCertificates',
      args: (c) => [c],
    },
    {
      action: { type: 'rotate-ca', step: 'promote', reason: 'due' },
      op: 'rotateCa',
      args: (c) => [c, 'promote'],
    },
    { action: { type: 'delete-volume', ordinal: 4 }, op: 'deleteVolume', args: (c) => [c, 4] },
    { action: { type: 'recreate-member', ordinal: 1 }, op: 'recreateMember', args: (c) => [c, 1] },
  ];

  it.each(cases)('$action.type calls $op and nothing else', async ({ action, op, args }) => {
    const { platform, calls } = recordingPlatform();
    const obs = running();
    await expect(act(platform, obs, action)).resolves.toEqual({});
    expect(calls).toEqual([{ op, args: args(obs.cluster) }]);
    expect(admin.calls).toEqual([]);
  });

  it.each(cases)('a failing $op surfaces as the error of $action.type', async ({ action, op }) => {
    const { platform } = recordingPlatform({ fail: op });
    await expect(act(platform, running(), action)).rejects.toThrow(`${op} failed`);
  });

  it('restart-member restarts the slot when the pod template is still the planned revision', async () => {
    const { platform, calls } = recordingPlatform({ revision: 'rev-2' });
    const obs = running();
    await act(platform, obs, { type: 'restart-member', ordinal: 1, revision: 'rev-2' });
    expect(calls).toEqual([
      { op: 'templateRevision', args: [obs.cluster] },
      { op: 'restartMember', args: [obs.cluster, 1] },
    ]);
  });

  it('restart-member refuses when the pod template changed since the plan, and restarts nothing', async () => {
    const { platform, calls } = recordingPlatform({ revision: 'rev-3' });
    await expect(
      act(platform, running(), { type: 'restart-member', ordinal: 1, revision: 'rev-2' }),
    ).rejects.toThrow('the pod template changed to rev-3 since the plan');
    expect(calls.map((c) => c.op)).toEqual(['templateRevision']);
  });

  it('wait and none call nothing', async () => {
    const { platform, calls } = recordingPlatform();
    await expect(act(platform, running(), { type: 'wait', reason: 'x', requeueMs: 1_000 })).resolves.toEqual(
      {},
    );
    await expect(act(platform, running(), { type: 'none' })).resolves.toEqual({});
    expect(calls).toEqual([]);
    expect(admin.calls).toEqual([]);
  });

  it('a platform without owned objects, certificates or a CA says so instead of skipping the step', async () => {
    const { platform } = recordingPlatform({ optional: false });
    const obs = running();
    await expect(act(platform, obs, { type: 'repair-owned', minAvailable: 2, repairs: [] })).rejects.toThrow(
      'owns no objects to repair',
    );
    await expect(act(platform, obs, { type: 'renew-certificates', reasons: [] })).rejects.toThrow(
      'issues no certificates',
    );
    await expect(act(platform, obs, { type: 'rotate-ca', step: 'start', reason: 'x' })).rejects.toThrow(
      'has no CA to rotate',
    );
  });
});

describe('act: admin actions', () => {
  it('initialize posts every planned slot as a member to the first one, and reports the cluster id', async () => {
    const { platform, calls } = recordingPlatform();
    const obs = pristineSet();
    const members = Object.fromEntries(obs.slots.map((s) => [s.node!.node_id, addressesOf(s)]));
    admin.answers.set('/_cluster/initialize', { cluster_id: 'c-new', members });
    await expect(act(platform, obs, { type: 'initialize', ordinals: [0, 1, 2] })).resolves.toEqual({
      clusterId: 'c-new',
    });
    expect(calls).toEqual([{ op: 'adminClient', args: [obs.cluster] }]);
    expect(admin.calls).toEqual([
      {
        fn: 'parsed',
        schema: initializeResponseSchema,
        args: [obs.slots[0]!.pod.addresses.admin, 'POST', '/_cluster/initialize', { members }, CLIENT],
      },
    ]);
  });

  it('initialize refuses a slot that did not answer, before any call', async () => {
    const { platform } = recordingPlatform();
    const obs = pristineSet();
    obs.slots[1] = down(1);
    await expect(act(platform, obs, { type: 'initialize', ordinals: [0, 1, 2] })).rejects.toThrow(
      'slot 1 did not answer',
    );
    expect(admin.calls).toEqual([]);
  });

  it('restore posts the snapshot to slot 0 with the long restore timeout, and reports where it came from', async () => {
    const { platform } = recordingPlatform();
    const obs = pristineSet();
    admin.answers.set('/_cluster/restore', {
      cluster_id: 'c-new',
      restored_from: { cluster_id: 'c-old', uri: 's3://b/snap', index: 40 },
      node_id: 'p0',
      keys: 3,
      revision: 9,
    });
    const result = await act(platform, obs, {
      type: 'restore',
      snapshotUri: 's3://b/snap',
      expectedClusterId: 'c-old',
    });
    expect(result).toEqual({ clusterId: 'c-new', restoredFrom: { clusterId: 'c-old', uri: 's3://b/snap' } });
    expect(admin.calls).toEqual([
      {
        fn: 'parsed',
        schema: restoreResponseSchema,
        args: [
          obs.slots[0]!.pod.addresses.admin,
          'POST',
          '/_cluster/restore',
          { snapshot_uri: 's3://b/snap', expected_cluster_id: 'c-old' },
          { ...CLIENT, timeoutMs: 10 * 60_000 },
        ],
      },
    ]);
  });

  it('restore without an expected cluster id sends none', async () => {
    const { platform } = recordingPlatform();
    admin.answers.set('/_cluster/restore', {
      cluster_id: 'c-new',
      restored_from: { cluster_id: 'c-old', uri: 's3://b/snap', index: 40 },
      node_id: 'p0',
      keys: 3,
      revision: 9,
    });
    await act(platform, pristineSet(), { type: 'restore', snapshotUri: 's3://b/snap' });
    expect(admin.calls[0]?.args[3]).toEqual({ snapshot_uri: 's3://b/snap' });
  });

  it("add-member asks the leader to add the slot's node with its addresses, and reports the operation", async () => {
    const { platform } = recordingPlatform();
    const obs = running();
    admin.answers.set('/_cluster/nodes', OPERATION);
    await expect(act(platform, obs, { type: 'add-member', ordinal: 2 })).resolves.toEqual({
      operationId: 'op-7',
    });
    expect(admin.calls).toEqual([
      {
        fn: 'parsed',
        schema: operationSchema,
        args: [
          obs.slots[0]!.pod.addresses.admin,
          'POST',
          '/_cluster/nodes',
          { node_id: 'n2', ...addressesOf(obs.slots[2]!) },
          CLIENT,
        ],
      },
    ]);
  });

  it('add-member of a slot that does not answer, or does not exist, calls nothing', async () => {
    const { platform } = recordingPlatform();
    await expect(act(platform, running(), { type: 'add-member', ordinal: 3 })).rejects.toThrow(
      'slot 3 did not answer',
    );
    await expect(act(platform, running(), { type: 'add-member', ordinal: 7 })).rejects.toThrow(
      'slot 7 does not exist',
    );
    expect(admin.calls).toEqual([]);
  });

  it('remove-member deletes the node id through the leader, and reports the operation', async () => {
    const { platform } = recordingPlatform();
    const obs = running();
    admin.answers.set('/_cluster/nodes/n1', { ...OPERATION, kind: 'remove-node', node_id: 'n1' });
    await expect(act(platform, obs, { type: 'remove-member', ordinal: 1, nodeId: 'n1' })).resolves.toEqual({
      operationId: 'op-7',
    });
    expect(admin.calls).toEqual([
      {
        fn: 'parsed',
        schema: operationSchema,
        args: [obs.slots[0]!.pod.addresses.admin, 'DELETE', '/_cluster/nodes/n1', undefined, CLIENT],
      },
    ]);
  });

  it('transfer-leader posts to the leader; an answer other than 200 is its error', async () => {
    const { platform } = recordingPlatform();
    const obs = running();
    const leader = obs.slots[0]!.pod.addresses.admin;
    await expect(act(platform, obs, { type: 'transfer-leader', ordinal: 0 })).resolves.toEqual({});
    expect(admin.calls).toEqual([
      { fn: 'call', args: [leader, 'POST', '/_cluster/leader/transfer', {}, CLIENT] },
    ]);
    admin.raw = { status: 503, body: { error: { code: 'NO_LEADER', message: 'no leader to hand over' } } };
    const err = await act(platform, obs, { type: 'transfer-leader', ordinal: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfluxError);
    expect((err as ConfluxError).code).toBe('NO_LEADER');
    expect((err as Error).message).toBe(`${leader} refused: no leader to hand over`);
  });

  it('force-new-cluster goes to the survivor itself with the longer recovery timeout', async () => {
    const { platform } = recordingPlatform();
    const obs = running();
    admin.answers.set('/_cluster/force-new-cluster', {
      cluster_id: 'c-new',
      node_id: 'n1',
      recovered_from: { cluster_id: 'c-old', node_id: 'n1', index: 10, at: '2026-02-01T12:00:00.000Z' },
      log_index: 11,
    });
    const action: Action = {
      type: 'force-new-cluster',
      ordinal: 1,
      nodeId: 'n1',
      expectedClusterId: 'c-old',
      request: 'n1',
    };
    await expect(act(platform, obs, action)).resolves.toEqual({});
    expect(admin.calls).toEqual([
      {
        fn: 'parsed',
        schema: forceNewClusterResponseSchema,
        args: [
          obs.slots[1]!.pod.addresses.admin,
          'POST',
          '/_cluster/force-new-cluster',
          { node_id: 'n1', expected_cluster_id: 'c-old' },
          { ...CLIENT, timeoutMs: 30_000 },
        ],
      },
    ]);
  });

  it('force-new-cluster refuses a slot that no longer holds the survivor, before any call', async () => {
    const { platform } = recordingPlatform();
    const action: Action = {
      type: 'force-new-cluster',
      ordinal: 2,
      nodeId: 'n1',
      expectedClusterId: 'c-old',
      request: 'n1',
    };
    await expect(act(platform, running(), action)).rejects.toThrow('slot 2 no longer holds n1');
    expect(admin.calls).toEqual([]);
  });

  it('a membership change with no member answering for the cluster calls nothing', async () => {
    const { platform } = recordingPlatform();
    await expect(
      act(platform, pristineSet(), { type: 'remove-member', ordinal: 1, nodeId: 'p1' }),
    ).rejects.toThrow('no member of the cluster answers');
    expect(admin.calls).toEqual([]);
  });

  it("a refused admin call surfaces as act()'s error", async () => {
    const { platform } = recordingPlatform();
    admin.failure = new ConfluxError('QUORUM_AT_RISK', 'removing n1 leaves no quorum');
    await expect(act(platform, running(), { type: 'remove-member', ordinal: 1, nodeId: 'n1' })).rejects.toBe(
      admin.failure,
    );
  });

  it("a failing admin client surfaces as act()'s error, before any admin call", async () => {
    const { platform } = recordingPlatform({ fail: 'adminClient' });
    await expect(act(platform, running(), { type: 'add-member', ordinal: 2 })).rejects.toThrow(
      'adminClient failed',
    );
    expect(admin.calls).toEqual([]);
  });
});
