// The rules that wait on the cluster's health, status and id (plan/health.ts), one plan() step at a time.

import { describe, expect, it } from 'vitest';
import { REQUEUE_MS } from '../plan.js';
import { type Case, CID, cond, nid, podOf, prevMembers, runCase, waitAction } from './slot-fixtures.js';

const cases: Case[] = [
  // Health
  {
    name: 'a member down: wait, never remove it',
    world: {
      slots: ['voter', 'voter', 'stopped'],
      prev: { clusterId: CID, members: prevMembers([0, 1, 2]) },
    },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.health }),
    check: (p) => {
      expect(p.status.phase).toBe('Degraded');
      expect(cond(p, 'Degraded')).toMatchObject({ status: 'True', reason: 'MemberUnreachable' });
      expect(cond(p, 'Available')?.status).toBe('True');
      expect(cond(p, 'Ready')?.status).toBe('False');
      expect(p.status.members?.find((m) => m.id === nid(2))).toMatchObject({
        pod: podOf(2),
        reachable: false,
      });
    },
  },
  {
    name: 'an unhealthy but complete cluster: wait for health',
    world: { slots: ['voter', 'voter', 'voter'], unreachable: [2] },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.health }),
    check: (p) => expect(cond(p, 'Progressing')).toMatchObject({ status: 'False', reason: 'AwaitingHealth' }),
  },
  {
    name: 'no member answers the cluster status: wait, Degraded, Available Unknown',
    world: { slots: ['voter', 'voter', 'voter'], noStatus: true },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.health }),
    check: (p) => {
      expect(cond(p, 'Available')?.status).toBe('Unknown');
      expect(cond(p, 'Degraded')).toMatchObject({ status: 'True', reason: 'StatusUnavailable' });
      expect(p.status.clusterId).toBe(CID);
    },
  },
  {
    name: 'every slot gone after bootstrap: recreate them',
    world: { slots: [], prev: { clusterId: CID, members: prevMembers([0, 1, 2]) } },
    action: { type: 'ensure-members', size: 3, minAvailable: 2 },
  },
  {
    name: 'the members answer for another cluster: Stalled ClusterIdMismatch',
    world: {
      slots: ['voter', 'voter', 'voter'],
      prev: { clusterId: 'cluster-2222', members: prevMembers([0, 1, 2]) },
    },
    action: waitAction,
    check: (p) => expect(cond(p, 'Stalled')).toMatchObject({ status: 'True', reason: 'ClusterIdMismatch' }),
  },
];

describe('health: one step per branch', () => {
  it.each(cases)('$name', runCase);
});
