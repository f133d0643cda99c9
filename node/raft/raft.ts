// The Raft core: a deterministic state machine in the style of etcd-io/raft.
//
// The host drives it with `tick()` (time), `step(message)` (peers) and the proposal methods
// (clients), and drains its work with `ready()` / `advance(ready)`. The core never performs I/O,
// never reads a clock and draws randomness only from the injected Rng, so a seed replays a run.
//
// Membership takes effect when its entry COMMITS (etcd's rule, made safe by allowing one change at
// a time and by joint consensus for voter changes). Every node therefore agrees on the config at
// every committed index, and a restarted node recovers it from its snapshot plus its committed log.

import { ProtocolViolation, RaftError } from './errors.js';
import { RaftLog } from './log.js';
import * as M from './membership.js';
import { jointCommitIndex, jointVote } from './quorum.js';
import { ReadQueue } from './read-queue.js';
import { Replicator } from './replicator.js';
import type { Rng } from './rng.js';
import { SnapshotReceiver } from './snapshot-receiver.js';
import type {
  ClusterIdentity,
  Entry,
  HardState,
  Membership,
  Message,
  NodeId,
  NodeInfo,
  RaftMetrics,
  Ready,
  Role,
  SnapshotChunk,
  SnapshotMeta,
} from './types.js';

export interface RaftConfig {
  id: NodeId;
  rng: Rng;
  /** A follower campaigns after a random timeout in [electionTicks, 2·electionTicks). */
  electionTicks: number;
  heartbeatTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Unacknowledged appends per peer in replicate state. */
  maxInflight: number;
  maxEntriesPerAppend: number;
  maxBytesPerAppend: number;
  snapshotChunkBytes: number;
  maxApplyBatch: number;
  /**
   * Deliberately broken behaviours, used only by the simulator's self-test to prove that it
   * catches a faulty engine. Never set outside tests.
   */
  mutations?: ReadonlySet<Mutation>;
}

export type Mutation =
  | 'commit-old-term'
  | 'read-without-quorum'
  | 'ack-before-persist'
  | 'vote-without-log-check'
  /** A timed-out transfer leaves a joint configuration in place (the whole-stack simulator's). */
  | 'transfer-keeps-joint';

export const DEFAULT_CONFIG: Omit<RaftConfig, 'id' | 'rng'> = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  maxInflight: 256,
  maxEntriesPerAppend: 512,
  maxBytesPerAppend: 1 << 20,
  snapshotChunkBytes: 1 << 20,
  maxApplyBatch: 1024,
};

/** What a node recovers from its durable storage when it starts. */
export interface RaftState {
  hardState: HardState;
  snapshot: SnapshotMeta | null;
  entries: Entry[];
  /** The state machine's applied index, when it survives restarts; else the snapshot index. */
  applied?: number;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export const EMPTY_STATE: RaftState = {
  hardState: { term: 0, vote: null, commit: 0 },
  snapshot: null,
  entries: [],
};

export class RaftCore {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;
  readonly log: RaftLog;

  term: number;
  vote: NodeId | null;
  role: Role = 'follower';
  leader: NodeId | null = null;
  /** The committed membership (see the file comment). */
  membership: Membership;

  /** Ticks since start: the unit of every "last contact" the metrics report. */
  private now = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTicks = 0;

  private votes = new Map<NodeId, boolean>();
  private readonly replication: Replicator;
  /** Index of the newest membership entry in the log; a new change waits until it commits. */
  private pendingConfIndex = 0;
  private transferee: NodeId | null = null;
  private transferElapsed = 0;
  private readonly reads: ReadQueue;
  private readonly snapshots = new SnapshotReceiver();

  // Outputs accumulated for the next Ready.
  private msgs: Message[] = [];
  private msgsAfterPersist: Message[] = [];
  private chunks: SnapshotChunk[] = [];
  private installed: SnapshotMeta | null = null;
  private needsBroadcast = false;
  private needsReadRound = false;
  private prevHardState: HardState;
  private prevSoft: { role: Role; leader: NodeId | null };
  private outstanding: Ready | null = null;

