import { describe, expect, it } from 'vitest';
import type { ClusterStatus as ClusterStatusDoc } from '../../node/api/admin-contract.js';
import { API_VERSION, type ClusterStatus, type Condition, confluxClusterSchema } from '../api/cluster.js';
import {
  type Assessment,
  deriveConditions,
  FIRST_ELECTION_GRACE_MS,
  findCondition,
  healthProblems,
  isConditionTrue,
  setCondition,
} from './conditions.js';
import type { Observation } from './types.js';

const T0 = new Date('2025-06-01T12:00:00.000Z');
const T1 = new Date('2025-06-01T12:05:00.000Z');

describe('setCondition', () => {
  const ready: Condition = {
    type: 'Ready',
    status: 'True',
    reason: 'AllMembersReady',
    message: '3 voters',
    lastTransitionTime: T0.toISOString(),
    observedGeneration: 1,
  };

  it.each([
    {
      name: 'appends a new type with the transition time now',
      before: [] as Condition[],
      update: {
        type: 'Ready',
        status: 'True' as const,
        reason: 'AllMembersReady' as const,
        message: '3 voters',
      },
      gen: 1,
      after: [ready],
    },
    {
      name: 'keeps lastTransitionTime when the status is unchanged (new reason, message, generation)',
      before: [ready],
      update: {
        type: 'Ready',
        status: 'True' as const,
        reason: 'QuorumAvailable' as const,
        message: 'changed',
      },
      gen: 2,
      after: [{ ...ready, reason: 'QuorumAvailable', message: 'changed', observedGeneration: 2 }],
    },
    {
      name: 'moves lastTransitionTime when the status changes',
      before: [ready],
      update: { type: 'Ready', status: 'False' as const, reason: 'Unhealthy' as const, message: 'down' },
      gen: 1,
      after: [
        {
          ...ready,
          status: 'False',
          reason: 'Unhealthy',
          message: 'down',
          lastTransitionTime: T1.toISOString(),
        },
      ],
    },
    {
      name: 'replaces in place, leaving other types alone',
      before: [{ ...ready, type: 'Available' }, ready, { ...ready, type: 'BackupSucceeded' }],
      update: { type: 'Ready', status: 'False' as const, reason: 'Unhealthy' as const, message: 'down' },
      gen: 1,
      after: [
        { ...ready, type: 'Available' },
        {
          ...ready,
          status: 'False',
          reason: 'Unhealthy',
          message: 'down',
          lastTransitionTime: T1.toISOString(),
        },
        { ...ready, type: 'BackupSucceeded' },
      ],
    },
  ])('$name', ({ before, update, gen, after }) => {
    const now = before.length === 0 ? T0 : T1;
    const copy = structuredClone(before);
    expect(setCondition(before, update, now, gen)).toEqual(after);
    expect(before).toEqual(copy); // never mutated
  });

  it('omits observedGeneration when unknown, and accepts an undefined list', () => {
    const [c] = setCondition(
      undefined,
      { type: 'Succeeded', status: 'True', reason: 'Completed', message: '' },
      T0,
    );
    expect(c).toEqual({
      type: 'Succeeded',
      status: 'True',
      reason: 'Completed',
      message: '',
      lastTransitionTime: T0.toISOString(),
    });
  });

  it('finds and tests conditions', () => {
    expect(findCondition([ready], 'Ready')).toBe(ready);
    expect(findCondition(undefined, 'Ready')).toBeUndefined();
    expect(isConditionTrue([ready], 'Ready')).toBe(true);
    expect(isConditionTrue([{ ...ready, status: 'Unknown' }], 'Ready')).toBe(false);
  });
});

// -- deriveConditions ----------------------------------------------------------------------------

function doc(o: Partial<ClusterStatusDoc> = {}): ClusterStatusDoc {
  const member = (status: 'Leader' | 'Follower', reachable = true) => ({
    status,
    is_reachable: reachable,
    log_index: 5,
    last_applied_log: 5,
    lag: 0,
    voter: true,
    api_address: null,
    admin_address: null,
    leader_id: 'a',
    term: 2,
  });
  return {
    cluster_id: 'c1',
    leader_id: 'a',
    current_term: 2,
    last_applied_log: 5,
    nodes: { a: member('Leader'), b: member('Follower'), c: member('Follower') },
    voters: 3,
    fault_tolerance: 1,
    healthy: true,
    errors: [],
    restored_from: null,
    ...o,
  };
}

