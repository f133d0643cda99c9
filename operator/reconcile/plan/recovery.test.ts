import { describe, expect, it } from 'vitest';
import { findCondition } from '../conditions.js';
import { plan } from '../plan.js';
import { CID, doc, down, member, NOW, prevStatus, pristine, world } from './member-fixtures.js';

const A = 'n-a'; // slot 0, the survivor
const B = 'n-b';
const C = 'n-c';
const NEW_CID = 'c-new';
const AT = NOW.toISOString();

const reasons = (p: ReturnType<typeof plan>) => p.events.map((e) => e.reason);

/** Three voters, B and C gone for good (their pods came back pristine), A alone without a leader. */
function lostQuorum(recovery?: string, extra: Partial<Parameters<typeof world>[0]> = {}) {
  return world({
    slots: [member(0, A), pristine(1, 'n-b2'), pristine(2, 'n-c2')],
    doc: doc({ [A]: { reachable: true }, [B]: { reachable: false }, [C]: { reachable: false } }, null),
    prev: prevStatus({ [A]: 0, [B]: 1, [C]: 2 }),
    ...(recovery ? { recovery } : {}),
    ...extra,
  });
}

describe('recoverQuorum', () => {
  it('without spec.recovery only waits, and says how to recover', () => {
    const p = plan(lostQuorum());
    expect(p.action.type).toBe('wait');
    expect(findCondition(p.status.conditions, 'Available')?.status).toBe('False');
    expect(findCondition(p.status.conditions, 'Stalled')).toMatchObject({
      status: 'True',
      reason: 'QuorumLost',
    });
    const warning = p.events.find((e) => e.reason === 'QuorumLost');
    expect(warning?.type).toBe('Warning');
    expect(warning?.message).toContain('spec.recovery.forceNewClusterFrom');
    expect(warning?.message).toContain(`${A} (demo-0`);
    expect(p.status.clusterId).toBe(CID);
  });

  it('with spec.recovery naming the pod of the most up-to-date survivor, forces a new cluster from it', () => {
    const p = plan(lostQuorum('demo-0'));
    expect(p.action).toEqual({
      type: 'force-new-cluster',
      ordinal: 0,
      nodeId: A,
      expectedClusterId: CID,
      request: 'demo-0',
    });
    expect(p.status.operation).toMatchObject({ kind: 'Recovery', step: 'forcing', ordinal: 0 });
    expect(reasons(p)).toContain('QuorumRecovered');
  });

  it('accepts the member id as well as the pod name', () => {
    expect(plan(lostQuorum(A)).action).toMatchObject({ type: 'force-new-cluster', nodeId: A });
  });

  it('refuses a survivor when another reachable survivor has a more up-to-date log, naming it', () => {
    // Five voters, three gone; the two survivors differ: demo-1 saw a later term.
    const obs = world({
      slots: [
        member(0, A, { term: 4, index: 50 }),
        member(1, B, { term: 5, index: 40 }),
        down(2),
        down(3),
        down(4),
      ],
      doc: doc(
        {
          [A]: { reachable: true },
          [B]: { reachable: true },
          [C]: { reachable: false },
          'n-d': { reachable: false },
          'n-e': { reachable: false },
        },
        null,
      ),
      prev: prevStatus({ [A]: 0, [B]: 1, [C]: 2, 'n-d': 3, 'n-e': 4 }),
      recovery: 'demo-0',
    });
    const p = plan(obs);
    expect(p.action.type).toBe('wait');
    expect(findCondition(p.status.conditions, 'Stalled')).toMatchObject({
      status: 'True',
      reason: 'RecoveryRefused',
    });
    const refused = p.events.find((e) => e.reason === 'RecoveryRefused');
    expect(refused?.type).toBe('Warning');
    expect(refused?.message).toContain('demo-1');
    // Naming the better one goes ahead.
    const ok = plan({
      ...obs,
      cluster: { ...obs.cluster, spec: { ...obs.cluster.spec, recovery: { forceNewClusterFrom: 'demo-1' } } },
    });
    expect(ok.action).toMatchObject({ type: 'force-new-cluster', ordinal: 1, nodeId: B });
  });

  it('waits while the named survivor does not answer', () => {
    const p = plan(
      world({
        slots: [member(0, A), down(1), down(2)],
        doc: doc({ [A]: { reachable: true }, [B]: { reachable: false }, [C]: { reachable: false } }, null),
        prev: prevStatus({ [A]: 0, [B]: 1, [C]: 2 }),
        recovery: 'demo-1',
      }),
    );
    expect(p.action.type).toBe('wait');
    expect(reasons(p)).toContain('RecoveryBlocked');
  });

  it('ignores spec.recovery while the quorum holds', () => {
    const p = plan(
      world({
        slots: [member(0, A, { leader: A }), member(1, B, { leader: A }), down(2)],
        doc: doc({ [A]: { reachable: true }, [B]: { reachable: true }, [C]: { reachable: false } }, A),
        prev: prevStatus({ [A]: 0, [B]: 1, [C]: 2 }),
        recovery: 'demo-0',
      }),
    );
    expect(p.action.type).not.toBe('force-new-cluster');
    expect(reasons(p)).not.toContain('QuorumRecovered');
  });

  it('never acts twice on the same request: a lingering spec.recovery is a no-op', () => {
    const recoveredFrom = { clusterId: 'c-older', nodeId: 'n-x', pod: 'demo-0', at: AT, request: 'demo-0' };
    const p = plan(lostQuorum('demo-0', { prev: prevStatus({ [A]: 0, [B]: 1, [C]: 2 }, { recoveredFrom }) }));
    expect(p.action.type).toBe('wait');
    expect(p.events.find((e) => e.reason === 'QuorumLost')?.message).toContain('used already');
    expect(p.status.recoveredFrom).toEqual(recoveredFrom);
  });

  it('forgets the consumed request once spec.recovery is removed, keeping the record', () => {
    const recoveredFrom = { clusterId: 'c-older', nodeId: 'n-x', pod: 'demo-0', at: AT, request: 'demo-0' };
    const p = plan(
      lostQuorum(undefined, { prev: prevStatus({ [A]: 0, [B]: 1, [C]: 2 }, { recoveredFrom }) }),
    );
    expect(p.status.recoveredFrom).toEqual({ clusterId: 'c-older', nodeId: 'n-x', pod: 'demo-0', at: AT });
  });
});

