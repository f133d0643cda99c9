// The paused, restore and bootstrap rules (plan/bootstrap.ts), one plan() step at a time.

import { describe, expect, it } from 'vitest';
import { REQUEUE_MS } from '../plan.js';
import {
  type Case,
  CID,
  cond,
  EARLIER,
  eventReasons,
  prevMembers,
  runCase,
  waitAction,
} from './slot-fixtures.js';

const cases: Case[] = [
  // Bootstrap
  {
    name: 'fresh cluster without slots: create 3',
    world: { slots: [] },
    action: { type: 'ensure-members', size: 3, minAvailable: 2 },
    check: (p) => {
      expect(p.status.phase).toBe('Pending');
      expect(p.status.operation).toMatchObject({ kind: 'Bootstrap', step: 'creating-members' });
      expect(cond(p, 'Bootstrapped')?.status).toBe('False');
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'True', reason: 'Bootstrapping' });
    },
  },
  {
    name: 'fewer slots than replicas before bootstrap: ensure all of them',
    world: { slots: ['fresh'] },
    action: { type: 'ensure-members', size: 3, minAvailable: 2 },
  },
  {
    name: 'slots up but not answering: wait',
    world: { slots: ['fresh', 'silent', 'stopped'] },
    action: (a) => {
      expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.progress });
      expect(a.type === 'wait' && a.reason).toContain('1 (timeout), 2 (not running)');
    },
    check: (p) => {
      expect(p.status.phase).toBe('Bootstrapping');
      expect(p.status.operation).toMatchObject({ kind: 'Bootstrap', step: 'waiting-for-members' });
    },
  },
  {
    name: 'all uninitialized: initialize [0,1,2]',
    world: { slots: ['fresh', 'fresh', 'fresh'] },
    action: { type: 'initialize', ordinals: [0, 1, 2] },
    check: (p) => {
      expect(p.status.operation).toMatchObject({ kind: 'Bootstrap', step: 'initializing' });
      expect(eventReasons(p)).toContain('Initializing');
    },
  },
  {
    name: 'one slot already in a cluster: never initialize',
    world: { slots: ['fresh', 'foreign', 'fresh'], prev: {} },
    action: (a) => expect(a.type).not.toBe('initialize'),
    check: (p) => expect(cond(p, 'Bootstrapped')?.status).toBe('True'),
  },
  {
    name: 'one slot prepared for a cluster but uninitialized: never initialize',
    world: { slots: ['fresh', 'prepared', 'fresh'], prev: {} },
    action: (a) => expect(a.type).not.toBe('initialize'),
  },
  // Restore
  {
    name: 'restore: one slot first',
    world: { spec: { restore: { snapshotUri: 's3://b/snap-1' } }, slots: [] },
    action: { type: 'ensure-members', size: 1, minAvailable: 1 },
    check: (p) => {
      expect(p.status.phase).toBe('Restoring');
      expect(p.status.operation).toMatchObject({ kind: 'Restore', step: 'creating-member', ordinal: 0 });
    },
  },
  {
    name: 'restore: shrink a never-bootstrapped set to one slot',
    world: { spec: { restore: { snapshotUri: 's3://b/snap-1' } }, slots: ['fresh', 'fresh', 'fresh'] },
    action: { type: 'ensure-members', size: 1, minAvailable: 1 },
  },
  {
    name: 'restore: wait for slot 0 to answer',
    world: { spec: { restore: { snapshotUri: 's3://b/snap-1' } }, slots: ['silent'] },
    action: waitAction,
    check: (p) => {
      expect(p.status.phase).toBe('Restoring');
      expect(p.status.operation).toMatchObject({ kind: 'Restore', step: 'waiting-for-member' });
    },
  },
  {
    name: 'restore: slot 0 answers uninitialized -> restore',
    world: {
      spec: { restore: { snapshotUri: 's3://b/snap-1', expectedClusterId: 'old-1' } },
      slots: ['fresh'],
    },
    action: { type: 'restore', snapshotUri: 's3://b/snap-1', expectedClusterId: 'old-1' },
    check: (p) => {
      expect(p.status.operation).toMatchObject({ kind: 'Restore', step: 'restoring' });
      expect(cond(p, 'Bootstrapped')).toMatchObject({ status: 'False', reason: 'Restoring' });
    },
  },
  {
    name: 'restore refused on a bootstrapped cluster: event, nothing restored, reconciling goes on',
    world: { spec: { restore: { snapshotUri: 's3://b/snap-1' } }, slots: ['voter', 'voter', 'voter'] },
    action: { type: 'none' },
    check: (p) => {
      expect(p.events).toContainEqual(
        expect.objectContaining({
          type: 'Warning',
          reason: 'RestoreRefused',
          message: expect.stringContaining(CID),
        }),
      );
      expect(cond(p, 'Stalled')?.status).toBe('False');
      expect(cond(p, 'Ready')?.status).toBe('True');
    },
  },
  {
    name: 'restored cluster growing: no RestoreRefused, grows',
    world: {
      spec: { restore: { snapshotUri: 's3://b/snap-1' } },
      slots: ['voter'],
      prev: {
        clusterId: CID,
        restoredFrom: { clusterId: 'old-1', uri: 's3://b/snap-1' },
        members: prevMembers([0]),
      },
    },
    action: { type: 'ensure-members', size: 2, minAvailable: 2 },
    check: (p) => {
      expect(eventReasons(p)).not.toContain('RestoreRefused');
      expect(p.status.restoredFrom).toEqual({ clusterId: 'old-1', uri: 's3://b/snap-1' });
      expect(cond(p, 'Bootstrapped')).toMatchObject({ status: 'True', reason: 'Restored' });
    },
  },
  // Paused
  {
    name: 'paused: wait, nothing else',
    world: {
      spec: { replicas: 5, paused: true },
      slots: ['voter', 'voter', 'voter'],
      prev: {
        clusterId: CID,
        members: prevMembers([0, 1, 2]),
        operation: { kind: 'ScaleUp', ordinal: 3, step: 'growing', startedAt: EARLIER },
      },
    },
    action: { type: 'wait', reason: 'paused (spec.paused)', requeueMs: REQUEUE_MS.paused },
    check: (p) => {
      expect(p.status.phase).toBe('Paused');
      expect(cond(p, 'Progressing')).toMatchObject({ status: 'False', reason: 'Paused' });
      expect(p.status.operation).toMatchObject({ kind: 'ScaleUp', step: 'growing' });
      expect(p.events).toEqual([]);
    },
  },
  {
    name: 'paused before bootstrap: no initialize',
    world: { spec: { paused: true }, slots: ['fresh', 'fresh', 'fresh'] },
    action: (a) => expect(a).toMatchObject({ type: 'wait', requeueMs: REQUEUE_MS.paused }),
  },
];

describe('bootstrap: one step per branch', () => {
  it.each(cases)('$name', runCase);
});
