import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ClusterStatus, clusterStatusSchema } from '../api/cluster.js';
import {
  type Case,
  CID,
  cond,
  EARLIER,
  eventReasons,
  isMember,
  makeCluster,
  NOW,
  nid,
  observe,
  op,
  pod,
  podOf,
  prevMembers,
  runCase,
  type SlotKind,
  type World,
} from './plan/slot-fixtures.js';
import { plan, selectorOf } from './plan.js';
import type { Action } from './types.js';

const cases: Case[] = [
  // Converged
  {
    name: 'converged: none, Ready True',
    world: { slots: ['voter', 'voter', 'voter'] },
    action: { type: 'none' },
    check: (p) => {
      expect(p.status.phase).toBe('Running');
      expect(p.status.operation).toBeNull();
      for (const [type, status] of [
        ['Ready', 'True'],
        ['Available', 'True'],
        ['Bootstrapped', 'True'],
        ['Progressing', 'False'],
        ['Degraded', 'False'],
        ['Stalled', 'False'],
      ]) {
        expect(cond(p, type as string)).toMatchObject({ status, observedGeneration: 3 });
      }
      expect(p.events).toEqual([]);
    },
  },
];

describe('plan: one step per branch', () => {
  it.each(cases)('$name', runCase);
});

// -- Status details ------------------------------------------------------------------------------

describe('plan: status', () => {
  it('reports the observed shape of the cluster', () => {
    const world: World = { slots: ['voter', 'voter', 'voter'], leader: 1 };
    const obs = observe(world);
    obs.slots[2] = { ...obs.slots[2]!, pod: pod(2, true, false) };
    obs.cluster = makeCluster(
      {},
      {
        clusterId: CID,
        lastBackup: { time: EARLIER, uri: 's3://b/x', revision: 7 },
        nextBackup: '2025-06-02T00:00:00.000Z',
        conditions: [
          {
            type: 'BackupSucceeded',
            status: 'True',
            reason: 'Completed',
            message: 'ok',
            lastTransitionTime: EARLIER,
          },
        ],
      },
      9,
    );
    const p = plan(obs);
    expect(p.status).toMatchObject({
      observedGeneration: 9,
      replicas: 3,
      readyReplicas: 2,
      selector: 'app.kubernetes.io/instance=demo,app.kubernetes.io/name=conflux',
      clusterId: CID,
      leaderId: nid(1),
      term: 4,
      faultTolerance: 1,
      lastBackup: { time: EARLIER, uri: 's3://b/x', revision: 7 },
      nextBackup: '2025-06-02T00:00:00.000Z',
    });
    expect(p.status.members).toEqual([
      { id: nid(0), pod: podOf(0), role: 'Follower', reachable: true, lag: 0 },
      { id: nid(1), pod: podOf(1), role: 'Leader', reachable: true, lag: 0 },
      { id: nid(2), pod: podOf(2), role: 'Follower', reachable: true, lag: 0 },
    ]);
    expect(cond(p, 'BackupSucceeded')).toEqual({
      type: 'BackupSucceeded',
      status: 'True',
      reason: 'Completed',
      message: 'ok',
      lastTransitionTime: EARLIER,
    });
    expect(selectorOf('x')).toBe('app.kubernetes.io/instance=x,app.kubernetes.io/name=conflux');
  });

  it('keeps lastTransitionTime of conditions whose status did not change', () => {
    const first = plan(observe({ slots: ['voter', 'voter', 'voter'] }));
    const later = observe({ slots: ['voter', 'voter', 'voter'], prev: { ...first.status } });
    const second = plan({ ...later, now: new Date(NOW.getTime() + 60_000) });
    for (const c of second.status.conditions ?? []) {
      expect(c.lastTransitionTime).toBe(NOW.toISOString());
    }
    // One member lost: Ready and Degraded flip, Available does not.
    const third = plan({
      ...observe({ slots: ['voter', 'voter', 'stopped'], prev: { ...second.status } }),
      now: new Date(NOW.getTime() + 120_000),
    });
    const at = (type: string) => cond(third, type)?.lastTransitionTime;
    expect(at('Available')).toBe(NOW.toISOString());
    expect(at('Ready')).toBe(new Date(NOW.getTime() + 120_000).toISOString());
    expect(at('Degraded')).toBe(new Date(NOW.getTime() + 120_000).toISOString());
  });

  it('derives restoredFrom from the nodes when the status missed it (crash after restore)', () => {
    const obs = observe({
      spec: { restore: { snapshotUri: 's3://b/snap-1' } },
      slots: ['voter'],
      prev: { clusterId: CID, members: prevMembers([0]) },
    });
    obs.status = { ...obs.status!, restored_from: { cluster_id: 'old-1', uri: 's3://b/snap-1', index: 40 } };
    const p = plan(obs);
    expect(p.status.restoredFrom).toEqual({ clusterId: 'old-1', uri: 's3://b/snap-1' });
    expect(eventReasons(p)).not.toContain('RestoreRefused');
  });
});

