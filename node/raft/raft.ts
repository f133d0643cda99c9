// The Raft core: a deterministic state machine in the style of etcd-io/raft.
//
// The host drives it with `tick()` (time), `step(message)` (peers) and the proposal methods
// (clients), and drains its work with `ready()` / `advance(ready)`. The core never performs I/O,
// never reads a clock and draws randomness only from the injected Rng, so a seed replays a run.
//
// Membership takes effect when its entry COMMITS (etcd's rule, made safe by allowing one change at
// a time and by joint consensus for voter changes). Every node therefore agrees on the config at
// every committed index, and a restarted node recovers it from its snapshot plus its committed log.
//
// The class is built in three parts: raft-elections.ts (state, time, roles), raft-protocol.ts
// (messages, the leader) and this file (proposals, administration, the Ready cycle).

import { RaftError } from './errors.js';
import * as M from './membership.js';
import { RaftProtocol } from './raft-protocol.js';
import type {
  ClusterIdentity,
  HardState,
  Membership,
  NodeId,
  NodeInfo,
  RaftMetrics,
  Ready,
  SnapshotMeta,
} from './types.js';

export {
  DEFAULT_CONFIG,
  EMPTY_STATE,
  type Mutation,
  type RaftConfig,
  type RaftState,
} from './raft-config.js';

export class RaftCore extends RaftProtocol {
  // ---------------------------------------------------------------------------------------------
  // Proposals (leader only)

  protected requireLeader(): void {
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

  protected appendMembership(membership: Membership): number {
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

  protected requirePristine(): void {
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

  protected membershipAt(index: number): Membership {
    for (let i = index; i > this.log.snapshotIndex(); i--) {
      const e = this.log.entry(i);
      if (e?.type === 'membership') return e.membership;
    }
    return this.log.snapshot?.membership ?? M.EMPTY_MEMBERSHIP;
  }

  // ---------------------------------------------------------------------------------------------
  // Ready / advance

  protected flush(): void {
    if (this.needsBroadcast && this.role === 'leader') {
      this.maybeLeaveJoint();
      this.replication.broadcastAppend();
    }
    if (this.needsReadRound && this.role === 'leader') this.broadcastHeartbeat();
    this.needsBroadcast = false;
    this.needsReadRound = false;
  }

  /** Joint consensus is a transit state: once it commits, the leader proposes the final config. */
  protected maybeLeaveJoint(): void {
    if (
      M.isJoint(this.membership) &&
      this.pendingConfIndex <= this.log.committed &&
      this.transferee === null
    ) {
      this.appendMembership(M.leaveJoint(this.membership));
    }
  }

  protected hardState(): HardState {
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
  protected applicable(): number {
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
