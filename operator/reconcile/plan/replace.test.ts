import { describe, expect, it } from 'vitest';
import { findCondition } from '../conditions.js';
import { plan } from '../plan.js';
import { doc, down, failedOp, member, NOW, prevStatus, pristine, world } from './member-fixtures.js';

const L = 'n-a'; // leader, slot 0
const B = 'n-b'; // slot 1's member, whose data was lost
const C = 'n-c'; // slot 2
const NEW = 'n-new'; // slot 1's node after the loss

const reasons = (p: ReturnType<typeof plan>) => p.events.map((e) => e.reason);

/** Slot 1 lost its data and came back pristine as NEW; B is still a voter, unreachable. */
function lostOne(extra: Partial<Parameters<typeof world>[0]> = {}) {
  return world({
    slots: [member(0, L, { leader: L }), pristine(1, NEW), member(2, C, { leader: L })],
    doc: doc({ [L]: { reachable: true }, [B]: { reachable: false }, [C]: { reachable: true } }, L),
    prev: prevStatus({ [L]: 0, [B]: 1, [C]: 2 }),
    ...extra,
  });
}

describe('replaceMembers', () => {
  it('removes the lost member of a pod whose node came back with a new id', () => {
    const p = plan(lostOne());
    expect(p.action).toEqual({ type: 'remove-member', ordinal: 1, nodeId: B });
    expect(p.status.operation).toMatchObject({ kind: 'Replace', step: 'removing', ordinal: 1, replaces: B });
    expect(reasons(p)).toContain('ReplacingMember');
    expect(p.events.find((e) => e.reason === 'ReplacingMember')?.message).toContain(NEW);
  });

  it('then adds the new node through the add flow', () => {
    const p = plan(
      world({
        slots: [member(0, L, { leader: L }), pristine(1, NEW), member(2, C, { leader: L })],
        doc: doc({ [L]: { reachable: true }, [C]: { reachable: true } }, L),
        prev: prevStatus(
          { [L]: 0, [C]: 2 },
          {
            operation: {
              kind: 'Replace',
              step: 'removing',
              ordinal: 1,
              replaces: B,
              startedAt: NOW.toISOString(),
            },
          },
        ),
      }),
    );
    expect(p.action).toEqual({ type: 'add-member', ordinal: 1 });
    expect(p.status.operation).toMatchObject({ kind: 'Replace', step: 'adding', ordinal: 1, replaces: B });
  });

  it('keeps the replacement going when the disruption budget follows the removal', () => {
    // The lost member's removal changes the voters, so the budget the pass observes is stale: the
    // budget is brought up to date without losing the replacement that is half done.
    const removed = (operation: { kind: 'Replace'; step: string }) =>
      world({
        slots: [member(0, L, { leader: L }), pristine(1, NEW), member(2, C, { leader: L })],
        doc: doc({ [L]: { reachable: true }, [C]: { reachable: true } }, L),
        prev: prevStatus(
          { [L]: 0, [C]: 2 },
          { operation: { ...operation, ordinal: 1, replaces: B, startedAt: NOW.toISOString() } },
        ),
      });
    const p = plan({
      ...removed({ kind: 'Replace', step: 'removing' }),
      owned: { drift: [], pdbMinAvailable: 99, tls: null, unsupported: [] },
    });
    expect(p.action.type).toBe('repair-owned');
    expect(p.status.operation).toMatchObject({ kind: 'Replace', step: 'removing', replaces: B });
    const next = plan(removed({ kind: 'Replace', step: 'removing' }));
    expect(next.action).toEqual({ type: 'add-member', ordinal: 1 });
  });

  it('reports MemberReplaced once the new node votes', () => {
    const p = plan(
      world({
        slots: [member(0, L, { leader: L }), member(1, NEW, { leader: L }), member(2, C, { leader: L })],
        doc: doc({ [L]: { reachable: true }, [NEW]: { reachable: true }, [C]: { reachable: true } }, L),
        prev: prevStatus(
          { [L]: 0, [C]: 2 },
          {
            operation: {
              kind: 'Replace',
              step: 'adding',
              ordinal: 1,
              replaces: B,
              startedAt: NOW.toISOString(),
            },
          },
        ),
      }),
    );
    expect(p.action.type).toBe('none');
    const replaced = p.events.find((e) => e.reason === 'MemberReplaced');
    expect(replaced?.message).toContain(B);
    expect(replaced?.message).toContain(NEW);
    expect(p.status.operation ?? null).toBeNull();
  });

  it('never removes a member when that would lose the quorum: waits and says why', () => {
    // Five voters, two others unreachable too: removing B leaves 4 voters with 2 reachable.
    const p = plan(
      world({
        slots: [member(0, L, { leader: L }), pristine(1, NEW), member(2, C, { leader: L }), down(3), down(4)],
        doc: doc(
          {
            [L]: { reachable: true },
            [B]: { reachable: false },
            [C]: { reachable: true },
            'n-d': { reachable: false },
            'n-e': { reachable: false },
          },
          L,
        ),
        prev: prevStatus({ [L]: 0, [B]: 1, [C]: 2, 'n-d': 3, 'n-e': 4 }),
      }),
    );
    expect(p.action.type).toBe('wait');
    expect(findCondition(p.status.conditions, 'Stalled')).toMatchObject({
      status: 'True',
      reason: 'QuorumAtRisk',
    });
    expect(reasons(p)).toContain('QuorumAtRisk');
  });

  it('respects a QUORUM_AT_RISK refusal from the admin API and asks again later', () => {
    const refusedAt = new Date(NOW.getTime() - 5_000);
    const p = plan(lostOne({ operation: failedOp('remove-node', B, 'QUORUM_AT_RISK', refusedAt) }));
    expect(p.action).toMatchObject({ type: 'wait' });
    expect(p.action.type === 'wait' && p.action.requeueMs).toBeGreaterThan(0);
    const later = new Date(NOW.getTime() - 60_000);
    const retry = plan(lostOne({ operation: failedOp('remove-node', B, 'QUORUM_AT_RISK', later) }));
    expect(retry.action).toEqual({ type: 'remove-member', ordinal: 1, nodeId: B });
  });

  it('does nothing without a leader: a quorum loss is not a replacement', () => {
    const p = plan(
      world({
        slots: [member(0, L), pristine(1, NEW), pristine(2, 'n-new2')],
        doc: doc({ [L]: { reachable: true }, [B]: { reachable: false }, [C]: { reachable: false } }, null),
        prev: prevStatus({ [L]: 0, [B]: 1, [C]: 2 }),
      }),
    );
    expect(p.action.type).toBe('wait');
    expect(reasons(p)).not.toContain('ReplacingMember');
  });

  it('leaves a pod whose recorded member still answers to the add flow', () => {
    const p = plan(
      world({
        slots: [member(0, L, { leader: L }), pristine(1, NEW), member(2, C, { leader: L })],
        doc: doc({ [L]: { reachable: true }, [B]: { reachable: true }, [C]: { reachable: true } }, L),
        prev: prevStatus({ [L]: 0, [B]: 1, [C]: 2 }),
      }),
    );
    expect(p.action).toEqual({ type: 'add-member', ordinal: 1 });
    expect(p.status.operation?.kind).toBe('ScaleUp');
  });

  it('comes before adding a new slot: the dead member goes first', () => {
    // Scaling 3 -> 4: slot 3 is new and fresh, slot 2 lost its data (C dead, now n-new).
    const p = plan(
      world({
        slots: [
          member(0, L, { leader: L }),
          member(1, B, { leader: L }),
          pristine(2, NEW),
          pristine(3, 'n-fourth'),
        ],
        doc: doc({ [L]: { reachable: true }, [B]: { reachable: true }, [C]: { reachable: false } }, L),
        prev: prevStatus({ [L]: 0, [B]: 1, [C]: 2 }),
        replicas: 4,
      }),
    );
    expect(p.action).toEqual({ type: 'remove-member', ordinal: 2, nodeId: C });
  });

  it('never replaces with a node of another cluster', () => {
    const p = plan(
      world({
        slots: [
          member(0, L, { leader: L }),
          member(1, NEW, { cluster: 'c-else' }),
          member(2, C, { leader: L }),
        ],
        doc: doc({ [L]: { reachable: true }, [B]: { reachable: false }, [C]: { reachable: true } }, L),
        prev: prevStatus({ [L]: 0, [B]: 1, [C]: 2 }),
      }),
    );
    expect(p.action.type).toBe('wait');
    expect(reasons(p)).toContain('ForeignMember');
    expect(reasons(p)).not.toContain('ReplacingMember');
  });
});
