// /_internal/status (one node's view) and /_cluster/status (the seed's aggregation,
// docs/ARCHITECTURE.md §7/§9).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ClusterStatus,
  clusterStatusSchema,
  type InternalStatus,
  internalStatusSchema,
} from '../api/admin-contract.js';
import type { RaftMetrics } from '../raft/types.js';
import {
  aggregateStatus,
  collectClusterStatus,
  internalStatus,
  type Probe,
  type StatusFetch,
} from './status.js';

const addresses = (id: string) => ({
  api_address: `${id}.conflux:8080`,
  raft_address: `${id}.conflux:7000`,
  admin_address: `${id}.conflux:9443`,
});

/** A member's own view; by default a follower of n1 in a healthy 3-voter cluster at term 3. */
function view(id: string, over: Partial<InternalStatus> = {}): InternalStatus {
  const voters = over.voters ?? [['n1', 'n2', 'n3']];
  const learners = over.learners ?? [];
  const ids = [...new Set([...voters.flat(), ...learners])];
  return {
    node_id: id,
    cluster_id: 'c1',
    initialized: true,
    status: 'Follower',
    current_term: 3,
    leader_id: 'n1',
    log_index: 100,
    committed: 100,
    last_applied_log: 100,
    voters,
    learners,
    nodes: Object.fromEntries(ids.map((m) => [m, addresses(m)])),
    replication: null,
    restored_from: null,
    ...over,
  };
}

/** The leader's view, knowing what every other member matched (100 unless told). */
function leader(id: string, over: Partial<InternalStatus> = {}, matched: Record<string, number> = {}) {
  const base = view(id, { status: 'Leader', leader_id: id, ...over });
  const others = [...base.voters.flat(), ...base.learners].filter((m) => m !== id);
  const replication = Object.fromEntries(
    others.map((m) => [m, { matched: matched[m] ?? 100, last_contact_ms: 20, state: 'replicate' }]),
  );
  return { ...base, replication };
}

const up = (...views: InternalStatus[]): Record<string, Probe> =>
  Object.fromEntries(views.map((v) => [v.node_id, { ok: true, status: v }]));
const down = (id: string, error = 'connect ECONNREFUSED'): Record<string, Probe> => ({
  [id]: { ok: false, error },
});

/** Aggregates and checks the result against the contract. */
function aggregate(self: InternalStatus, probes: Record<string, Probe>, lagThreshold = 10): ClusterStatus {
  const status = aggregateStatus(self, probes, { lagThreshold });
  expect(clusterStatusSchema.parse(status)).toEqual(status);
  return status;
}

describe('internalStatus', () => {
  const metrics: RaftMetrics = {
    id: 'n1',
    state: 'leader',
    currentTerm: 7,
    vote: 'n1',
    lastLogIndex: 42,
    committed: 41,
    lastApplied: 40,
    currentLeader: 'n1',
    membership: {
      configs: [['n1', 'n2']],
      learners: ['n3'],
      retired: ['n0'],
      nodes: {
        n1: { raft: 'n1.conflux:7000', api: 'n1.conflux:8080', admin: 'n1.conflux:9443' },
        n2: { raft: 'n2.conflux:7000', api: 'n2.conflux:8080', admin: 'n2.conflux:9443' },
        n3: { raft: 'n3.conflux:7000', api: 'n3.conflux:8080', admin: 'n3.conflux:9443' },
      },
      cluster: { id: 'c-new', restoredFrom: { clusterId: 'c-old', uri: 'file:///b/1.snap', index: 9 } },
    },
    snapshot: null,
    replication: {
      n2: { matched: 42, lastContactTicksAgo: 3, state: 'replicate' },
      n3: { matched: 30, lastContactTicksAgo: null, state: 'snapshot' },
    },
  };

  it("maps a leader's metrics to the contract", () => {
    const status = internalStatus(metrics, { tickMs: 50 });
    expect(internalStatusSchema.parse(status)).toEqual(status);
    expect(status).toEqual({
      node_id: 'n1',
      cluster_id: 'c-new',
      initialized: true,
      status: 'Leader',
      current_term: 7,
      leader_id: 'n1',
      log_index: 42,
      committed: 41,
      last_applied_log: 40,
      voters: [['n1', 'n2']],
      learners: ['n3'],
      nodes: { n1: addresses('n1'), n2: addresses('n2'), n3: addresses('n3') },
      replication: {
        n2: { matched: 42, last_contact_ms: 150, state: 'replicate' },
        n3: { matched: 30, last_contact_ms: null, state: 'snapshot' },
      },
      restored_from: { cluster_id: 'c-old', uri: 'file:///b/1.snap', index: 9 },
    });
  });

  it.each([
    ['leader', 'Leader'],
    ['follower', 'Follower'],
    ['pre-candidate', 'Candidate'],
    ['candidate', 'Candidate'],
    ['learner', 'Learner'],
  ] as const)('reports state %s as %s', (state, status) => {
    expect(internalStatus({ ...metrics, state }, { tickMs: 10 }).status).toBe(status);
  });

  it('an uninitialized node has no config, cluster id, restore origin nor replication', () => {
    const empty = { configs: [], learners: [], retired: [], nodes: {}, cluster: null };
    const status = internalStatus(
      { ...metrics, state: 'follower', currentLeader: null, membership: empty, replication: null },
      { tickMs: 10 },
    );
    expect(internalStatusSchema.parse(status)).toMatchObject({
      initialized: false,
      cluster_id: null,
      restored_from: null,
      replication: null,
      voters: [],
      nodes: {},
    });
  });
});

