// The Raft core, part 1 of 3 (raft.ts is the whole): its state, time and role changes —
// elections with PreVote, CheckQuorum and randomized timeouts (docs/ARCHITECTURE.md §2).

import { RaftLog } from './log.js';
import * as M from './membership.js';
import { jointVote } from './quorum.js';
import { EMPTY_STATE, type Mutation, type RaftConfig, type RaftState } from './raft-config.js';
import { ReadQueue } from './read-queue.js';
import { Replicator } from './replicator.js';
import { SnapshotReceiver } from './snapshot-receiver.js';
import type {
  HardState,
  Membership,
  Message,
  NodeId,
  Ready,
  Role,
  SnapshotChunk,
  SnapshotMeta,
} from './types.js';

export abstract class RaftElections {
  /** Defined by raft-protocol.ts: a heartbeat round to every peer. */
  protected abstract broadcastHeartbeat(): void;
  /** Defined by raft-protocol.ts: advance the commit index from the peers' acknowledgements. */
  protected abstract maybeCommit(): boolean;

  readonly id: NodeId;
  protected readonly cfg: RaftConfig;
  readonly log: RaftLog;

  term: number;
  vote: NodeId | null;
  role: Role = 'follower';
  leader: NodeId | null = null;
  /** The committed membership (see the file comment). */
  membership: Membership;

  /** Ticks since start: the unit of every "last contact" the metrics report. */
  protected now = 0;
  protected electionElapsed = 0;
  protected heartbeatElapsed = 0;
  protected randomizedElectionTicks = 0;

  protected votes = new Map<NodeId, boolean>();
  protected readonly replication: Replicator;
  /** Index of the newest membership entry in the log; a new change waits until it commits. */
  protected pendingConfIndex = 0;
  protected transferee: NodeId | null = null;
  protected transferElapsed = 0;
  protected readonly reads: ReadQueue;
  protected readonly snapshots = new SnapshotReceiver();

  // Outputs accumulated for the next Ready.
  protected msgs: Message[] = [];
  protected msgsAfterPersist: Message[] = [];
  protected chunks: SnapshotChunk[] = [];
  protected installed: SnapshotMeta | null = null;
  protected needsBroadcast = false;
  protected needsReadRound = false;
  protected prevHardState: HardState;
  protected prevSoft: { role: Role; leader: NodeId | null };
  protected outstanding: Ready | null = null;

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

  protected tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTicks && this.promotable()) {
      this.electionElapsed = 0;
      this.campaign(false);
    }
  }

  protected tickLeader(): void {
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

  protected mutated(m: Mutation): boolean {
    return this.cfg.mutations?.has(m) === true;
  }

  protected promotable(): boolean {
    return M.isVoter(this.membership, this.id);
  }

  protected resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.randomizedElectionTicks = this.cfg.electionTicks + this.cfg.rng.int(this.cfg.electionTicks);
  }

  // ---------------------------------------------------------------------------------------------
  // Role changes

  protected becomeFollower(term: number, leader: NodeId | null): void {
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

  protected startElection(skipPreVote: boolean, transfer: boolean): void {
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

  protected startVote(pre: boolean, transfer: boolean): void {
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
  protected tallyVotes(): boolean {
    const result = jointVote(this.membership.configs, this.votes);
    if (result === 'pending') return false;
    if (result === 'lost') this.becomeFollower(this.term, null);
    else if (this.role === 'pre-candidate') this.startElection(true, false);
    else this.becomeLeader();
    return true;
  }

  protected becomeLeader(): void {
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
}