// -- Whole flows, pass after pass ----------------------------------------------------------------

describe('plan: flows', () => {
  it('scale-down 5->3 with the leader on slot 4: transfer, remove, shrink, reclaim, repeat', () => {
    const steps: Action[] = [];
    let slots: SlotKind[] = ['voter', 'voter', 'voter', 'voter', 'voter'];
    let leader = 4;
    let prev: ClusterStatus | undefined;
    for (let pass = 0; pass < 20; pass++) {
      const p = plan(observe({ spec: { replicas: 3 }, slots, leader, ...(prev ? { prev } : {}) }));
      steps.push(p.action);
      const a = p.action;
      if (a.type === 'none') break;
      if (a.type === 'transfer-leader') leader = 0;
      else if (a.type === 'remove-member') slots = slots.map((k, o) => (o === a.ordinal ? 'removed' : k));
      else if (a.type === 'ensure-members') slots = slots.slice(0, a.size);
      // The reconciler writes the status after the step; members come from the observation.
      prev = { ...p.status, members: prevMembers(slots.flatMap((k, o) => (k === 'voter' ? [o] : []))) };
    }
    expect(steps).toEqual([
      { type: 'transfer-leader', ordinal: 4 },
      { type: 'remove-member', ordinal: 4, nodeId: nid(4) },
      { type: 'ensure-members', size: 4, minAvailable: 3 },
      { type: 'delete-volume', ordinal: 4 },
      { type: 'remove-member', ordinal: 3, nodeId: nid(3) },
      { type: 'ensure-members', size: 3, minAvailable: 2 },
      { type: 'delete-volume', ordinal: 3 },
      { type: 'none' },
    ]);
  });

  it('scale-up 3->5: one slot and one add at a time', () => {
    const steps: Action[] = [];
    let slots: SlotKind[] = ['voter', 'voter', 'voter'];
    for (let pass = 0; pass < 20; pass++) {
      const p = plan(observe({ spec: { replicas: 5 }, slots }));
      steps.push(p.action);
      const a = p.action;
      if (a.type === 'none') break;
      if (a.type === 'ensure-members') slots = [...slots, 'silent'];
      else if (a.type === 'wait') slots = slots.map((k) => (k === 'silent' ? 'fresh' : k));
      else if (a.type === 'add-member') slots = slots.map((k, o) => (o === a.ordinal ? 'voter' : k));
    }
    expect(steps.map((a) => (a.type === 'wait' ? 'wait' : a))).toEqual([
      { type: 'ensure-members', size: 4, minAvailable: 3 },
      'wait',
      { type: 'add-member', ordinal: 3 },
      { type: 'ensure-members', size: 5, minAvailable: 4 },
      'wait',
      { type: 'add-member', ordinal: 4 },
      { type: 'none' },
    ]);
  });

  it('restore: one slot, restore, then grow to replicas', () => {
    const restore = { snapshotUri: 's3://b/snap-1' };
    const spec = { replicas: 3, restore };
    expect(plan(observe({ spec, slots: [] })).action).toEqual({
      type: 'ensure-members',
      size: 1,
      minAvailable: 1,
    });
    expect(plan(observe({ spec, slots: ['silent'] })).action.type).toBe('wait');
    expect(plan(observe({ spec, slots: ['fresh'] })).action).toEqual({
      type: 'restore',
      snapshotUri: restore.snapshotUri,
    });
    const restored: ClusterStatus = {
      clusterId: CID,
      restoredFrom: { clusterId: 'old-1', uri: restore.snapshotUri },
      members: prevMembers([0]),
    };
    const grow = plan(observe({ spec, slots: ['voter'], prev: restored }));
    expect(grow.action).toEqual({ type: 'ensure-members', size: 2, minAvailable: 2 });
    expect(grow.events.map((e) => e.reason)).not.toContain('RestoreRefused');
  });
});

// -- Properties ----------------------------------------------------------------------------------

