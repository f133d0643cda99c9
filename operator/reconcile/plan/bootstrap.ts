// The rules before (or instead of) the bootstrapped ones: a paused cluster, and the restore and
// bootstrap flows of a cluster that was never bootstrapped.

import type { Note } from '../conditions.js';
import {
  answers,
  operation,
  type Phase,
  podName,
  problemOf,
  REQUEUE_MS,
  type Rule,
  range,
  slotAt,
  waitFor,
} from './context.js';

// -- Paused --------------------------------------------------------------------------------------

export const paused: Rule = () => ({
  action: { type: 'wait', reason: 'paused (spec.paused)', requeueMs: REQUEUE_MS.paused },
  operation: 'keep',
  phase: 'Paused',
});

// -- Never bootstrapped --------------------------------------------------------------------------

/** spec.restore on a new cluster: one slot, then POST /_cluster/restore on it; it grows later. */
export const restoreFlow: Rule = (ctx) => {
  const restore = ctx.spec.restore!;
  const op = (step: string) => operation(ctx, 'Restore', step, 0);
  const progress = (message: string): Note => ({ reason: 'Restoring', message });
  if (ctx.setSize !== 1) {
    return {
      action: { type: 'ensure-members', size: 1 },
      operation: op('creating-member'),
      progress: progress('creating the one member slot a restore starts from'),
      phase: 'Restoring',
    };
  }
  const first = slotAt(ctx, 0);
  if (!first || !answers(first)) {
    return {
      action: waitFor(`slot 0 to answer (${problemOf(first, 0)})`),
      operation: op('waiting-for-member'),
      progress: progress(`waiting for ${podName(ctx, 0)} to answer`),
      phase: 'Restoring',
    };
  }
  return {
    action: {
      type: 'restore',
      snapshotUri: restore.snapshotUri,
      ...(restore.expectedClusterId ? { expectedClusterId: restore.expectedClusterId } : {}),
    },
    operation: op('restoring'),
    progress: progress(`restoring ${restore.snapshotUri} on ${podName(ctx, 0)}`),
    phase: 'Restoring',
    events: [
      {
        type: 'Normal',
        reason: 'Restoring',
        message: `restoring ${restore.snapshotUri} on ${podName(ctx, 0)}`,
      },
    ],
  };
};

/** A new cluster: all spec.replicas slots, then POST /_cluster/initialize once every one answers. */
export const bootstrapFlow: Rule = (ctx) => {
  const n = ctx.replicas;
  const phase: Phase = ctx.setSize === 0 ? 'Pending' : 'Bootstrapping';
  const op = (step: string) => operation(ctx, 'Bootstrap', step);
  if (ctx.setSize !== n) {
    return {
      action: { type: 'ensure-members', size: n },
      operation: op('creating-members'),
      progress: { reason: 'Bootstrapping', message: `creating ${n} member slots` },
      phase,
      events: [{ type: 'Normal', reason: 'CreatingMembers', message: `creating ${n} member slots` }],
    };
  }
  const ordinals = range(n);
  const silent = ordinals.filter((o) => !answers(slotAt(ctx, o)));
  if (silent.length > 0) {
    const detail = silent.map((o) => `${o} (${problemOf(slotAt(ctx, o), o)})`).join(', ');
    return {
      action: waitFor(`slots to answer: ${detail}`),
      operation: op('waiting-for-members'),
      progress: { reason: 'Bootstrapping', message: `waiting for slots ${silent.join(', ')} to answer` },
      phase,
    };
  }
  // digest() calls the cluster bootstrapped when any node has a cluster id or is initialized, so
  // here every node answers uninitialized: initializing cannot create a second cluster.
  const pod0 = podName(ctx, 0);
  return {
    action: { type: 'initialize', ordinals },
    operation: op('initializing'),
    progress: { reason: 'Bootstrapping', message: `initializing the cluster on ${pod0}` },
    phase,
    events: [
      {
        type: 'Normal',
        reason: 'Initializing',
        message: `initializing a ${n}-member cluster on ${pod0} (slots ${ordinals.join(', ')})`,
      },
    ],
  };
};