describe('aggregateStatus', () => {
  const joint = [
    ['n1', 'n2', 'n3'],
    ['n3', 'n4', 'n5'],
  ];
  const jointView = (id: string) => view(id, { voters: joint });

  it.each<{
    name: string;
    self: InternalStatus;
    probes: Record<string, Probe>;
    expected: Partial<ClusterStatus>;
  }>([
    {
      name: 'healthy 3 nodes',
      self: leader('n1'),
      probes: up(view('n2'), view('n3')),
      expected: { leader_id: 'n1', voters: 3, fault_tolerance: 1, healthy: true, errors: [] },
    },
    {
      name: 'one follower down',
      self: leader('n1', {}, { n3: 90 }),
      probes: { ...up(view('n2')), ...down('n3') },
      expected: {
        leader_id: 'n1',
        fault_tolerance: 0,
        healthy: false,
        errors: ['node n3 is unreachable: connect ECONNREFUSED'],
      },
    },
    {
      name: 'two of three down, seen from a follower',
      self: view('n2'),
      probes: { ...down('n1', 'timeout'), ...down('n3') },
      expected: {
        leader_id: 'n1',
        fault_tolerance: -1,
        healthy: false,
        errors: ['node n1 is unreachable: timeout', 'node n3 is unreachable: connect ECONNREFUSED'],
      },
    },
    {
      name: 'a lagging learner',
      self: leader('n1', { learners: ['n4'] }),
      probes: up(view('n2'), view('n3'), view('n4', { status: 'Learner', log_index: 40 })),
      expected: {
        voters: 3,
        fault_tolerance: 1,
        healthy: false,
        errors: ['learner n4 lags the leader by 60 entries (threshold 10)'],
      },
    },
    {
      name: 'a caught-up learner is no error',
      self: leader('n1', { learners: ['n4'] }),
      probes: up(view('n2'), view('n3'), view('n4', { status: 'Learner', log_index: 95 })),
      expected: { voters: 3, fault_tolerance: 1, healthy: true, errors: [] },
    },
    {
      name: 'a follower lagging by exactly the threshold is no error',
      self: leader('n1'),
      probes: up(view('n2', { log_index: 90 }), view('n3')),
      expected: { healthy: true, errors: [] },
    },
    {
      name: 'a follower lagging beyond the threshold',
      self: leader('n1'),
      probes: up(view('n2', { log_index: 89 }), view('n3')),
      expected: { healthy: false, errors: ['node n2 lags the leader by 11 entries (threshold 10)'] },
    },
    {
      name: 'split view: a deposed leader still believes it leads',
      self: leader('n2', { current_term: 4 }),
      probes: up(leader('n1', { current_term: 3 }), view('n3', { current_term: 4, leader_id: 'n2' })),
      expected: {
        leader_id: 'n2',
        current_term: 4,
        fault_tolerance: 1,
        healthy: false,
        errors: ['split view of the leader: n1 sees n1; n2, n3 see n2'],
      },
    },
    {
      name: 'no leader: an election is going on',
      self: view('n1', { status: 'Candidate', current_term: 4, leader_id: null }),
      probes: up(
        view('n2', { status: 'Candidate', current_term: 4, leader_id: null }),
        view('n3', { current_term: 4, leader_id: null }),
      ),
      expected: {
        leader_id: null,
        current_term: 4,
        fault_tolerance: 1,
        healthy: false,
        errors: ['no leader known in term 4'],
      },
    },
    {
      name: 'a leader named only in an older term is stale',
      self: leader('n1', { current_term: 3 }),
      probes: up(
        view('n2', { current_term: 4, leader_id: null }),
        view('n3', { current_term: 4, leader_id: null }),
      ),
      expected: {
        leader_id: null,
        healthy: false,
        errors: ['no leader known in term 4', 'split view of the leader: n1 sees n1; n2, n3 see no leader'],
      },
    },
    {
      name: 'cluster id mismatch',
      self: leader('n1'),
      probes: up(view('n2', { cluster_id: 'c2' }), view('n3', { cluster_id: null, initialized: false })),
      expected: {
        cluster_id: 'c1',
        healthy: false,
        errors: [
          "node n2 belongs to cluster c2, not to the leader's c1",
          "node n3 belongs to cluster (none), not to the leader's c1",
        ],
      },
    },
    {
      name: 'joint configuration, everyone up: no error',
      self: leader('n1', { voters: joint }),
      probes: up(jointView('n2'), jointView('n3'), jointView('n4'), jointView('n5')),
      expected: { voters: 5, fault_tolerance: 1, healthy: true, errors: [] },
    },
    {
      name: 'joint configuration: the new config is the tighter one',
      self: leader('n1', { voters: joint }),
      probes: { ...up(jointView('n2'), jointView('n3'), jointView('n4')), ...down('n5') },
      expected: { voters: 5, fault_tolerance: 0, errors: ['node n5 is unreachable: connect ECONNREFUSED'] },
    },
    {
      name: 'joint configuration: quorum of the new config lost',
      self: leader('n1', { voters: joint }),
      probes: { ...up(jointView('n2'), jointView('n3')), ...down('n4'), ...down('n5') },
      expected: { voters: 5, fault_tolerance: -1, healthy: false },
    },
    {
      name: 'a member nobody probed',
      self: leader('n1'),
      probes: up(view('n2')),
      expected: { fault_tolerance: 0, errors: ['node n3 is unreachable: not probed'] },
    },
  ])('$name', ({ self, probes, expected }) => {
    expect(aggregate(self, probes)).toMatchObject(expected);
  });

  it('reports every member: reachable ones from their answers, unreachable ones from the leader', () => {
    const status = aggregate(leader('n1', { log_index: 120, last_applied_log: 118 }, { n3: 90 }), {
      ...up(view('n2', { log_index: 125 })),
      ...down('n3'),
    });
    expect(status).toMatchObject({ cluster_id: 'c1', current_term: 3, last_applied_log: 118 });
    expect(status.nodes).toEqual({
      n1: {
        status: 'Leader',
        is_reachable: true,
        log_index: 120,
        last_applied_log: 118,
        lag: 0,
        voter: true,
        api_address: 'n1.conflux:8080',
        admin_address: 'n1.conflux:9443',
        leader_id: 'n1',
        term: 3,
      },
      // It answered after the leader appended more: not behind.
      n2: expect.objectContaining({ status: 'Follower', is_reachable: true, log_index: 125, lag: 0 }),
      n3: {
        status: 'Unknown',
        is_reachable: false,
        log_index: null,
        last_applied_log: null,
        lag: 30,
        voter: true,
        api_address: 'n3.conflux:8080',
        admin_address: 'n3.conflux:9443',
        leader_id: null,
        term: null,
      },
    });
  });

  it('without an answer from the leader, lag is unknown and self holds the membership', () => {
    const status = aggregate(view('n2', { last_applied_log: 97 }), {
      ...down('n1'),
      ...up(view('n3', { last_applied_log: 99 })),
    });
    expect(status).toMatchObject({ leader_id: 'n1', last_applied_log: 99, fault_tolerance: 0 });
    expect(Object.values(status.nodes).map((n) => n.lag)).toEqual([null, null, null]);
  });

  it("takes the members from the leader's newer membership", () => {
    const status = aggregate(view('n2'), up(leader('n1', { learners: ['n4'] }), view('n3'), view('n4')));
    expect(Object.keys(status.nodes)).toEqual(['n1', 'n2', 'n3', 'n4']);
    expect(status.nodes.n4).toMatchObject({ voter: false, admin_address: 'n4.conflux:9443' });
  });
});

