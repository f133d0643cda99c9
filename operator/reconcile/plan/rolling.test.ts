import { describe, expect, it } from 'vitest';
import type { ClusterStatus as ClusterStatusDoc, InternalStatus } from '../../../node/api/admin-contract.js';
import { API_VERSION, confluxClusterSchema, type OperationStatus } from '../../api/cluster.js';
import { findCondition } from '../conditions.js';
import { plan } from '../plan.js';
import type { Observation, SlotView } from '../types.js';
import { digest } from './context.js';
import { CAUGHT_UP_MAX_LAG, READY_TIMEOUT_S_DEFAULT, rollingUpdate } from './rolling.js';

// -- A small world: members by ordinal, each on a revision -----------------------------------------

const NAME = 'demo';
const CID = 'cluster-rolling';
const NOW = new Date('2025-06-01T12:00:00.000Z');
const OLD = 'rev-old';
const NEW = 'rev-new';
const nid = (o: number) => `node-${o}-${(o * 7919 + 4242).toString(16)}`;
const podOf = (o: number) => `${NAME}-${o}`;
const ago = (seconds: number) => new Date(NOW.getTime() - seconds * 1000).toISOString();

interface Member {
  role?: 'Leader' | 'Follower' | 'Learner';
  /** The revision the pod runs (default OLD). */
  revision?: string;
  /** The pod does not run (crash loop, being re-created). */
  down?: boolean;
  ready?: boolean;
  lag?: number;
  /** Answers, but the cluster cannot reach it. */
  unreachable?: boolean;
  /** It answers with another node id than the one the status recorded for its pod. */
  newId?: string;
}

interface WorldOptions {
  target?: string;
  op?: OperationStatus;
  paused?: boolean;
  readyTimeoutSeconds?: number;
}

function world(members: Member[], o: WorldOptions = {}): Observation {
  const target = o.target ?? NEW;
  const voters = members.filter((m) => m.role !== 'Learner').length;
  const reachableVoters = members.filter((m) => m.role !== 'Learner' && !m.down && !m.unreachable).length;
  const leader = members.findIndex((m) => m.role === 'Leader');
  const idOf = (k: number) => members[k]?.newId ?? nid(k);
  const nodes: ClusterStatusDoc['nodes'] = {};
  members.forEach((m, k) => {
    nodes[idOf(k)] = {
      status: m.down ? 'Unknown' : (m.role ?? 'Follower'),
      is_reachable: !m.down && !m.unreachable,
      log_index: 100,
      last_applied_log: 100,
      lag: m.down ? null : (m.lag ?? 0),
      voter: m.role !== 'Learner',
      api_address: null,
      admin_address: null,
      leader_id: leader >= 0 ? nid(leader) : null,
      term: 2,
    };
  });
  const doc: ClusterStatusDoc = {
    cluster_id: CID,
    leader_id: leader >= 0 ? nid(leader) : null,
    current_term: 2,
    last_applied_log: 100,
    nodes,
    voters,
    fault_tolerance: reachableVoters - (Math.floor(voters / 2) + 1),
    healthy: members.every((m) => !m.down && !m.unreachable && (m.lag ?? 0) <= 10),
    errors: [],
    restored_from: null,
  };
  const slots = members.map((m, k): SlotView => {
    const host = `${podOf(k)}.${NAME}-headless`;
    const pod = {
      ordinal: k,
      name: podOf(k),
      running: !m.down,
      ready: !m.down && (m.ready ?? true),
      addresses: { api: `${host}:8080`, raft: `${host}:7000`, admin: `${host}:8443` },
      revision: m.revision ?? OLD,
      outdated: (m.revision ?? OLD) !== target,
    };
    if (m.down) return { pod, node: null, error: 'not running' };
    const node: InternalStatus = {
      node_id: idOf(k),
      cluster_id: CID,
      initialized: true,
      status: m.role ?? 'Follower',
      current_term: 2,
      leader_id: leader >= 0 ? nid(leader) : null,
      log_index: 100,
      committed: 100,
      last_applied_log: 100,
      voters: [],
      learners: [],
      nodes: {},
      replication: null,
      restored_from: null,
    };
    return { pod, node };
  });
  const cluster = confluxClusterSchema.parse({
    apiVersion: API_VERSION,
    kind: 'ConfluxCluster',
    metadata: { name: NAME, namespace: 'default', generation: 4 },
    spec: {
      replicas: members.length,
      paused: o.paused ?? false,
      ...(o.readyTimeoutSeconds ? { rollingUpdate: { readyTimeoutSeconds: o.readyTimeoutSeconds } } : {}),
    },
    status: {
      clusterId: CID,
      // Recorded before any restart: which node each pod holds.
      members: members.map((m, k) => ({
        id: nid(k),
        pod: podOf(k),
        role: m.role ?? 'Follower',
        reachable: true,
      })),
      ...(o.op ? { operation: o.op } : {}),
    },
  });
  return {
    now: NOW,
    cluster,
    setSize: members.length,
    slots,
    volumes: members.map((_, k) => k),
    status: doc,
    operation: null,
    templateRevision: target,
  };
}