describe('plan: properties', () => {
  const kinds: SlotKind[] = [
    'voter',
    'learner',
    'fresh',
    'prepared',
    'silent',
    'stopped',
    'foreign',
    'removed',
  ];
  const world = fc.record({
    replicas: fc.integer({ min: 1, max: 6 }),
    slots: fc.array(fc.constantFrom(...kinds), { maxLength: 8 }),
    shrink: fc.nat(2),
    leader: fc.option(fc.nat(7)),
    unreachable: fc.subarray([0, 1, 2, 3, 4, 5, 6, 7]),
    orphans: fc.subarray(['nlost1', 'nlost2']),
    noStatus: fc.boolean(),
    paused: fc.boolean(),
    restore: fc.option(fc.constantFrom('s3://b/snap-1', 's3://b/snap-2')),
    restoredFrom: fc.option(fc.constantFrom('s3://b/snap-1', 's3://b/snap-2')),
    reclaimPolicy: fc.constantFrom('Retain' as const, 'Delete' as const),
    prevClusterId: fc.boolean(),
    prevOp: fc.option(
      fc.record({
        kind: fc.constantFrom(
          'Bootstrap' as const,
          'Restore' as const,
          'ScaleUp' as const,
          'ScaleDown' as const,
        ),
        ordinal: fc.nat(8),
        step: fc.constantFrom('adding', 'growing', 'removing', 'shrinking', 'reclaiming', 'restoring'),
      }),
    ),
    operation: fc.option(
      fc.record({
        kind: fc.constantFrom('add-node' as const, 'remove-node' as const),
        ordinal: fc.nat(7),
        state: fc.constantFrom(
          'pending' as const,
          'running' as const,
          'succeeded' as const,
          'failed' as const,
        ),
        code: fc.constantFrom('QUORUM_AT_RISK', 'RETIRED_NODE_ID', 'CATCH_UP_TIMEOUT'),
        agoMs: fc.nat(120_000),
      }),
    ),
  });

  it('never throws, never initializes over a cluster id, never removes a member that should stay', () => {
    fc.assert(
      fc.property(world, (w) => {
        const setSize = Math.max(0, w.slots.length - w.shrink);
        const obs = observe({
          spec: {
            replicas: w.replicas,
            paused: w.paused,
            reclaimPolicy: w.reclaimPolicy,
            ...(w.restore ? { restore: { snapshotUri: w.restore } } : {}),
          },
          slots: w.slots,
          setSize,
          leader: w.leader !== null && w.slots[w.leader] === 'voter' ? w.leader : null,
          unreachable: w.unreachable.filter((o) => o < w.slots.length),
          orphans: w.orphans,
          noStatus: w.noStatus,
          prev: {
            ...(w.prevClusterId ? { clusterId: CID } : {}),
            ...(w.restoredFrom ? { restoredFrom: { clusterId: 'old', uri: w.restoredFrom } } : {}),
            members: prevMembers(w.slots.flatMap((k, o) => (isMember(k) || k === 'stopped' ? [o] : []))),
            ...(w.prevOp ? { operation: { ...w.prevOp, startedAt: EARLIER, operationId: 'op-1' } } : {}),
          },
          operation: w.operation
            ? op({
                kind: w.operation.kind,
                node_id: nid(w.operation.ordinal),
                state: w.operation.state,
                finished_at: new Date(NOW.getTime() - w.operation.agoMs).toISOString(),
                error: w.operation.state === 'failed' ? { code: w.operation.code, message: 'x' } : null,
              })
            : null,
        });
        const p = plan(obs);
        const a = p.action;
        // The status is always valid for the CRD.
        expect(clusterStatusSchema.parse(p.status)).toEqual(p.status);
        if (w.paused) expect(a.type).toBe('wait');
        const anyClusterId = obs.slots.some((s) => s.node?.cluster_id || s.node?.initialized);
        if (a.type === 'initialize') {
          expect(anyClusterId).toBe(false);
          expect(obs.cluster.status?.clusterId).toBeUndefined();
          expect(a.ordinals).toEqual([...Array(w.replicas).keys()]);
        }
        if (a.type === 'restore') {
          expect(anyClusterId).toBe(false);
          expect(obs.cluster.status?.clusterId).toBeUndefined();
        }
        if (a.type === 'remove-member') {
          expect(a.ordinal).toBe(obs.setSize - 1);
          expect(a.ordinal).toBeGreaterThanOrEqual(w.replicas);
          const staying = obs.slots.filter((s) => s.pod.ordinal < w.replicas).map((s) => s.node?.node_id);
          expect(staying).not.toContain(a.nodeId);
        }
        if (a.type === 'transfer-leader') expect(a.ordinal).toBeGreaterThanOrEqual(w.replicas);
        if (a.type === 'delete-volume') {
          expect(w.reclaimPolicy).toBe('Delete');
          expect(a.ordinal).toBeGreaterThanOrEqual(obs.setSize);
          expect(obs.slots.map((s) => s.pod.ordinal)).not.toContain(a.ordinal);
          // Never the volume of a node the last status still counted as a member.
          expect(obs.cluster.status?.members?.map((m) => m.pod)).not.toContain(podOf(a.ordinal));
        }
        const bootstrapped = anyClusterId || obs.cluster.status?.clusterId !== undefined;
        if (a.type === 'ensure-members' && bootstrapped && obs.setSize > 0) {
          // One slot at a time, never below the desired size.
          expect([obs.setSize + 1, obs.setSize - 1]).toContain(a.size);
          expect(a.size).toBeGreaterThanOrEqual(Math.min(w.replicas, obs.setSize + 1));
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('is deterministic', () => {
    const obs = observe({ spec: { replicas: 5 }, slots: ['voter', 'voter', 'voter', 'fresh'] });
    expect(plan(obs)).toEqual(plan(obs));
  });
});
