import { describe, expect, it } from 'vitest';
import * as M from '../raft/membership.js';
import { MembershipAdmission } from './membership-admission.js';

const info = (host: string) => ({ raft: `${host}:7000`, api: `${host}:8080`, admin: `${host}:8443` });

describe('MembershipAdmission', () => {
  it('admits voters of both configs of a joint change and learners, never retired ids', () => {
    const told = new Map<string, string>();
    const admission = new MembershipAdmission('n1', (id) => told.get(id));
    let m = M.initialMembership(['n1', 'n2', 'n3'], {
      nodes: { n1: info('a'), n2: info('b'), n3: info('c') },
    });
    m = M.withLearner(m, 'n4', info('d'));
    m = M.enterJoint(m, ['n1', 'n2', 'n4'], false);
    admission.update(m);
    for (const id of ['n2', 'n3', 'n4']) expect(admission.isMember(id)).toBe(true);
    m = M.leaveJoint(m);
    admission.update(m);
    expect(admission.isMember('n3')).toBe(false); // retired by the change
    expect(admission.isRetired('n3')).toBe(true);
    told.set('n3', 'c:7000'); // even when an old hint still names it
    expect(admission.isMember('n3')).toBe(false);
    expect(admission.isRetired('n3')).toBe(true);
    // Unknown (the transport may still admit it: not retired), but not a member.
    expect([admission.isMember('n9'), admission.isRetired('n9')]).toEqual([false, false]);
    expect(admission.isMember('n1')).toBe(false); // a peer never speaks as this node
  });

  it('before this node is a member, also admits the nodes it was told of (a leader preparing it)', () => {
    const told = new Map([['n7', 'leader.example:7000']]);
    const admission = new MembershipAdmission('n4', (id) => told.get(id));
    expect(admission.isMember('n7')).toBe(true); // told of, and no membership yet
    // Its log starts with the first membership, which predates today's leader n7.
    admission.update(M.initialMembership(['n1', 'n2', 'n3']));
    expect(admission.isMember('n7')).toBe(true);
    expect(admission.isMember('n9')).toBe(false);
    expect(admission.advertisedAddress('n7')).toBe('leader.example:7000');
    // Once it holds the entry that adds it, only the membership decides.
    admission.update(M.withLearner(M.initialMembership(['n1', 'n2', 'n3']), 'n4'));
    expect(admission.isMember('n7')).toBe(false);
    expect(admission.isMember('n2')).toBe(true);
  });

  it('admits nobody on a node that knows of no one', () => {
    const admission = new MembershipAdmission('n1', () => undefined);
    expect(admission.isMember('n2')).toBe(false);
  });
});
