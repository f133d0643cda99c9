// The Raft core, part 2 of 3 (raft.ts is the whole): the messages between peers and the
// leader's side of replication and commit (docs/ARCHITECTURE.md §2).

import { ProtocolViolation, RaftError } from './errors.js';
import * as M from './membership.js';
import { jointCommitIndex } from './quorum.js';
import type { DistributiveOmit } from './raft-config.js';
import { RaftElections } from './raft-elections.js';
import type { Membership, Message, NodeId, SnapshotMeta } from './types.js';

export abstract class RaftProtocol extends RaftElections {
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
  protected violation(m: Message): ProtocolViolation | null {
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
  protected stepStale(m: Message): void {
    if (m.type === 'append' || m.type === 'heartbeat') {
      // A deposed leader cut off by CheckQuorum/PreVote learns our term from this and steps down.
      this.reply(m.from, { type: 'append-response', index: 0, reject: true, hintIndex: 0, hintTerm: 0 });
    } else if (m.type === 'vote' && m.pre) {
      this.reply(m.from, { type: 'vote-response', pre: true, granted: false });
    }
  }

  protected stepCurrent(m: Message): void {
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

  protected handleVote(m: Extract<Message, { type: 'vote' }>): void {
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

  protected handleVoteResponse(m: Extract<Message, { type: 'vote-response' }>): void {
    const expected =
      (this.role === 'pre-candidate' && m.pre && (m.granted ? m.term === this.term + 1 : true)) ||
      (this.role === 'candidate' && !m.pre);
    if (!expected || !M.isVoter(this.membership, m.from)) return;
    this.votes.set(m.from, m.granted);
    this.tallyVotes();
  }

  protected handleAppend(m: Extract<Message, { type: 'append' }>): void {
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

  protected handleHeartbeat(m: Extract<Message, { type: 'heartbeat' }>): void {
    const lastIndex = this.log.lastIndex();
    this.commitTo(Math.min(m.commit, lastIndex));
    this.reply(m.from, { type: 'heartbeat-response', readSeq: m.readSeq, lastIndex });
  }

  protected handleSnapshot(m: Extract<Message, { type: 'snapshot' }>): void {
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

  protected stepLeader(m: Message): void {
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

  protected broadcastHeartbeat(): void {
    this.replication.broadcastHeartbeat(this.reads.latestSeq());
  }

  protected sendTimeoutNow(to: NodeId): void {
    this.msgs.push({ type: 'timeout-now', from: this.id, to, term: this.term });
  }

  /** Advance the commit index to what a (joint) quorum has durably stored, if of our term. */
  protected maybeCommit(): boolean {
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

  protected commitTo(index: number): void {
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

  protected applyMembership(m: Membership): void {
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
  protected reply(to: NodeId, body: DistributiveOmit<Message, 'from' | 'to' | 'term'>): void {
    this.send({ ...body, from: this.id, to, term: this.term } as Message);
  }

  protected ackAppend(to: NodeId, index: number): void {
    this.reply(to, { type: 'append-response', index, reject: false, hintIndex: 0, hintTerm: 0 });
  }

  protected send(m: Message): void {
    // Every answer a follower gives vouches for state it holds; it leaves only once durable.
    (this.mutated('ack-before-persist') ? this.msgs : this.msgsAfterPersist).push(m);
  }
}
