// The rules that change the cluster's shape (plan/scale.ts), one plan() step at a time.

import { describe, expect, it } from 'vitest';
import { REQUEUE_MS } from '../plan.js';
import {
  type Case,
  CID,
  cond,
  EARLIER,
  eventReasons,
  NOW,
  nid,
  op,
  prevMembers,
  runCase,
  waitAction,
} from './slot-fixtures.js';

const cases: Case[] = [
  // Scale up 3 -> 5, step by step
  {
    name: 'scale-up 3->5: ensure 4',
    world: { spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter'] },
    action: { type: 'ensure-members', size: 4, minAvailable: 3 },
    check: (p) => {
      expect(p.status.phase).toBe('Scaling');
      expect(p.status.operation).toMatchObject({
        kind: 'ScaleUp',
        ordinal: 3,
        step: 'growing',
        startedAt: NOW.toISOString(),
      });
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'True', reason: 'ScalingUp' });
      expect(cond(p, 'Ready')).toMatchObject({ status: 'False', reason: 'ReplicasMismatch' });
    },
  },
  {
    name: 'scale-up 3->5: slot 3 starting -> wait',
    world: { spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter', 'silent'] },
    action: waitAction,
  },
  {
    name: 'scale-up 3->5: add 3',
    world: { spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter', 'fresh'] },
    action: { type: 'add-member', ordinal: 3 },
    check: (p) => expect(p.status.operation).toMatchObject({ kind: 'ScaleUp', ordinal: 3, step: 'adding' }),
  },
  {
    name: 'scale-up 3->5: add of 3 running -> wait, operation kept',
    world: {
      spec: { replicas: 5 },
      slots: ['voter', 'voter', 'voter', 'learner'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleUp', ordinal: 3, step: 'adding', operationId: 'op-1', startedAt: EARLIER },
      },
      operation: op({ kind: 'add-node', node_id: nid(3), state: 'running', step: 'catching-up' }),
    },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.progress }),
    check: (p) =>
      expect(p.status.operation).toEqual({
        kind: 'ScaleUp',
        ordinal: 3,
        step: 'adding',
        operationId: 'op-1',
        startedAt: EARLIER,
      }),
  },
  {
    name: 'scale-up 3->5: ensure 5',
    world: { spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter', 'voter'] },
    action: { type: 'ensure-members', size: 5, minAvailable: 4 },
  },
  {
    name: 'scale-up 3->5: add 4',
    world: { spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter', 'voter', 'fresh'] },
    action: { type: 'add-member', ordinal: 4 },
  },
  {
    name: 'scale-up: a learner left by an interrupted add is added again',
    world: { spec: { replicas: 4 }, slots: ['voter', 'voter', 'voter', 'learner'] },
    action: { type: 'add-member', ordinal: 3 },
  },
  {
    name: "a slot holding another cluster's node: Stalled ForeignMember, no add",
    world: { spec: { replicas: 4 }, slots: ['voter', 'voter', 'voter', 'foreign'] },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.stalled }),
    check: (p) => {
      expect(cond(p, 'Stalled')).toMatchObject({ status: 'True', reason: 'ForeignMember' });
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'False', reason: 'ForeignMember' });
      expect(p.events).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'ForeignMember' }));
    },
  },
  {
    name: 'no leader: no membership change, wait',
    world: { spec: { replicas: 4 }, slots: ['voter', 'voter', 'voter', 'fresh'], leader: null },
    action: waitAction,
  },
  // Scale down 5 -> 3
  {
    name: 'scale-down 5->3: the leader is on slot 4 -> transfer first',
    world: { spec: { replicas: 3 }, slots: ['voter', 'voter', 'voter', 'voter', 'voter'], leader: 4 },
    action: { type: 'transfer-leader', ordinal: 4 },
    check: (p) => {
      expect(p.status.operation).toMatchObject({
        kind: 'ScaleDown',
        ordinal: 4,
        step: 'transferring-leader',
      });
      expect(p.status.phase).toBe('Scaling');
    },
  },
  {
    name: 'scale-down 5->3: remove slot 4',
    world: { spec: { replicas: 3 }, slots: ['voter', 'voter', 'voter', 'voter', 'voter'] },
    action: { type: 'remove-member', ordinal: 4, nodeId: nid(4) },
    check: (p) => {
      expect(p.status.operation).toMatchObject({ kind: 'ScaleDown', ordinal: 4, step: 'removing' });
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'True', reason: 'ScalingDown' });
    },
  },
  {
    name: 'scale-down 5->3: slot 4 removed -> shrink to 4',
    world: { spec: { replicas: 3 }, slots: ['voter', 'voter', 'voter', 'voter', 'removed'] },
    action: { type: 'ensure-members', size: 4, minAvailable: 3 },
    check: (p) =>
      expect(p.status.operation).toMatchObject({ kind: 'ScaleDown', ordinal: 4, step: 'shrinking' }),
  },
  {
    name: 'scale-down 5->3: shrunk, pod 4 still terminating -> wait',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter', 'removed'],
      setSize: 4,
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: waitAction,
    check: (p) =>
      expect(p.status.operation).toMatchObject({ kind: 'ScaleDown', ordinal: 4, step: 'shrinking' }),
  },
  {
    name: 'scale-down 5->3: shrunk, reclaimPolicy Delete -> delete-volume 4',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: { type: 'delete-volume', ordinal: 4 },
    check: (p) =>
      expect(p.status.operation).toEqual({
        kind: 'ScaleDown',
        ordinal: 4,
        step: 'reclaiming',
        startedAt: EARLIER,
      }),
  },
  {
    name: 'scale-down 5->3: volume 4 reclaimed -> next member (remove slot 3)',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'reclaiming', startedAt: EARLIER },
      },
    },
    action: { type: 'remove-member', ordinal: 3, nodeId: nid(3) },
    check: (p) =>
      expect(p.status.operation).toMatchObject({
        kind: 'ScaleDown',
        ordinal: 3,
        step: 'removing',
        startedAt: NOW.toISOString(),
      }),
  },
  {
    name: 'scale-down 5->3: reclaimPolicy Retain -> no delete-volume, next member',
    world: {
      spec: { replicas: 3, reclaimPolicy: 'Retain' },
      slots: ['voter', 'voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: { type: 'remove-member', ordinal: 3, nodeId: nid(3) },
    check: (p) => expect(eventReasons(p)).toContain('VolumeRetained'),
  },
  {
    name: 'scale-down done with Retain: converged, operation cleared',
    world: {
      spec: { replicas: 3, reclaimPolicy: 'Retain' },
      slots: ['voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2]),
        operation: { kind: 'ScaleDown', ordinal: 3, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: { type: 'none' },
    check: (p) => expect(p.status.operation).toBeNull(),
  },
  {
    name: 'restart mid-operation: ScaleDown shrinking of 4 and slot 4 gone -> delete-volume 4',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: { type: 'delete-volume', ordinal: 4 },
  },
  {
    name: 'a volume left beyond the set that no status remembers is reclaimed (Delete)',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter'],
      volumes: [0, 1, 2, 3],
      prev: { clusterId: CID, members: prevMembers([0, 1, 2]) },
    },
    action: { type: 'delete-volume', ordinal: 3 },
  },
  {
    name: 'a volume left beyond the set is kept with Retain',
    world: {
      spec: { replicas: 3, reclaimPolicy: 'Retain' },
      slots: ['voter', 'voter', 'voter'],
      volumes: [0, 1, 2, 3],
      prev: { clusterId: CID, members: prevMembers([0, 1, 2]) },
    },
    action: { type: 'none' },
  },
  {
    name: 'a volume left beyond the set is kept while a member is not accounted for by a slot',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter'],
      volumes: [0, 1, 2, 3],
      orphans: ['ghost'],
      prev: { clusterId: CID, members: prevMembers([0, 1, 2]) },
    },
    action: (a) => expect(a.type).not.toBe('delete-volume'),
  },
  {
    name: 'never deletes the volume of a node the last status still counts as a member',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter'],
      noStatus: true,
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 3, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: waitAction,
    check: (p) => {
      expect(p.events).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'VolumeKept' }));
      expect(p.status.operation).toBeNull();
    },
  },
  {
    name: 'reclaim comes before growing again (the removed id must not come back)',
    world: {
      spec: { replicas: 5 },
      slots: ['voter', 'voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2, 3]),
        operation: { kind: 'ScaleDown', ordinal: 4, step: 'shrinking', startedAt: EARLIER },
      },
    },
    action: { type: 'delete-volume', ordinal: 4 },
  },
  {
    name: 'scale-down of a down member whose id the status recorded: remove it',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter', 'stopped'],
      prev: { clusterId: CID, members: prevMembers([0, 1, 2, 3, 4]) },
    },
    action: { type: 'remove-member', ordinal: 4, nodeId: nid(4) },
  },
  {
    name: 'scale-down of a silent slot whose node is unknown while a member is unaccounted for: wait',
    world: {
      spec: { replicas: 3 },
      slots: ['voter', 'voter', 'voter', 'voter', 'silent'],
      orphans: ['nlost'],
    },
    action: waitAction,
  },
  {
    name: 'scale-down of a never-added slot: shrink directly',
    world: { spec: { replicas: 3 }, slots: ['voter', 'voter', 'voter', 'fresh'] },
    action: { type: 'ensure-members', size: 3, minAvailable: 2 },
  },
  {
    name: 'remove operation running: wait for it',
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
      operation: op({ kind: 'remove-node', node_id: nid(3), state: 'running', step: 'removing' }),
    },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.progress }),
    check: (p) => expect(cond(p, 'Progressing')).toMatchObject({ status: 'True', reason: 'ScalingDown' }),
  },
];

describe('scale: one step per branch', () => {
  it.each(cases)('$name', runCase);
});