function obsWith(
  status: ClusterStatusDoc | null,
  o: { setSize?: number; replicas?: number; prev?: ClusterStatus; restore?: boolean } = {},
): Observation {
  return {
    now: T1,
    cluster: confluxClusterSchema.parse({
      apiVersion: API_VERSION,
      kind: 'ConfluxCluster',
      metadata: { name: 'demo', generation: 4 },
      spec: { replicas: o.replicas ?? 3, ...(o.restore ? { restore: { snapshotUri: 'file:///b/s' } } : {}) },
      ...(o.prev ? { status: o.prev } : {}),
    }),
    setSize: o.setSize ?? 3,
    slots: [],
    volumes: [],
    status,
    operation: null,
  };
}

const base: Assessment = {
  bootstrapped: true,
  paused: false,
  clusterId: 'c1',
  progress: null,
  stalled: null,
  idle: { reason: 'Converged', message: 'converged' },
  problems: [],
};

type Expect = Record<string, [Condition['status'], string] | undefined>;

describe('deriveConditions', () => {
  const unreachable = doc({
    nodes: { ...doc().nodes, c: { ...doc().nodes.c!, is_reachable: false, status: 'Unknown' } },
    fault_tolerance: 0,
    healthy: false,
    errors: ['c is unreachable'],
  });
  const quorumLost = doc({ leader_id: null, fault_tolerance: -1, healthy: false, errors: ['no leader'] });

  it.each<{ name: string; obs: Observation; a?: Partial<Assessment>; want: Expect }>([
    {
      name: 'healthy and complete',
      obs: obsWith(doc()),
      want: {
        Bootstrapped: ['True', 'Initialized'],
        Ready: ['True', 'AllMembersReady'],
        Available: ['True', 'QuorumAvailable'],
        Progressing: ['False', 'Converged'],
        Degraded: ['False', 'AsExpected'],
        Stalled: ['False', 'NotStalled'],
      },
    },
    {
      name: 'not bootstrapped yet',
      obs: obsWith(null),
      a: { bootstrapped: false, progress: { reason: 'Bootstrapping', message: 'initializing' } },
      want: {
        Bootstrapped: ['False', 'NotInitialized'],
        Ready: ['False', 'NotBootstrapped'],
        Available: ['False', 'NotBootstrapped'],
        Progressing: ['True', 'Bootstrapping'],
        Degraded: ['False', 'NotBootstrapped'],
      },
    },
    {
      name: 'waiting to restore',
      obs: obsWith(null, { restore: true }),
      a: { bootstrapped: false },
      want: { Bootstrapped: ['False', 'Restoring'] },
    },
    {
      name: 'restored',
      obs: obsWith(doc()),
      a: { restoredFrom: { clusterId: 'old', uri: 'file:///b/s' } },
      want: { Bootstrapped: ['True', 'Restored'] },
    },
    {
      name: 'a member unreachable',
      obs: obsWith(unreachable),
      want: {
        Ready: ['False', 'Unhealthy'],
        Available: ['True', 'QuorumAvailable'],
        Degraded: ['True', 'MemberUnreachable'],
      },
    },
    {
      name: 'quorum lost',
      obs: obsWith(quorumLost),
      want: { Available: ['False', 'NoLeader'], Degraded: ['True', 'QuorumLost'] },
    },
    {
      name: 'quorum lost with a stale leader',
      obs: obsWith(doc({ fault_tolerance: -1, healthy: false })),
      want: { Available: ['False', 'QuorumLost'] },
    },
    {
      name: 'no status answered',
      obs: obsWith(null),
      want: {
        Ready: ['False', 'StatusUnavailable'],
        Available: ['Unknown', 'StatusUnavailable'],
        Degraded: ['True', 'StatusUnavailable'],
      },
    },
    {
      name: 'fewer voters than desired',
      obs: obsWith(doc(), { replicas: 5, setSize: 4 }),
      a: { progress: { reason: 'ScalingUp', message: 'adding' } },
      want: { Ready: ['False', 'ReplicasMismatch'], Progressing: ['True', 'ScalingUp'] },
    },
    {
      name: 'stalled',
      obs: obsWith(doc(), { replicas: 2, setSize: 3 }),
      a: { stalled: { reason: 'QuorumAtRisk', message: 'refused' } },
      want: { Stalled: ['True', 'QuorumAtRisk'], Progressing: ['False', 'QuorumAtRisk'] },
    },
    {
      name: 'a failed step makes it Degraded',
      obs: obsWith(doc()),
      a: { problems: [{ reason: 'AddMemberFailed', message: 'catch-up timeout' }] },
      want: { Degraded: ['True', 'AddMemberFailed'] },
    },
    {
      name: 'paused: Progressing False Paused, Stalled left as it was',
      obs: obsWith(doc()),
      a: { paused: true, stalled: { reason: 'QuorumAtRisk', message: 'x' } },
      want: { Progressing: ['False', 'Paused'], Stalled: undefined },
    },
  ])('$name', ({ obs, a, want }) => {
    const conditions = deriveConditions(obs, { ...base, ...a });
    for (const [type, expected] of Object.entries(want)) {
      const c = findCondition(conditions, type);
      if (expected === undefined) {
        expect(c).toBeUndefined();
        continue;
      }
      expect(c).toMatchObject({ status: expected[0], reason: expected[1], observedGeneration: 4 });
    }
  });

  it('keeps conditions it does not manage, and the transition times of unchanged ones', () => {
    const first = deriveConditions(obsWith(doc()), base);
    const backup: Condition = {
      type: 'BackupSucceeded',
      status: 'False',
      reason: 'Failed',
      message: 'denied',
      lastTransitionTime: T0.toISOString(),
    };
    const later = obsWith(unreachable, { prev: { conditions: [...first, backup] } });
    const second = deriveConditions({ ...later, now: new Date(T1.getTime() + 1000) }, base);
    expect(findCondition(second, 'BackupSucceeded')).toEqual(backup);
    expect(findCondition(second, 'Available')?.lastTransitionTime).toBe(T1.toISOString());
    expect(findCondition(second, 'Degraded')?.lastTransitionTime).toBe(
      new Date(T1.getTime() + 1000).toISOString(),
    );
    expect(second.filter((c) => c.type === 'Ready')).toHaveLength(1);
  });
});

