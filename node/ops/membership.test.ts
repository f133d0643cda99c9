import { describe, expect, it } from 'vitest';
import * as M from '../raft/membership.js';
import type { RaftMetrics } from '../raft/types.js';
import { AddressBook } from './address-book.js';
import { fingerprintOf, staticClusterId } from './bootstrap.js';
import { bestTransferTarget, removalCheck } from './membership.js';
import { OperationQueue } from './operations.js';

function leaderMetrics(
  voters: string[],
  contact: Record<string, number | null>,
  matched: Record<string, number> = {},
): RaftMetrics {
  return {
    id: voters[0] as string,
    state: 'leader',
    currentTerm: 3,
    vote: voters[0] as string,
    lastLogIndex: 100,
    committed: 100,
    lastApplied: 100,
    currentLeader: voters[0] as string,
    membership: M.initialMembership(voters),
    snapshot: null,
    replication: Object.fromEntries(
      voters.slice(1).map((id) => [
        id,
        {
          matched: matched[id] ?? 100,
          lastContactTicksAgo: contact[id] ?? null,
          state: 'replicate' as const,
        },
      ]),
    ),
  };
}

describe('removalCheck (the quorum guard of DELETE /_cluster/nodes)', () => {
  it('allows removing a follower when the rest can still decide', () => {
    const m = leaderMetrics(['a', 'b', 'c'], { b: 1, c: 1 });
    expect(removalCheck(m, 'c', 10)).toMatchObject({ ok: true, remaining: ['a', 'b'], quorum: 2 });
  });

  it('refuses when a remaining voter is unreachable and the rest are not a quorum', () => {
    // a leads, c has been silent for longer than an election timeout: removing b leaves {a, c}
    // where only a answers.
    const m = leaderMetrics(['a', 'b', 'c'], { b: 1, c: 50 });
    expect(removalCheck(m, 'b', 10)).toMatchObject({ ok: false, reachable: ['a'], quorum: 2 });
    // ...but removing the silent member itself is what heals the cluster.
    expect(removalCheck(m, 'c', 10).ok).toBe(true);
  });

  it('counts a voter that never answered as unreachable', () => {
    const m = leaderMetrics(['a', 'b', 'c', 'd', 'e'], { b: 1, c: null, d: null });
    expect(removalCheck(m, 'e', 10)).toMatchObject({ ok: false, reachable: ['a', 'b'], quorum: 3 });
  });
});

describe('bestTransferTarget', () => {
  it('picks the reachable voter with the most of the log, lowest id on ties', () => {
    const m = leaderMetrics(['a', 'b', 'c', 'd'], { b: 1, c: 1, d: 99 }, { b: 90, c: 100, d: 100 });
    expect(bestTransferTarget(m, 10)).toBe('c');
    expect(bestTransferTarget(leaderMetrics(['a'], {}), 10)).toBeNull();
  });
});

describe('OperationQueue', () => {
  it('runs operations one at a time in the order accepted, recording steps and errors', async () => {
    const q = new OperationQueue();
    const order: string[] = [];
    let release: () => void = () => undefined;
    const first = q.enqueue('add-node', 'd', async (h) => {
      h.step('catching-up');
      order.push('first started');
      await new Promise<void>((r) => {
        release = r;
      });
      order.push('first done');
    });
    const second = q.enqueue('remove-node', 'e', async () => {
      order.push('second started');
      throw Object.assign(new Error('nope'), {});
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(q.get(first.id)).toMatchObject({ state: 'running', step: 'catching-up' });
    expect(q.get(second.id)).toMatchObject({ state: 'pending' });
    expect(q.active('add-node', 'd')?.id).toBe(first.id);
    expect(q.busy()).toBe(true);
    release();
    await q.idle();
    expect(order).toEqual(['first started', 'first done', 'second started']);
    expect(q.get(first.id)).toMatchObject({ state: 'succeeded', step: 'done' });
    expect(q.get(second.id)).toMatchObject({ state: 'failed', error: { code: 'INTERNAL' } });
    expect(q.busy()).toBe(false);
  });
});

describe('AddressBook', () => {
  it('prefers the replicated membership over hints and forgets retired members', () => {
    const published: Record<string, string>[] = [];
    const self = { raft: 's:1', api: 's:2', admin: 's:3' };
    const book = new AddressBook('a', self, (p) => published.push(p));
    book.hint({ b: { raft: 'old-b:1', api: '', admin: '' }, c: { raft: 'c:1', api: 'c:2', admin: 'c:3' } });
    const m = M.initialMembership(['a', 'b'], { nodes: { b: { raft: 'b:1', api: 'b:2', admin: 'b:3' } } });
    book.learn(m);
    expect(book.get('b')?.raft).toBe('b:1');
    expect(book.get('a')).toEqual(self);
    book.learn({ ...m, retired: ['c'] });
    expect(book.get('c')).toBeUndefined();
    expect(published.at(-1)).toEqual({ b: 'b:1' });
  });
});

describe('cluster identity', () => {
  const a = { api_address: 'h:1', raft_address: 'h:2', admin_address: 'h:3' };
  const b = { api_address: 'i:1', raft_address: 'i:2', admin_address: 'i:3' };

  it('fingerprints initialize requests independent of member order, sensitive to addresses', () => {
    expect(fingerprintOf({ x: a, y: b })).toBe(fingerprintOf({ y: b, x: a }));
    expect(fingerprintOf({ x: a, y: b })).not.toBe(fingerprintOf({ x: a, y: { ...b, api_address: 'i:9' } }));
  });

  it('gives every member of a static cluster the same id', () => {
    const nodes = { x: { raft: 'h:2', api: 'h:1', admin: 'h:3' } };
    expect(staticClusterId(nodes)).toBe(staticClusterId({ ...nodes }));
    expect(staticClusterId(nodes)).toMatch(/^static-[0-9a-f]{32}$/);
  });
});