describe('collectClusterStatus', () => {
  const members = { voters: [['n1', 'n2', 'n3', 'n4', 'n5']], learners: ['n6', 'n7'] };
  const { n7: _unknown, ...nodes } = view('n1', members).nodes; // n7's addresses are not known
  const seed = leader('n1', { ...members, nodes });

  it('probes in parallel, bounds hanging members by the timeout and survives failures', async () => {
    const signals: Record<string, AbortSignal> = {};
    const calls: string[] = [];
    const fetch: StatusFetch = (id, address, signal) => {
      calls.push(`${id}@${address}`);
      signals[id] = signal;
      if (id === 'n4') return Promise.reject(new Error('connect ECONNREFUSED'));
      if (id === 'n2') return Promise.resolve(view('n2', members));
      return new Promise(() => {}); // n3, n5 and n6 never answer
    };
    const started = performance.now();
    const status = await collectClusterStatus(seed, fetch, { timeoutMs: 50, lagThreshold: 10 });
    const elapsed = performance.now() - started;

    expect(elapsed).toBeGreaterThanOrEqual(45);
    expect(elapsed).toBeLessThan(130); // three hanging probes one after the other would take 150+
    expect(calls.sort()).toEqual([
      'n2@n2.conflux:9443',
      'n3@n3.conflux:9443',
      'n4@n4.conflux:9443',
      'n5@n5.conflux:9443',
      'n6@n6.conflux:9443',
    ]);
    for (const id of ['n3', 'n5', 'n6']) expect(signals[id]?.aborted).toBe(true);
    expect(signals.n2?.aborted).toBe(false);
    expect(clusterStatusSchema.parse(status)).toMatchObject({ fault_tolerance: -1, healthy: false });
    expect(status.errors).toEqual([
      'node n3 is unreachable: no answer within 50 ms',
      'node n4 is unreachable: connect ECONNREFUSED',
      'node n5 is unreachable: no answer within 50 ms',
      'node n6 is unreachable: no answer within 50 ms',
      'node n7 is unreachable: no admin address known for it',
    ]);
  });

  it("probes the members only the leader knows about, at the leader's addresses", async () => {
    const newer = { learners: ['n4'] };
    const calls: string[] = [];
    const fetch: StatusFetch = async (id, address) => {
      calls.push(`${id}@${address}`);
      if (id === 'n1')
        return leader('n1', { ...newer, nodes: { ...view('n1', newer).nodes, n4: addresses('n4b') } });
      return view(id, { ...newer, status: id === 'n4' ? 'Learner' : 'Follower' });
    };
    const status = await collectClusterStatus(view('n2'), fetch, { timeoutMs: 1000, lagThreshold: 10 });
    expect(calls).toEqual(['n1@n1.conflux:9443', 'n3@n3.conflux:9443', 'n4@n4b.conflux:9443']);
    expect(status).toMatchObject({ healthy: true, errors: [] });
    expect(status.nodes.n4).toMatchObject({ status: 'Learner', is_reachable: true });
  });

  it('turns throwing fetches, malformed answers and impostors into failed probes', async () => {
    const fetch: StatusFetch = async (id) => {
      if (id === 'n2') return { state: 'follower', currentLeader: 'n1' } as unknown as InternalStatus;
      return view('n9');
    };
    const throwing: StatusFetch = () => {
      throw new Error('bad url');
    };
    const status = await collectClusterStatus(leader('n1'), fetch, { timeoutMs: 1000, lagThreshold: 10 });
    expect(status.errors).toHaveLength(2);
    expect(status.errors[0]).toMatch(/^node n2 is unreachable: invalid status answer \(node_id: /);
    expect(status.errors[1]).toBe('node n3 is unreachable: node n9 answered instead');
    const thrown = await collectClusterStatus(leader('n1'), throwing, { timeoutMs: 1000, lagThreshold: 10 });
    expect(thrown.errors).toEqual(['node n2 is unreachable: bad url', 'node n3 is unreachable: bad url']);
  });
});

describe('fault tolerance (property)', () => {
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];

  /**
   * By definition: with a quorum of every config reachable, one less than the fewest reachable
   * voters whose failure breaks one; without, minus the most voters some config still misses.
   */
  function bruteForce(configs: string[][], reachable: Set<string>): number {
    const quorate = (alive: string[]) =>
      configs.every((c) => 2 * c.filter((id) => alive.includes(id)).length > c.length);
    const alive = [...new Set(configs.flat())].filter((id) => reachable.has(id));
    if (!quorate(alive)) {
      const missing = configs.map((c) => {
        let k = 0;
        while (2 * (c.filter((id) => reachable.has(id)).length + k) <= c.length) k++;
        return k;
      });
      return -Math.max(...missing);
    }
    let fewest = alive.length;
    for (let mask = 1; mask < 1 << alive.length; mask++) {
      const failed = alive.filter((_, i) => mask & (1 << i));
      if (!quorate(alive.filter((id) => !failed.includes(id)))) fewest = Math.min(fewest, failed.length);
    }
    return fewest - 1;
  }

  it('equals the brute-force definition, and the output follows the contract', () => {
    const scenario = fc.record({
      configs: fc.array(fc.subarray(ids, { minLength: 1 }), { minLength: 1, maxLength: 2 }),
      reachable: fc.subarray(ids),
      logs: fc.array(fc.nat(1000), { minLength: ids.length, maxLength: ids.length }),
      lagThreshold: fc.nat(500),
    });
    fc.assert(
      fc.property(scenario, ({ configs, reachable, logs, lagThreshold }) => {
        const voters = configs.map((c) => [...c].sort());
        const learners = ids.filter((id) => !voters.flat().includes(id));
        const leaderId = voters[0]?.[0] as string;
        const statusOf = (id: string) => {
          const log = logs[ids.indexOf(id)] as number;
          const own = { voters, learners, leader_id: leaderId, log_index: log, last_applied_log: log };
          if (id !== leaderId)
            return view(id, { ...own, status: learners.includes(id) ? 'Learner' : 'Follower' });
          const matched = Object.fromEntries(ids.map((m, i) => [m, logs[i] as number]));
          return leader(id, own, matched);
        };
        const reached = new Set(['n1', ...reachable]);
        const probes = Object.fromEntries(
          ids
            .filter((id) => id !== 'n1')
            .map((id): [string, Probe] => [
              id,
              reached.has(id) ? { ok: true, status: statusOf(id) } : { ok: false, error: 'down' },
            ]),
        );
        const status = aggregateStatus(statusOf('n1'), probes, { lagThreshold });
        expect(clusterStatusSchema.parse(status)).toEqual(status);
        expect(status.fault_tolerance).toBe(bruteForce(voters, reached));
        expect(status.voters).toBe(new Set(voters.flat()).size);
        for (const id of ids) expect(status.nodes[id]?.is_reachable).toBe(reached.has(id));
        if (status.healthy) expect(status.fault_tolerance).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 300 },
    );
  });
});

describe('the NOSPACE alarm', () => {
  it('lists the members whose quota alarm is on, without calling the cluster unhealthy', () => {
    const full = { db_bytes: 600, quota_bytes: 512, alarm: true };
    const s = aggregateStatus(
      leader('n1', { quota: full }),
      up(view('n2', { quota: full }), view('n3', { quota: { ...full, alarm: false, quota_bytes: 1024 } })),
      { lagThreshold: 1000 },
    );
    expect(s.alarms).toEqual([
      { node_id: 'n1', alarm: 'NOSPACE', db_bytes: 600, quota_bytes: 512 },
      { node_id: 'n2', alarm: 'NOSPACE', db_bytes: 600, quota_bytes: 512 },
    ]);
    expect(s.healthy).toBe(true);
    expect(clusterStatusSchema.parse(s)).toEqual(s);
    // Members of an older version do not report a quota.
    expect(aggregateStatus(leader('n1'), up(view('n2'), view('n3')), { lagThreshold: 1000 }).alarms).toEqual(
      [],
    );
  });
});