const op = (ordinal: number, o: Partial<OperationStatus> = {}): OperationStatus => ({
  kind: 'RollingUpdate',
  ordinal,
  step: 'restarting',
  revision: NEW,
  startedAt: ago(10),
  ...o,
});

const L: Member = { role: 'Leader' };
const F: Member = { role: 'Follower' };
const done = (m: Member): Member => ({ ...m, revision: NEW });

// -- The rule, through plan() --------------------------------------------------------------------

describe('rolling update', () => {
  it('leaves a cluster whose members all run the current revision alone', () => {
    const p = plan(world([done(L), done(F), done(F)]));
    expect(p.action.type).toBe('none');
    expect(p.status.operation ?? null).toBeNull();
  });

  it('restarts a follower first (highest ordinal), never the leader, and records the step', () => {
    const p = plan(world([L, F, F]));
    expect(p.action).toEqual({ type: 'restart-member', ordinal: 2, revision: NEW });
    expect(p.status.operation).toEqual({
      kind: 'RollingUpdate',
      ordinal: 2,
      step: 'restarting',
      revision: NEW,
      startedAt: NOW.toISOString(),
    });
    expect(findCondition(p.status.conditions, 'Progressing')).toMatchObject({
      status: 'True',
      reason: 'RollingUpdate',
    });
    expect(p.events).toContainEqual(expect.objectContaining({ reason: 'RestartingMember' }));
  });

  // In the whole plan the add flow promotes a learner that answers before any roll; the rule
  // itself still orders learners first (a learner the add flow cannot promote yet, for instance).
  it('restarts learners before voters', () => {
    const d = rollingUpdate(digest(world([L, { role: 'Learner' }, F, F])));
    expect(d?.action).toMatchObject({ type: 'restart-member', ordinal: 1 });
  });

  it('one at a time: while the restarted member is down nothing else is restarted', () => {
    const p = plan(world([L, F, { ...done(F), down: true }], { op: op(2) }));
    expect(p.action.type).toBe('wait');
    expect(p.status.operation).toMatchObject({ kind: 'RollingUpdate', ordinal: 2, step: 'waiting-ready' });
    expect(findCondition(p.status.conditions, 'Stalled')?.status).toBe('False');
  });

  it('one at a time: a restarted member that is Ready but behind is waited for (catching-up)', () => {
    const p = plan(world([L, F, { ...done(F), lag: CAUGHT_UP_MAX_LAG + 1 }], { op: op(2) }));
    expect(p.action.type).toBe('wait');
    expect(p.status.operation).toMatchObject({ ordinal: 2, step: 'catching-up' });
  });

  it('one at a time: a pod not yet replaced (still the old revision) is waited for', () => {
    const p = plan(world([L, F, F], { op: op(2) }));
    expect(p.action.type).toBe('wait');
    expect(p.status.operation).toMatchObject({ ordinal: 2, step: 'restarting' });
  });

  it('moves on once the restarted member is back, caught up, as the same node', () => {
    const p = plan(world([L, F, done(F)], { op: op(2) }));
    expect(p.action).toEqual({ type: 'restart-member', ordinal: 1, revision: NEW });
    expect(p.status.operation?.startedAt).toBe(NOW.toISOString());
  });

  it('a member that came back as another node is not back', () => {
    const p = plan(world([L, F, { ...done(F), newId: 'node-x' }], { op: op(2) }));
    expect(p.action.type).toBe('wait');
    expect((p.action as { reason: string }).reason).toMatch(/came back as node node-x/);
  });

  it('the leader goes last, after a leadership transfer', () => {
    const p = plan(world([L, done(F), done(F)]));
    expect(p.action).toEqual({ type: 'transfer-leader', ordinal: 0 });
    expect(p.status.operation).toMatchObject({ kind: 'RollingUpdate', ordinal: 0, step: 'transferring' });
    expect(p.events).toContainEqual(expect.objectContaining({ reason: 'TransferringLeader' }));
  });

  it('after the transfer the former leader is restarted as a follower (one transfer only)', () => {
    const p = plan(
      world([F, { ...done(F), role: 'Leader' }, done(F)], { op: op(0, { step: 'transferring' }) }),
    );
    expect(p.action).toEqual({ type: 'restart-member', ordinal: 0, revision: NEW });
  });

  it('waits, and says why, when restarting a voter would take fault tolerance below zero', () => {
    for (const members of [[L], [L, F]]) {
      const p = plan(world(members));
      expect(p.action.type).toBe('wait');
      expect(findCondition(p.status.conditions, 'Progressing')).toMatchObject({
        status: 'True',
        reason: 'RollingUpdateWaiting',
        message: expect.stringMatching(/fault tolerance 0 below zero/),
      });
    }
  });

  it('a learner may restart whatever the fault tolerance', () => {
    const d = rollingUpdate(digest(world([done(L), { role: 'Learner' }])));
    expect(d?.action).toMatchObject({ type: 'restart-member', ordinal: 1 });
  });

  it('waits while another member is down, before restarting a healthy one', () => {
    const p = plan(world([L, { ...done(F), down: true }, F]));
    expect(p.action.type).toBe('wait');
    expect(findCondition(p.status.conditions, 'Progressing')).toMatchObject({
      reason: 'RollingUpdateWaiting',
      message: expect.stringContaining('demo-1'),
    });
  });

  it('restarts an outdated member that is down already first (it costs no fault tolerance)', () => {
    const p = plan(world([L, F, { ...F, down: true }]));
    expect(p.action).toMatchObject({ type: 'restart-member', ordinal: 2 });
  });

  it('stalls after the deadline: Stalled RollingUpdateFailed naming the pod, and no next pod', () => {
    const before = plan(
      world([L, F, { ...done(F), down: true }], {
        op: op(2, { startedAt: ago(READY_TIMEOUT_S_DEFAULT - 5) }),
      }),
    );
    expect(findCondition(before.status.conditions, 'Stalled')?.status).toBe('False');
    const p = plan(
      world([L, F, { ...done(F), down: true }], {
        op: op(2, { startedAt: ago(READY_TIMEOUT_S_DEFAULT + 5) }),
      }),
    );
    expect(p.action.type).toBe('wait');
    expect(findCondition(p.status.conditions, 'Stalled')).toMatchObject({
      status: 'True',
      reason: 'RollingUpdateFailed',
      message: expect.stringMatching(/demo-2 did not come back .* within 180s: not running/),
    });
    expect(findCondition(p.status.conditions, 'Degraded')?.status).toBe('True');
    expect(p.status.operation).toMatchObject({
      ordinal: 2,
      revision: NEW,
      startedAt: ago(READY_TIMEOUT_S_DEFAULT + 5),
    });
    expect(p.events).toContainEqual(
      expect.objectContaining({ type: 'Warning', reason: 'RollingUpdateFailed' }),
    );
  });

  it('honours spec.rollingUpdate.readyTimeoutSeconds', () => {
    const p = plan(
      world([L, F, { ...done(F), down: true }], {
        op: op(2, { startedAt: ago(31) }),
        readyTimeoutSeconds: 30,
      }),
    );
    expect(findCondition(p.status.conditions, 'Stalled')).toMatchObject({
      status: 'True',
      message: expect.stringContaining('30s'),
    });
  });

  it('resumes on a new revision with the member that failed first, with a fresh deadline', () => {
    const failed = op(2, { revision: 'rev-broken', startedAt: ago(600), step: 'waiting-ready' });
    const members: Member[] = [L, F, { ...F, revision: 'rev-broken', down: true }];
    const p = plan(world(members, { op: failed, target: 'rev-fixed' }));
    expect(p.action).toEqual({ type: 'restart-member', ordinal: 2, revision: 'rev-fixed' });
    expect(p.status.operation).toMatchObject({
      ordinal: 2,
      revision: 'rev-fixed',
      startedAt: NOW.toISOString(),
    });
    expect(findCondition(p.status.conditions, 'Stalled')?.status).toBe('False');
  });

  it('says when the roll is complete and clears the operation', () => {
    const p = plan(world([done(L), done(F), done(F)], { op: op(0) }));
    expect(p.action.type).toBe('none');
    expect(p.status.operation ?? null).toBeNull();
    expect(p.events).toContainEqual(expect.objectContaining({ reason: 'RollingUpdateCompleted' }));
  });

  it('spec.paused stops the roll', () => {
    const p = plan(world([L, F, F], { paused: true }));
    expect(p.action.type).toBe('wait');
    expect(findCondition(p.status.conditions, 'Progressing')?.reason).toBe('Paused');
    const mid = plan(
      world([L, F, { ...done(F), down: true }], { paused: true, op: op(2, { startedAt: ago(999) }) }),
    );
    expect(mid.action.type).toBe('wait');
    expect(
      mid.events.some((e) => e.reason === 'RestartingMember' || e.reason === 'RollingUpdateFailed'),
    ).toBe(false);
  });
});
