// The logic behind `GET /_internal/status` (one node's own view) and `GET /_cluster/status` (the
// seed's aggregation over every member, docs/ARCHITECTURE.md §7 and §9). Everything here is pure except
// collectClusterStatus, which adds the probing; the HTTP layer supplies the `fetch` it uses.

import { type ClusterStatus, type InternalStatus, internalStatusSchema } from '../api/admin-contract.js';
import type { NodeId, RaftMetrics, RecoveredFrom } from '../raft/types.js';

/** What asking one member for its `/_internal/status` gave. */
export type Probe = { ok: true; status: InternalStatus } | { ok: false; error: string };

export type StatusFetch = (id: NodeId, adminAddress: string, signal: AbortSignal) => Promise<InternalStatus>;

type MemberStatus = ClusterStatus['nodes'][NodeId];

const ROLES: Record<RaftMetrics['state'], InternalStatus['status']> = {
  leader: 'Leader',
  follower: 'Follower',
  'pre-candidate': 'Candidate',
  candidate: 'Candidate',
  learner: 'Learner',
};

// -- One node's view -----------------------------------------------------------------------------

export function internalStatus(m: RaftMetrics, opts: { tickMs: number }): InternalStatus {
  const { configs, learners, nodes, cluster } = m.membership;
  const restored = cluster?.restoredFrom ?? null;
  return {
    node_id: m.id,
    cluster_id: cluster?.id ?? null,
    initialized: configs.length > 0,
    status: ROLES[m.state],
    current_term: m.currentTerm,
    leader_id: m.currentLeader,
    log_index: m.lastLogIndex,
    committed: m.committed,
    last_applied_log: m.lastApplied,
    voters: configs.map((c) => [...c]),
    learners: [...learners],
    nodes: mapValues(nodes, (n) => ({ api_address: n.api, raft_address: n.raft, admin_address: n.admin })),
    replication:
      m.replication &&
      mapValues(m.replication, (p) => ({
        matched: p.matched,
        last_contact_ms: p.lastContactTicksAgo === null ? null : p.lastContactTicksAgo * opts.tickMs,
        state: p.state,
      })),
    restored_from: restored && { cluster_id: restored.clusterId, uri: restored.uri, index: restored.index },
    ...(m.lastLogTerm === undefined ? {} : { last_log_term: m.lastLogTerm }),
    ...(cluster?.recoveredFrom ? { recovered_from: recoveredFromDoc(cluster.recoveredFrom) } : {}),
  };
}

export function recoveredFromDoc(r: RecoveredFrom): NonNullable<InternalStatus['recovered_from']> {
  return { cluster_id: r.clusterId, node_id: r.nodeId, index: r.index, at: r.at };
}

function mapValues<A, B>(record: Record<string, A>, f: (a: A) => B): Record<string, B> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, f(v)]));
}

// -- The cluster's view --------------------------------------------------------------------------

/** What the aggregation knows once the probes are in. */
interface Survey {
  self: InternalStatus;
  probes: Record<NodeId, Probe>;
  /** The own view of every member that answered, self included. */
  views: Map<NodeId, InternalStatus>;
  /** The newest term any member that answered has seen. */
  term: number;
  leaderId: NodeId | null;
  /** The leader's own view, when it answered. */
  leader: InternalStatus | undefined;
  /** The freshest membership view: the leader's, else self's. */
  reference: InternalStatus;
}