  constructor(config: RaftConfig, state: RaftState = EMPTY_STATE) {
    this.cfg = config;
    this.id = config.id;
    const { hardState, snapshot, entries } = state;
    this.log = new RaftLog(snapshot, [...entries], hardState.commit, state.applied ?? 0);
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.membership = snapshot?.membership ?? M.EMPTY_MEMBERSHIP;
    for (const e of this.log.entries) {
      if (e.type === 'membership' && e.index <= this.log.committed) this.membership = e.membership;
    }
    this.prevHardState = { ...hardState, commit: this.log.committed };
    this.prevSoft = { role: this.role, leader: this.leader };
    this.reads = new ReadQueue(this.id);
    this.replication = new Replicator(this.id, this.log, config, (m) => this.msgs.push(m));
    this.resetElectionTimer();
  }

  // ---------------------------------------------------------------------------------------------
  // Time

  tick(): void {
    this.now++;
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTicks && this.promotable()) {
      this.electionElapsed = 0;
      this.campaign(false);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.transferee !== null && ++this.transferElapsed >= this.cfg.electionTicks) {
      // The target did not take over within an election timeout: resume normal service, including
      // leaving a joint configuration, which waits while a transfer is in flight.
      this.transferee = null;
      if (!this.mutated('transfer-keeps-joint')) this.needsBroadcast = true;
    }
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      // CheckQuorum: a leader that has not heard from a quorum for a whole election timeout may
      // be on the wrong side of a partition; stepping down stops it from serving stale reads.
      if (this.cfg.checkQuorum && !this.replication.quorumActive(this.membership.configs)) {
        this.becomeFollower(this.term, null);
        return;
      }
      this.replication.resetActivity();
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private mutated(m: Mutation): boolean {
    return this.cfg.mutations?.has(m) === true;
  }

  private promotable(): boolean {
    return M.isVoter(this.membership, this.id);
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.randomizedElectionTicks = this.cfg.electionTicks + this.cfg.rng.int(this.cfg.electionTicks);
  }

  // ---------------------------------------------------------------------------------------------
  // Role changes

  private becomeFollower(term: number, leader: NodeId | null): void {
    if (this.role === 'leader') this.reads.dropAll();
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.role = 'follower';
    this.leader = leader;
    this.transferee = null;
    this.replication.stop();
    this.resetElectionTimer();
  }

  /** Start an election; PreVote first unless a leader asked us to take over (TimeoutNow). */
  campaign(transfer: boolean): void {
    this.startElection(transfer, transfer);
  }

  private startElection(skipPreVote: boolean, transfer: boolean): void {
    if (!this.promotable()) return;
    if (this.cfg.preVote && !skipPreVote) {
      this.role = 'pre-candidate';
      this.leader = null;
      this.startVote(true, false);
    } else {
      this.becomeFollower(this.term + 1, null);
      this.role = 'candidate';
      this.vote = this.id;
      this.startVote(false, transfer);
    }
  }

  private startVote(pre: boolean, transfer: boolean): void {
    this.votes = new Map([[this.id, true]]);
    this.resetElectionTimer();
    if (this.tallyVotes()) return;
    const term = pre ? this.term + 1 : this.term;
    for (const to of M.voters(this.membership)) {
      if (to === this.id) continue;
      const msg: Message = {
        type: 'vote',
        from: this.id,
        to,
        term,
        pre,
        lastLogIndex: this.log.lastIndex(),
        lastLogTerm: this.log.lastTerm(),
        transfer,
      };
      // A real vote request carries our own vote for ourselves: it must be durable first.
      (pre ? this.msgs : this.msgsAfterPersist).push(msg);
    }
  }

  /** Count votes; act on the outcome. Returns true when the election is decided. */
  private tallyVotes(): boolean {
    const result = jointVote(this.membership.configs, this.votes);
    if (result === 'pending') return false;
    if (result === 'lost') this.becomeFollower(this.term, null);
    else if (this.role === 'pre-candidate') this.startElection(true, false);
    else this.becomeLeader();
    return true;
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.leader = this.id;
    this.heartbeatElapsed = 0;
    this.electionElapsed = 0;
    this.transferee = null;
    this.replication.start(this.term, M.members(this.membership));
    // Entries of earlier terms are committed only indirectly, by committing one of our own (§5.4.2).
    // Any membership entry we inherited uncommitted counts as the change in flight.
    this.pendingConfIndex = this.log.lastIndex();
    this.log.append({ index: this.log.lastIndex() + 1, term: this.term, type: 'blank' });
    this.reads.startTerm();
    this.needsBroadcast = true;
    this.maybeCommit();
  }