describe('after a recovery', () => {
  const rebuilt = (o: number) =>
    member(o, A, {
      leader: A,
      cluster: NEW_CID,
      recoveredFrom: { cluster_id: CID, node_id: A, index: 10, at: AT },
    });

  it('adopts the new cluster id and records the recovery and the request it consumed', () => {
    const p = plan(
      world({
        slots: [rebuilt(0), pristine(1, 'n-b2'), pristine(2, 'n-c2')],
        doc: doc({ [A]: { reachable: true } }, A, NEW_CID),
        prev: prevStatus({ [A]: 0, [B]: 1, [C]: 2 }),
        recovery: 'demo-0',
      }),
    );
    expect(p.status.clusterId).toBe(NEW_CID);
    expect(p.status.recoveredFrom).toEqual({
      clusterId: CID,
      nodeId: A,
      pod: 'demo-0',
      at: AT,
      request: 'demo-0',
    });
    // The pristine slots join through the add flow, lowest first.
    expect(p.action).toEqual({ type: 'add-member', ordinal: 1 });
  });

  it('wipes a slot that still holds the old cluster, one at a time', () => {
    const p = plan(
      world({
        slots: [rebuilt(0), member(1, B, { role: 'Candidate' }), member(2, C, { role: 'Candidate' })],
        doc: doc({ [A]: { reachable: true } }, A, NEW_CID),
        prev: prevStatus({ [A]: 0 }, { clusterId: NEW_CID }),
      }),
    );
    expect(p.action).toEqual({ type: 'recreate-member', ordinal: 1 });
    expect(p.status.operation).toMatchObject({ kind: 'Recovery', step: 'wiping', ordinal: 1 });
    expect(reasons(p)).toContain('WipingMember');
  });

  it('never wipes the survivor nor a member of the new cluster', () => {
    const p = plan(
      world({
        slots: [rebuilt(0), member(1, 'n-b2', { leader: A, cluster: NEW_CID }), pristine(2, 'n-c2')],
        doc: doc({ [A]: { reachable: true }, 'n-b2': { reachable: true } }, A, NEW_CID),
        prev: prevStatus({ [A]: 0, 'n-b2': 1 }, { clusterId: NEW_CID }),
      }),
    );
    expect(p.action).toEqual({ type: 'add-member', ordinal: 2 });
  });
});