export function aggregateStatus(
  self: InternalStatus,
  probes: Record<NodeId, Probe>,
  opts: { lagThreshold: number },
): ClusterStatus {
  const s = survey(self, probes);
  const members = memberIds(s.reference).map((id) => [id, memberStatus(s, id)] as const);
  const faultTolerance = faultToleranceOf(s.reference.voters, (id) => s.views.has(id));
  const errors = [
    ...leaderErrors(s),
    ...members.flatMap(([id, status]) => memberErrors(s, id, status, opts.lagThreshold)),
  ];
  const applied = [...s.views.values()].map((v) => v.last_applied_log);
  return {
    cluster_id: s.reference.cluster_id,
    leader_id: s.leaderId,
    current_term: s.term,
    last_applied_log: s.leader?.last_applied_log ?? Math.max(...applied),
    nodes: Object.fromEntries(members),
    voters: new Set(s.reference.voters.flat()).size,
    fault_tolerance: faultTolerance,
    healthy: errors.length === 0 && faultTolerance >= 0 && s.leaderId !== null,
    errors,
    restored_from: s.reference.restored_from,
    alarms: [...s.views.values()]
      .filter((v) => v.quota?.alarm)
      .map((v) => ({
        node_id: v.node_id,
        alarm: 'NOSPACE' as const,
        db_bytes: v.quota?.db_bytes ?? 0,
        quota_bytes: v.quota?.quota_bytes ?? 0,
      }))
      .sort((a, b) => a.node_id.localeCompare(b.node_id)),
  };
}

function survey(self: InternalStatus, probes: Record<NodeId, Probe>): Survey {
  const views = new Map([[self.node_id, self]]);
  for (const [id, p] of Object.entries(probes)) if (p.ok && id !== self.node_id) views.set(id, p.status);
  const term = Math.max(...[...views.values()].map((v) => v.current_term));
  const leaderId = agreedLeader([...views.values()], term);
  const leader = leaderId === null ? undefined : views.get(leaderId);
  return { self, probes, views, term, leaderId, leader, reference: leader ?? self };
}

/**
 * The leader most members name in the newest term any of them has seen. A leader named only in an
 * older term is stale: a member in a newer term means an election deposed it. Ties (two leaders in
 * one term cannot both be current) go to the lowest id, to stay deterministic.
 */
function agreedLeader(views: InternalStatus[], term: number): NodeId | null {
  const counts = new Map<NodeId, number>();
  for (const v of views) {
    if (v.current_term === term && v.leader_id !== null)
      counts.set(v.leader_id, (counts.get(v.leader_id) ?? 0) + 1);
  }
  const ranked = [...counts].sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
  return ranked[0]?.[0] ?? null;
}

function memberIds(view: InternalStatus): NodeId[] {
  return [...new Set([...view.voters.flat(), ...view.learners])].sort();
}

/** A quorum is a strict majority of one voter set. */
const quorum = (size: number): number => Math.floor(size / 2) + 1;

/**
 * Reachable voters beyond a quorum, in the tightest config (a joint change needs a quorum of both);
 * negative once a quorum is lost. Without any voter set no quorum can form at all: −1.
 */
function faultToleranceOf(configs: NodeId[][], reachable: (id: NodeId) => boolean): number {
  if (configs.length === 0) return -1;
  return Math.min(...configs.map((c) => c.filter(reachable).length - quorum(c.length)));
}

function memberStatus(s: Survey, id: NodeId): MemberStatus {
  const view = s.views.get(id);
  const addresses = s.reference.nodes[id] ?? s.self.nodes[id];
  return {
    status: view?.status ?? 'Unknown',
    is_reachable: view !== undefined,
    log_index: view?.log_index ?? null,
    last_applied_log: view?.last_applied_log ?? null,
    lag: lagOf(s, id),
    voter: s.reference.voters.some((c) => c.includes(id)),
    api_address: addresses?.api_address ?? null,
    admin_address: addresses?.admin_address ?? null,
    leader_id: view?.leader_id ?? null,
    term: view?.current_term ?? null,
  };
}

/**
 * Entries behind the leader's log, from the member's own answer or else from what the leader last
 * matched. The answers are not simultaneous, so a member answering after the leader may appear
 * ahead of it: that reads as 0.
 */
function lagOf(s: Survey, id: NodeId): number | null {
  if (!s.leader) return null;
  const index = s.views.get(id)?.log_index ?? s.leader.replication?.[id]?.matched;
  return index === undefined ? null : Math.max(0, s.leader.log_index - index);
}