  // ---------------------------------------------------------------------------------------------
  // Messages

  /**
   * Throws ProtocolViolation, with nothing changed, for a message no correct peer can send in
   * this node's state (see `violation`); every other message is acted on or ignored.
   */
  step(m: Message): void {
    if (m.to !== this.id || this.membership.retired.includes(m.from)) return;
    const violation = this.violation(m);
    if (violation) throw violation;
    if (m.term > this.term) {
      if (m.type === 'vote') {
        // Leader lease (CheckQuorum): while we hear from a live leader, ignore disruptive
        // candidates, e.g. a partitioned node rejoining. A transfer was asked for by the leader.
        const inLease =
          this.cfg.checkQuorum && this.leader !== null && this.electionElapsed < this.cfg.electionTicks;
        if (inLease && !m.transfer) return;
        if (!m.pre) this.becomeFollower(m.term, null);
      } else if (m.type === 'vote-response' && m.pre && m.granted) {
        // A PreVote grant carries the term we would campaign at; it is not a newer term.
      } else {
        const fromLeader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot';
        this.becomeFollower(m.term, fromLeader ? m.from : null);
      }
    } else if (m.term < this.term) {
      this.stepStale(m);
      return;
    }
    this.stepCurrent(m);
  }

  /**
   * Input that contradicts what this node knows for certain. Election Safety allows one leader
   * per term, so a leader's message in our term from anyone but the leader we follow (or from
   * anyone at all while we lead) is forged or broken; acting on it would make us follow a second
   * leader, start an election on a non-leader's TimeoutNow, or, as a leader, stop on the
   * invariant check in stepCurrent. A leader's log never shrinks within its term, so no peer
   * can acknowledge an index beyond its last one; believing it would make the leader probe
   * entries it does not have.
   */
  private violation(m: Message): ProtocolViolation | null {
    if (m.from === this.id)
      return new ProtocolViolation('own-id', `a message claims to come from ${this.id}`);
    if (m.term !== this.term) return null;
    const fromLeader =
      m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot' || m.type === 'timeout-now';
    if (fromLeader && this.leader !== null && this.leader !== m.from) {
      return new ProtocolViolation(
        'conflicting-leader',
        `safety: two leaders in term ${this.term} (${this.leader} and ${m.from}); message refused`,
      );
    }
    if (
      m.type === 'append-response' &&
      !m.reject &&
      this.role === 'leader' &&
      m.index > this.log.lastIndex()
    ) {
      return new ProtocolViolation(
        'ack-beyond-log',
        `${m.from} acknowledges index ${m.index}, beyond this leader's last index ${this.log.lastIndex()}`,
      );
    }
    return null;
  }

  /** A message from an older term. Answer only where the answer makes a stale peer catch up. */
  private stepStale(m: Message): void {
    if (m.type === 'append' || m.type === 'heartbeat') {
      // A deposed leader cut off by CheckQuorum/PreVote learns our term from this and steps down.
      this.reply(m.from, { type: 'append-response', index: 0, reject: true, hintIndex: 0, hintTerm: 0 });
    } else if (m.type === 'vote' && m.pre) {
      this.reply(m.from, { type: 'vote-response', pre: true, granted: false });
    }
  }

