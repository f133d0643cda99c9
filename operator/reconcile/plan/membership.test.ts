// Refused and failed membership changes and the quorum check (plan/membership.ts), through plan().

import { describe, expect, it } from 'vitest';
import { QUORUM_RETRY_MS, REQUEUE_MS, removalRisk } from '../plan.js';
import {
  type Case,
  CID,
  cond,
  EARLIER,
  NOW,
  nid,
  observe,
  op,
  prevMembers,
  runCase,
} from './slot-fixtures.js';

const cases: Case[] = [
  {
    name: 'scale-up: failed add -> Warning, Degraded, retried',
    world: {
      spec: { replicas: 4 },
      slots: ['voter', 'voter', 'voter', 'learner'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleUp', ordinal: 3, step: 'adding', operationId: 'op-1', startedAt: EARLIER },
      },
      operation: op({
        kind: 'add-node',
        node_id: nid(3),
        state: 'failed',
        error: { code: 'CATCH_UP_TIMEOUT', message: 'still 900 entries behind' },
      }),
    },
    action: { type: 'add-member', ordinal: 3 },
    check: (p) => {
      expect(p.events).toContainEqual(
        expect.objectContaining({ type: 'Warning', reason: 'AddMemberFailed' }),
      );
      expect(cond(p, 'Degraded')).toMatchObject({ status: 'True', reason: 'AddMemberFailed' });
      expect(p.status.operation).toMatchObject({ startedAt: EARLIER });
    },
  },
  {
    name: 'scale-up: a retired node id can never rejoin -> Stalled RetiredMember',
    world: {
      spec: { replicas: 4 },
      slots: ['voter', 'voter', 'voter', 'removed'],
      operation: op({
        kind: 'add-node',
        node_id: nid(3),
        state: 'failed',
        error: { code: 'RETIRED_NODE_ID', message: 'removed before' },
      }),
    },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.stalled }),
    check: (p) => expect(cond(p, 'Stalled')).toMatchObject({ status: 'True', reason: 'RetiredMember' }),
  },
  {
    name: 'remove refused by the admin API (QUORUM_AT_RISK) -> Stalled, wait',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: {
          kind: 'ScaleDown',
          ordinal: 3,
          step: 'removing',
          operationId: 'op-1',
          startedAt: EARLIER,
        },
      },
      operation: op({
        kind: 'remove-node',
        node_id: nid(3),
        state: 'failed',
        finished_at: new Date(NOW.getTime() - 1_000).toISOString(),
        error: { code: 'QUORUM_AT_RISK', message: 'a quorum needs 2' },
      }),
    },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: QUORUM_RETRY_MS - 1_000 }),
    check: (p) => {
      expect(cond(p, 'Stalled')).toMatchObject({ status: 'True', reason: 'QuorumAtRisk' });
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'False', reason: 'QuorumAtRisk' });
      expect(p.status.operation).toMatchObject({
        kind: 'ScaleDown',
        ordinal: 3,
        step: 'removing',
        operationId: 'op-1',
      });
    },
  },
  {
    name: 'remove refused long ago -> retried, still Stalled until a new operation runs',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter'],
      operation: op({
        kind: 'remove-node',
        node_id: nid(3),
        state: 'failed',
        finished_at: new Date(NOW.getTime() - QUORUM_RETRY_MS - 1).toISOString(),
        error: { code: 'QUORUM_AT_RISK', message: 'a quorum needs 2' },
      }),
    },
    action: { type: 'remove-member', ordinal: 3, nodeId: nid(3) },
    check: (p) => expect(cond(p, 'Stalled')?.status).toBe('True'),
  },
  {
    name: 'removal would lose the quorum -> Stalled QuorumAtRisk without asking',
    world: { spec: { replicas: 2 }, slots: ['voter', 'voter', 'voter'], unreachable: [1] },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.stalled }),
    check: (p) => {
      expect(cond(p, 'Stalled')).toMatchObject({ status: 'True', reason: 'QuorumAtRisk' });
      expect(p.events).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'QuorumAtRisk' }));
    },
  },
];

describe('membership: one step per branch', () => {
  it.each(cases)('$name', runCase);
});

describe('membership', () => {
  it('removalRisk: a voter whose removal leaves no reachable quorum', () => {
    const doc = observe({ slots: ['voter', 'voter', 'voter'], unreachable: [2] }).status!;
    expect(removalRisk(doc, nid(1))).toContain('a quorum needs 2');
    expect(removalRisk(doc, nid(2))).toBeNull();
    const single = observe({ slots: ['voter'] }).status!;
    expect(removalRisk(single, nid(0))).toContain('last voter');
  });
});
