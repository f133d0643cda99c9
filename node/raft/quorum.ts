// Quorum arithmetic, joint-consensus aware. A joint configuration (old, new) agrees only when a
// majority of each of its voter sets agrees; the result is the minimum over the sets.

import type { NodeId } from './types.js';

/**
 * The highest index acknowledged by a majority of `voters`. An empty voter set imposes no
 * constraint (Infinity), which matters only for a joint config where one side is empty.
 */
export function majorityIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  if (voters.length === 0) return Number.POSITIVE_INFINITY;
  const matches = voters.map(matchOf).sort((a, b) => b - a);
  return matches[Math.floor(voters.length / 2)] as number;
}

/** The highest index committed under every config of a (possibly joint) membership. */
export function jointCommitIndex(configs: readonly NodeId[][], matchOf: (id: NodeId) => number): number {
  let result = Number.POSITIVE_INFINITY;
  for (const voters of configs) result = Math.min(result, majorityIndex(voters, matchOf));
  return result === Number.POSITIVE_INFINITY ? 0 : result;
}

export type VoteResult = 'won' | 'lost' | 'pending';

export function majorityVote(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.length === 0) return 'won';
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const quorum = Math.floor(voters.length / 2) + 1;
  if (granted >= quorum) return 'won';
  if (voters.length - rejected < quorum) return 'lost';
  return 'pending';
}

export function jointVote(configs: readonly NodeId[][], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const results = configs.map((voters) => majorityVote(voters, votes));
  if (results.includes('lost')) return 'lost';
  if (results.includes('pending')) return 'pending';
  return 'won';
}

/** Whether `active` contains a quorum of every config (used by CheckQuorum and ReadIndex). */
export function hasJointQuorum(configs: readonly NodeId[][], active: (id: NodeId) => boolean): boolean {
  const votes = new Map<NodeId, boolean>();
  for (const voters of configs) for (const id of voters) votes.set(id, active(id));
  return jointVote(configs, votes) === 'won';
}