  private stepCurrent(m: Message): void {
    switch (m.type) {
      case 'vote':
        this.handleVote(m);
        return;
      case 'vote-response':
        this.handleVoteResponse(m);
        return;
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        // Unreachable from input (step refuses it as a violation): reaching it means our own
        // state is wrong, and the node must stop.
        if (this.role === 'leader') {
          throw new Error(`safety: two leaders in term ${this.term} (${this.id} and ${m.from})`);
        }
        if (this.role !== 'follower') this.becomeFollower(this.term, m.from);
        this.leader = m.from;
        this.electionElapsed = 0;
        if (m.type === 'append') this.handleAppend(m);
        else if (m.type === 'heartbeat') this.handleHeartbeat(m);
        else this.handleSnapshot(m);
        return;
      case 'timeout-now':
        // Only a follower takes over (as etcd): a (pre-)candidate already campaigns, and must not
        // skip PreVote on the word of a leader it no longer follows.
        if (this.role === 'follower') this.campaign(true);
        return;
      default:
        if (this.role === 'leader') this.stepLeader(m);
    }
  }

  private handleVote(m: Extract<Message, { type: 'vote' }>): void {
    const canVote =
      this.vote === m.from || (this.vote === null && this.leader === null) || (m.pre && m.term > this.term);
    const upToDate =
      this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm) || this.mutated('vote-without-log-check');
    const granted = canVote && upToDate;
    if (granted && !m.pre) {
      this.vote = m.from;
      this.electionElapsed = 0;
    }
    // A granted PreVote answers in the candidate's future term; everything else in ours.
    const term = granted && m.pre ? m.term : this.term;
    this.send({ type: 'vote-response', from: this.id, to: m.from, term, pre: m.pre, granted });
  }

  private handleVoteResponse(m: Extract<Message, { type: 'vote-response' }>): void {
    const expected =
      (this.role === 'pre-candidate' && m.pre && (m.granted ? m.term === this.term + 1 : true)) ||
      (this.role === 'candidate' && !m.pre);
    if (!expected || !M.isVoter(this.membership, m.from)) return;
    this.votes.set(m.from, m.granted);
    this.tallyVotes();
  }

  private handleAppend(m: Extract<Message, { type: 'append' }>): void {
    if (m.prevIndex < this.log.committed) {
      this.ackAppend(m.from, this.log.committed);
      return;
    }
    const lastNew = this.log.tryAppend(m.prevIndex, m.prevTerm, m.entries);
    if (lastNew !== null) {
      this.commitTo(Math.min(m.commit, lastNew));
      this.ackAppend(m.from, lastNew);
      return;
    }
    const hint = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    this.reply(m.from, {
      type: 'append-response',
      index: m.prevIndex,
      reject: true,
      hintIndex: hint.index,
      hintTerm: hint.term,
    });
  }

  private handleHeartbeat(m: Extract<Message, { type: 'heartbeat' }>): void {
    const lastIndex = this.log.lastIndex();
    this.commitTo(Math.min(m.commit, lastIndex));
    this.reply(m.from, { type: 'heartbeat-response', readSeq: m.readSeq, lastIndex });
  }

  private handleSnapshot(m: Extract<Message, { type: 'snapshot' }>): void {
    const { meta } = m;
    if (meta.index <= this.log.committed) {
      // We already hold everything it holds: tell the leader where we really are.
      this.snapshots.reset();
      this.ackAppend(m.from, this.log.committed);
      return;
    }
    // One install per Ready: the host stages chunks in order and installs at the end of the batch.
    if (this.installed) return;
    const got = this.snapshots.receive(m);
    if (got.kind === 'accepted') this.chunks.push(got.chunk);
    if (got.kind === 'resend' || !got.complete) {
      const reject = got.kind === 'resend' && got.reject;
      this.reply(m.from, {
        type: 'snapshot-response',
        snapshotIndex: meta.index,
        nextOffset: got.nextOffset,
        reject,
      });
      return;
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      // Our log already holds the snapshot's last entry: keep the entries after it (they may be
      // acknowledged to the leader already) and only learn the commit index (Raft §7).
      this.commitTo(meta.index);
    } else {
      this.installSnapshot(meta);
    }
    this.ackAppend(m.from, meta.index);
  }

  /**
   * Replace our state by a snapshot (received from the leader, or restored by the host on an
   * empty node). The host installs the staged chunks atomically when it sees Ready.snapshot.
   */
  installSnapshot(meta: SnapshotMeta): void {
    if (meta.index <= this.log.committed)
      throw new RaftError(
        'SNAPSHOT_TOO_OLD',
        `snapshot ${meta.index} is not newer than commit ${this.log.committed}`,
      );
    this.log.restore(meta);
    this.membership = meta.membership;
    this.installed = meta;
  }