describe('healthProblems', () => {
  it('lists the most severe first', () => {
    const d = doc({
      leader_id: null,
      fault_tolerance: -1,
      nodes: { ...doc().nodes, b: { ...doc().nodes.b!, is_reachable: false } },
      errors: ['no leader'],
    });
    expect(healthProblems(d).map((n) => n.reason)).toEqual([
      'QuorumLost',
      'NoLeader',
      'MemberUnreachable',
      'ClusterErrors',
    ]);
    expect(healthProblems(doc())).toEqual([]);
    expect(healthProblems(null).map((n) => n.reason)).toEqual(['StatusUnavailable']);
  });
});

describe('a new cluster electing its first leader', () => {
  const electing = doc({ leader_id: null, healthy: false });
  const condition = (type: string, status: Condition['status'], reason: string, at: Date): Condition => ({
    type,
    status,
    reason,
    message: '',
    lastTransitionTime: at.toISOString(),
    observedGeneration: 4,
  });
  const justBootstrapped = (at: Date): ClusterStatus => ({
    conditions: [
      condition('Bootstrapped', 'True', 'Initialized', at),
      condition('Available', 'False', 'NotBootstrapped', at),
    ],
  });
  const pick = (conditions: Condition[], type: string) => {
    const c = findCondition(conditions, type);
    return [c?.status, c?.reason];
  };

  it('is not available yet, and not degraded: the election is progress', () => {
    const conditions = deriveConditions(obsWith(electing, { prev: justBootstrapped(T1) }), base);
    expect(pick(conditions, 'Available')).toEqual(['Unknown', 'ElectingLeader']);
    expect(pick(conditions, 'Degraded')[0]).toBe('False');
  });

  it('is degraded once the election took longer than the grace period', () => {
    const longAgo = new Date(T1.getTime() - FIRST_ELECTION_GRACE_MS - 1);
    const conditions = deriveConditions(obsWith(electing, { prev: justBootstrapped(longAgo) }), base);
    expect(pick(conditions, 'Available')).toEqual(['False', 'NoLeader']);
    expect(pick(conditions, 'Degraded')).toEqual(['True', 'NoLeader']);
  });

  it('is degraded at once when a cluster that was available loses its leader', () => {
    const prev: ClusterStatus = {
      conditions: [
        condition('Bootstrapped', 'True', 'Initialized', T1),
        condition('Available', 'True', 'QuorumAvailable', T1),
      ],
    };
    const conditions = deriveConditions(obsWith(electing, { prev }), base);
    expect(pick(conditions, 'Available')).toEqual(['False', 'NoLeader']);
    expect(pick(conditions, 'Degraded')).toEqual(['True', 'NoLeader']);
  });
});