/** No leader, and members naming different leaders (or none): each group says whom it sees. */
function leaderErrors(s: Survey): string[] {
  const errors = s.leaderId === null ? [`no leader known in term ${s.term}`] : [];
  const seers = new Map<string, NodeId[]>();
  for (const [id, v] of s.views) {
    const leader = v.leader_id ?? 'no leader';
    seers.set(leader, [...(seers.get(leader) ?? []), id]);
  }
  if (seers.size > 1) {
    const groups = [...seers].map(
      ([leader, ids]) => `${ids.sort().join(', ')} ${ids.length === 1 ? 'sees' : 'see'} ${leader}`,
    );
    errors.push(`split view of the leader: ${groups.sort().join('; ')}`);
  }
  return errors;
}

function memberErrors(s: Survey, id: NodeId, status: MemberStatus, lagThreshold: number): string[] {
  const view = s.views.get(id);
  if (!view) {
    const probe = s.probes[id];
    return [`node ${id} is unreachable: ${probe && !probe.ok ? probe.error : 'not probed'}`];
  }
  const errors: string[] = [];
  if (status.lag !== null && status.lag > lagThreshold) {
    const who = status.voter ? 'node' : 'learner';
    errors.push(`${who} ${id} lags the leader by ${status.lag} entries (threshold ${lagThreshold})`);
  }
  if (view.cluster_id !== s.reference.cluster_id) {
    const whose = s.leader ? 'the leader' : `node ${s.self.node_id}`;
    errors.push(
      `node ${id} belongs to cluster ${view.cluster_id ?? '(none)'}, not to ${whose}'s ${s.reference.cluster_id ?? '(none)'}`,
    );
  }
  return errors;
}

// -- Probing -------------------------------------------------------------------------------------

/**
 * Ask every other member for its status, all at once, each bounded by `timeoutMs`, then aggregate.
 * Starts from self's membership; when the leader answered and knows members self does not (self
 * lags a membership change), those are probed in one more round. A member that is down, slow or
 * answers nonsense becomes a failed probe: this never throws because of a member.
 */
export async function collectClusterStatus(
  self: InternalStatus,
  fetch: StatusFetch,
  opts: { timeoutMs: number; lagThreshold: number },
): Promise<ClusterStatus> {
  const known = memberIds(self);
  const probes = await probeAll(
    known.filter((id) => id !== self.node_id),
    self.nodes,
    fetch,
    opts.timeoutMs,
  );
  const { leader } = survey(self, probes);
  if (leader && leader.node_id !== self.node_id) {
    const extra = memberIds(leader).filter((id) => id !== self.node_id && !known.includes(id));
    Object.assign(probes, await probeAll(extra, leader.nodes, fetch, opts.timeoutMs));
  }
  return aggregateStatus(self, probes, opts);
}

async function probeAll(
  ids: NodeId[],
  nodes: InternalStatus['nodes'],
  fetch: StatusFetch,
  timeoutMs: number,
): Promise<Record<NodeId, Probe>> {
  const probes = await Promise.all(
    ids.map(async (id) => [id, await probe(id, nodes[id]?.admin_address, fetch, timeoutMs)] as const),
  );
  return Object.fromEntries(probes);
}

async function probe(
  id: NodeId,
  adminAddress: string | undefined,
  fetch: StatusFetch,
  timeoutMs: number,
): Promise<Probe> {
  if (adminAddress === undefined) return { ok: false, error: 'no admin address known for it' };
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  // Settles even when `fetch` ignores the signal; rejected before aborting so it wins the race.
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`no answer within ${timeoutMs} ms`);
      reject(err);
      abort.abort(err);
    }, timeoutMs);
  });
  try {
    return checkAnswer(id, await Promise.race([fetch(id, adminAddress, abort.signal), deadline]));
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

/** A member running another version, or an address now used by another node, must not pass as the member. */
function checkAnswer(id: NodeId, answer: unknown): Probe {
  const parsed = internalStatusSchema.safeParse(answer);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      ok: false,
      error: `invalid status answer (${issue?.path.join('.') || 'body'}: ${issue?.message})`,
    };
  }
  if (parsed.data.node_id !== id) return { ok: false, error: `node ${parsed.data.node_id} answered instead` };
  return { ok: true, status: parsed.data };
}