  // ---------------------------------------------------------------------------------------------
  // Leader

  private stepLeader(m: Message): void {
    const pr = this.replication.heardFrom(m.from, this.now);
    if (!pr) return;
    switch (m.type) {
      case 'append-response':
        if (!this.replication.onAppendResponse(pr, m)) return;
        if (!this.maybeCommit()) this.replication.sendAll(m.from);
        if (m.from === this.transferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
        return;
      case 'heartbeat-response':
        this.reads.ack(m.from, m.readSeq, this.membership.configs);
        this.replication.onHeartbeatResponse(m.from, pr, m.lastIndex);
        return;
      case 'snapshot-response':
        this.replication.onSnapshotResponse(pr, m);
        return;
      default:
        return;
    }
  }

  private broadcastHeartbeat(): void {
    this.replication.broadcastHeartbeat(this.reads.latestSeq());
  }

  private sendTimeoutNow(to: NodeId): void {
    this.msgs.push({ type: 'timeout-now', from: this.id, to, term: this.term });
  }

  /** Advance the commit index to what a (joint) quorum has durably stored, if of our term. */
  private maybeCommit(): boolean {
    const idx = jointCommitIndex(this.membership.configs, (id) =>
      id === this.id ? this.log.stable : this.replication.match(id),
    );
    // Figure 8: counting replicas only commits entries of the current term.
    const ownTerm = this.log.term(idx) === this.term || this.mutated('commit-old-term');
    if (idx <= this.log.committed || !ownTerm) return false;
    this.commitTo(idx);
    this.needsBroadcast = true;
    return true;
  }

  private commitTo(index: number): void {
    const from = this.log.committed;
    if (!this.log.commitTo(index)) return;
    for (const e of this.log.slice(from + 1, index + 1)) {
      if (e.type === 'membership') this.applyMembership(e.membership);
    }
    if (this.role === 'leader' && this.log.term(this.log.committed) === this.term) {
      if (this.reads.termCommitted(this.log.committed) && !this.reads.release(this.membership.configs)) {
        this.needsReadRound = true;
      }
    }
  }

  private applyMembership(m: Membership): void {
    this.membership = m;
    if (this.role !== 'leader') return;
    if (!M.isVoter(m, this.id)) {
      // Removed from the voters: hand over to the most up-to-date remaining voter if it is fully
      // caught up (else they elect one), tell everyone the commit, and step down. TimeoutNow goes
      // first: a successor that learns of the commit first has retired us and would drop it.
      const successor = this.replication.mostUpToDate(M.voters(m));
      if (successor && successor.match === this.log.lastIndex()) this.sendTimeoutNow(successor.id);
      this.replication.broadcastAppend();
      this.becomeFollower(this.term, null);
      return;
    }
    this.replication.track(M.members(m));
    this.needsBroadcast = true;
  }

  /** Answer `to` in our current term. */
  private reply(to: NodeId, body: DistributiveOmit<Message, 'from' | 'to' | 'term'>): void {
    this.send({ ...body, from: this.id, to, term: this.term } as Message);
  }

  private ackAppend(to: NodeId, index: number): void {
    this.reply(to, { type: 'append-response', index, reject: false, hintIndex: 0, hintTerm: 0 });
  }

  private send(m: Message): void {
    // Every answer a follower gives vouches for state it holds; it leaves only once durable.
    (this.mutated('ack-before-persist') ? this.msgs : this.msgsAfterPersist).push(m);
  }

  // ---------------------------------------------------------------------------------------------
  // Proposals (leader only)

  private requireLeader(): void {
    if (this.role !== 'leader')
      throw new RaftError('NOT_LEADER', `node ${this.id} is not the leader`, this.leader);
    if (this.transferee !== null) {
      throw new RaftError(
        'TRANSFER_IN_PROGRESS',
        `leadership is being transferred to ${this.transferee}`,
        this.leader,
      );
    }
  }

  /** Append a client command; returns its log index. Replication is batched until the next ready(). */
  propose(data: Uint8Array): number {
    this.requireLeader();
    const index = this.log.lastIndex() + 1;
    this.log.append({ index, term: this.term, type: 'normal', data });
    this.needsBroadcast = true;
    return index;
  }

  /** Propose a membership; returns its index, or null when it is already the membership. */
  proposeMembership(next: (current: Membership) => Membership): number | null {
    this.requireLeader();
    if (this.pendingConfIndex > this.log.committed || M.isJoint(this.membership)) {
      throw new RaftError('MEMBERSHIP_CHANGE_IN_PROGRESS', 'another membership change is still in flight');
    }
    const membership = next(this.membership);
    if (membership === this.membership) return null;
    return this.appendMembership(membership);
  }

  private appendMembership(membership: Membership): number {
    const index = this.log.lastIndex() + 1;
    this.log.append({ index, term: this.term, type: 'membership', membership });
    this.pendingConfIndex = index;
    this.needsBroadcast = true;
    return index;
  }

  /** Bootstrap a brand-new cluster on this node: its first entry holds the initial voters. */
  initialize(voterIds: readonly NodeId[], opts: M.InitialMembershipOptions = {}): void {
    this.requirePristine();
    if (!voterIds.includes(this.id))
      throw new RaftError('INVALID_MEMBERSHIP', `the initial voters must include ${this.id}`);
    const membership = M.initialMembership(voterIds, opts);
    this.term = 1;
    this.log.append({ index: 1, term: 1, type: 'membership', membership });
    // The bootstrap entry is committed by fiat: no other node has a configuration to dispute it.
    this.commitTo(1);
    this.campaign(false);
  }

  /**
   * Bootstrap a one-voter cluster on this node whose state is a snapshot (a restored backup): the
   * log starts after `meta.index`, so revisions continue where the backup left off. The bytes go
   * out as one staged chunk with Ready.snapshot, which the host installs atomically.
   */
  bootstrapFromSnapshot(meta: SnapshotMeta, data: Uint8Array): void {
    this.requirePristine();
    if (!M.sameVoters(meta.membership, [this.id]) || meta.membership.learners.length > 0)
      throw new RaftError(
        'INVALID_MEMBERSHIP',
        `a restored cluster starts with ${this.id} as its only voter`,
      );
    this.chunks.push({ meta, offset: 0, data });
    this.installSnapshot(meta);
    this.term = Math.max(this.term, meta.term);
    this.campaign(false);
  }

  /**
   * Quorum-loss recovery, etcd's --force-new-cluster: make this node the only voter of a NEW
   * cluster (`cluster`, whose id differs from the old one) that keeps every entry of this node's
   * log. Returns the index of the membership entry that does it.
   *
   * The entry is appended in a new term after the whole log and committed by fiat, so every entry
   * this node holds becomes committed with it — including entries the old cluster never committed
   * (they may have been lost on the members that are gone; here they win). This breaks Raft's
   * guarantees on purpose and is safe only because the old cluster lost its quorum for good and
   * never runs again: every other member of the old cluster is retired (its id is refused
   * forever), and the new cluster id makes the transport refuse the old cluster's peers. The
   * host asks for it explicitly (POST /_cluster/force-new-cluster); nothing calls it on its own.
   */
  forceNewCluster(cluster: ClusterIdentity, self: NodeInfo): number {
    if (this.log.lastIndex() === 0 && !M.isInitialized(this.membership))
      throw new RaftError('NOT_INITIALIZED', `node ${this.id} holds no cluster to recover`);
    if (cluster.id === this.membership.cluster?.id)
      throw new RaftError('INVALID_MEMBERSHIP', 'a recovered cluster needs a new cluster id');
    // The newest membership this node knows, committed or not: every member in it is left behind.
    const latest = this.membershipAt(this.log.lastIndex());
    const gone = M.members(latest).filter((id) => id !== this.id);
    const membership: Membership = {
      configs: [[this.id]],
      learners: [],
      retired: [...new Set([...latest.retired, ...gone])].filter((id) => id !== this.id).sort(),
      nodes: { [this.id]: self },
      cluster,
    };
    // A term no member of the old cluster ever reached through this node: our new entries can
    // never be mistaken for theirs, and whatever we voted in the old terms no longer matters.
    this.becomeFollower(this.term + 1, null);
    this.reads.dropAll();
    this.snapshots.reset();
    const index = this.log.lastIndex() + 1;
    this.log.append({ index, term: this.term, type: 'membership', membership });
    this.pendingConfIndex = index;
    // Committed by fiat, like the bootstrap entry: this node is the only voter there is.
    this.commitTo(index);
    this.campaign(false);
    return index;
  }

  private requirePristine(): void {
    if (this.log.lastIndex() > 0 || this.term > 0 || M.isInitialized(this.membership)) {
      throw new RaftError('ALREADY_INITIALIZED', `node ${this.id} already has state`);
    }
  }

  transferLeader(target: NodeId): void {
    this.requireLeader();
    if (target === this.id) return;
    if (
      !M.isVoter(this.membership, target) ||
      (M.isJoint(this.membership) && !this.membership.configs[1]?.includes(target))
    ) {
      throw new RaftError('INVALID_TRANSFER_TARGET', `${target} is not a voter that will stay`);
    }
    this.transferee = target;
    this.transferElapsed = 0;
    if (this.replication.match(target) === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.replication.sendAppend(target);
  }

  /** Begin a linearizable read; its ReadState (or drop) appears in a later Ready. */
  readIndex(ctx: string): void {
    if (this.role !== 'leader')
      throw new RaftError('NOT_LEADER', `node ${this.id} is not the leader`, this.leader);
    if (this.mutated('read-without-quorum')) {
      this.reads.add(ctx, this.log.committed, true);
      this.reads.release([[this.id]]);
      return;
    }
    const committedOwnTerm = this.log.term(this.log.committed) === this.term;
    const seq = this.reads.add(ctx, this.log.committed, committedOwnTerm);
    // A single voter is its own quorum; otherwise a heartbeat round confirms the read.
    // Reads registered before the next ready() share one heartbeat round (it carries the newest
    // sequence, so its acknowledgements confirm them all).
    if (seq !== null && !this.reads.release(this.membership.configs)) this.needsReadRound = true;
  }

  /**
   * Describe a snapshot of the state machine at `index` (≤ applied) before the host stores it.
   * Null when the log already starts later (a received snapshot overtook it): nothing to store.
   */
  snapshotMeta(index: number, sizeBytes: number, id: string): SnapshotMeta | null {
    if (index <= this.log.snapshotIndex()) return null;
    if (index > this.log.applied)
      throw new Error(`cannot snapshot at ${index}: applied is ${this.log.applied}`);
    const term = this.log.term(index) as number;
    return { index, term, membership: this.membershipAt(index), sizeBytes, id };
  }

  /**
   * The host cannot read the snapshot `id` a transfer to `to` is sending (it kept it no longer):
   * that transfer starts over with the current snapshot. Ignored unless `to` is being sent `id`
   * and `id` is not the current snapshot.
   */
  snapshotUnavailable(to: NodeId, id: string): void {
    if (this.role === 'leader') this.replication.snapshotUnavailable(to, id);
  }

  /** The host durably stored the snapshot `meta`: compact the log behind it (a no-op if older). */
  compact(meta: SnapshotMeta): void {
    this.log.compact(meta);
  }

  private membershipAt(index: number): Membership {
    for (let i = index; i > this.log.snapshotIndex(); i--) {
      const e = this.log.entry(i);
      if (e?.type === 'membership') return e.membership;
    }
    return this.log.snapshot?.membership ?? M.EMPTY_MEMBERSHIP;
  }

  // ---------------------------------------------------------------------------------------------
  // Ready / advance

  private flush(): void {
    if (this.needsBroadcast && this.role === 'leader') {
      this.maybeLeaveJoint();
      this.replication.broadcastAppend();
    }
    if (this.needsReadRound && this.role === 'leader') this.broadcastHeartbeat();
    this.needsBroadcast = false;
    this.needsReadRound = false;
  }

  /** Joint consensus is a transit state: once it commits, the leader proposes the final config. */
  private maybeLeaveJoint(): void {
    if (
      M.isJoint(this.membership) &&
      this.pendingConfIndex <= this.log.committed &&
      this.transferee === null
    ) {
      this.appendMembership(M.leaveJoint(this.membership));
    }
  }

  private hardState(): HardState {
    // Never claim a commit index beyond what this write makes durable.
    return { term: this.term, vote: this.vote, commit: Math.min(this.log.committed, this.log.lastIndex()) };
  }

  hasReady(): boolean {
    if (this.needsBroadcast || this.needsReadRound) return true;
    const hs = this.hardState();
    return (
      this.msgs.length > 0 ||
      this.msgsAfterPersist.length > 0 ||
      this.chunks.length > 0 ||
      this.installed !== null ||
      this.log.stable < this.log.lastIndex() ||
      this.applicable() > this.log.applied ||
      this.reads.hasOutput() ||
      hs.term !== this.prevHardState.term ||
      hs.vote !== this.prevHardState.vote ||
      hs.commit !== this.prevHardState.commit ||
      this.role !== this.prevSoft.role ||
      this.leader !== this.prevSoft.leader
    );
  }

  /** Entries are applied only once durable here and committed. */
  private applicable(): number {
    return Math.min(this.log.committed, this.log.stable, this.log.applied + this.cfg.maxApplyBatch);
  }

  ready(): Ready {
    if (this.outstanding) throw new Error('ready() called before advance() of the previous Ready');
    this.flush();
    const hs = this.hardState();
    const voteChanged = hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
    const hsChanged = voteChanged || hs.commit !== this.prevHardState.commit;
    const softChanged = this.role !== this.prevSoft.role || this.leader !== this.prevSoft.leader;
    const { readStates, droppedReads } = this.reads.drain();
    const entries = this.log.unstableEntries();
    const rd: Ready = {
      hardState: hsChanged ? hs : null,
      entries,
      snapshotChunks: this.chunks,
      snapshot: this.installed,
      committedEntries: this.installed ? [] : this.log.slice(this.log.applied + 1, this.applicable() + 1),
      messages: this.msgs,
      messagesAfterPersist: this.msgsAfterPersist,
      readStates,
      droppedReads,
      softState: softChanged ? { role: this.role, leader: this.leader } : null,
      mustSync: entries.length > 0 || voteChanged || this.installed !== null || this.chunks.length > 0,
    };
    this.msgs = [];
    this.msgsAfterPersist = [];
    this.chunks = [];
    this.installed = null;
    this.prevHardState = hs;
    this.prevSoft = { role: this.role, leader: this.leader };
    this.outstanding = rd;
    return rd;
  }

  /** The host persisted `rd`, sent its messages and applied its committed entries. */
  advance(rd: Ready): void {
    if (rd !== this.outstanding) throw new Error('advance() with a Ready that is not the outstanding one');
    this.outstanding = null;
    this.log.stableTo(rd.entries);
    if (rd.snapshot) this.log.applied = Math.max(this.log.applied, rd.snapshot.index);
    const last = rd.committedEntries.at(-1);
    if (last) this.log.applied = Math.max(this.log.applied, last.index);
    // Our own durable entries count towards the quorum only now (the leader's parallel append).
    if (this.role === 'leader') {
      this.maybeCommit();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Introspection

  metrics(): RaftMetrics {
    const snap = this.log.snapshot;
    return {
      id: this.id,
      // A voter being demoted with `retain` is listed as a learner already while it still votes
      // (and may lead) in the joint configuration: it is a learner only once it votes nowhere.
      state:
        this.membership.learners.includes(this.id) && !M.isVoter(this.membership, this.id)
          ? 'learner'
          : this.role,
      currentTerm: this.term,
      vote: this.vote,
      lastLogIndex: this.log.lastIndex(),
      lastLogTerm: this.log.lastTerm(),
      committed: this.log.committed,
      lastApplied: this.log.applied,
      currentLeader: this.leader,
      membership: this.membership,
      snapshot: snap ? { index: snap.index, term: snap.term } : null,
      replication: this.role === 'leader' ? this.replication.metrics(this.now) : null,
    };
  }

  isTransferring(): boolean {
    return this.transferee !== null;
  }
}
