// Pure helpers over Membership values. Memberships are immutable: every change makes a new one.

import { RaftError } from './errors.js';
import type { ClusterIdentity, Membership, NodeId, NodeInfo } from './types.js';

export const EMPTY_MEMBERSHIP: Membership = {
  configs: [],
  learners: [],
  retired: [],
  nodes: {},
  cluster: null,
};

const sorted = (ids: Iterable<NodeId>): NodeId[] => [...new Set(ids)].sort();

export function voters(m: Membership): NodeId[] {
  return sorted(m.configs.flat());
}

export function members(m: Membership): NodeId[] {
  return sorted([...m.configs.flat(), ...m.learners]);
}

export function isVoter(m: Membership, id: NodeId): boolean {
  return m.configs.some((c) => c.includes(id));
}

export function isJoint(m: Membership): boolean {
  return m.configs.length > 1;
}

export function isInitialized(m: Membership): boolean {
  return m.configs.length > 0;
}

export interface InitialMembershipOptions {
  nodes?: Record<NodeId, NodeInfo>;
  cluster?: ClusterIdentity | null;
}

export function initialMembership(
  voterIds: readonly NodeId[],
  opts: InitialMembershipOptions = {},
): Membership {
  if (voterIds.length === 0) throw new RaftError('INVALID_MEMBERSHIP', 'a cluster needs at least one voter');
  const nodes = Object.fromEntries(Object.entries(opts.nodes ?? {}).filter(([id]) => voterIds.includes(id)));
  return { configs: [sorted(voterIds)], learners: [], retired: [], nodes, cluster: opts.cluster ?? null };
}

/** Every id that leaves `from` on the way to `to` is retired for good, and its address forgotten. */
function retire(from: Membership, next: Pick<Membership, 'configs' | 'learners'>): Membership {
  const staying = new Set([...next.configs.flat(), ...next.learners]);
  const leaving = members(from).filter((id) => !staying.has(id));
  const nodes = Object.fromEntries(Object.entries(from.nodes).filter(([id]) => staying.has(id)));
  return { ...from, ...next, nodes, retired: sorted([...from.retired, ...leaving]) };
}

function refuseRetired(m: Membership, ids: readonly NodeId[]): void {
  const bad = ids.filter((id) => m.retired.includes(id));
  if (bad.length > 0) {
    throw new RaftError(
      'RETIRED_NODE_ID',
      `node id ${bad.join(', ')} was removed before and can never rejoin`,
    );
  }
}

/** Add a learner (with its addresses when the host uses them); a no-op for a current member. */
export function withLearner(m: Membership, id: NodeId, info?: NodeInfo): Membership {
  refuseRetired(m, [id]);
  if (isVoter(m, id) || m.learners.includes(id)) return m;
  const nodes = info ? { ...m.nodes, [id]: info } : m.nodes;
  return { ...m, learners: sorted([...m.learners, id]), nodes };
}

export function withoutLearner(m: Membership, id: NodeId): Membership {
  if (!m.learners.includes(id)) return m;
  return retire(m, { configs: m.configs, learners: m.learners.filter((l) => l !== id) });
}

/**
 * The joint configuration that starts a change of the voter set to `target`. New voters must
 * already be learners (learner-first: they are caught up before they count). Removed voters are
 * kept as learners when `retain` is set, otherwise retired.
 */
export function enterJoint(m: Membership, target: readonly NodeId[], retain: boolean): Membership {
  if (isJoint(m))
    throw new RaftError('MEMBERSHIP_CHANGE_IN_PROGRESS', 'a joint membership change is in progress');
  if (target.length === 0) throw new RaftError('INVALID_MEMBERSHIP', 'the new voter set is empty');
  refuseRetired(m, target);
  const current = m.configs[0] ?? [];
  const strangers = target.filter((id) => !current.includes(id) && !m.learners.includes(id));
  if (strangers.length > 0) {
    throw new RaftError(
      'INVALID_MEMBERSHIP',
      `add ${strangers.join(', ')} as learner before making it a voter`,
    );
  }
  const next = sorted(target);
  const demoted = retain ? current.filter((id) => !next.includes(id)) : [];
  const learners = sorted([...m.learners.filter((id) => !next.includes(id)), ...demoted]);
  return retire(m, { configs: [current, next], learners });
}

/** The configuration that completes a joint change: only the new voter set remains. */
export function leaveJoint(m: Membership): Membership {
  const next = m.configs[1];
  if (!next) return m;
  return retire(m, { configs: [next], learners: m.learners });
}

export function sameVoters(m: Membership, target: readonly NodeId[]): boolean {
  const t = sorted(target);
  const c = m.configs[0] ?? [];
  return !isJoint(m) && c.length === t.length && c.every((id, i) => id === t[i]);
}
