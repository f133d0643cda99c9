// The leader's sending half (etcd's tracker plus the send paths of raft.go): one Progress per
// other member, appends batched up to the configured limits and paced by each peer's in-flight
// window, heartbeats, and snapshots in chunks to peers whose next entry was compacted away.

import type { RaftLog } from './log.js';
import { Progress } from './progress.js';
import { hasJointQuorum } from './quorum.js';
import type { Message, NodeId, PeerMetrics } from './types.js';

export interface ReplicationLimits {
  maxInflight: number;
  maxEntriesPerAppend: number;
  maxBytesPerAppend: number;
  snapshotChunkBytes: number;
}

type Response<T extends Message['type']> = Extract<Message, { type: T }>;

const EMPTY = new Uint8Array(0);

/**
 * Heartbeat answers without a newly acknowledged chunk after which a transfer of a snapshot the
 * leader has since replaced starts over with the current one: the host may no longer hold the old
 * one and drop its chunks without saying so (RaftNode says so: RaftCore.snapshotUnavailable).
 */
export const SNAPSHOT_STALL_HEARTBEATS = 4;

/**
 * Times a transfer starts over with a newer snapshot while less than half of it is sent; after
 * that it finishes the one it has, however many snapshots the leader takes meanwhile.
 */
export const MAX_SNAPSHOT_RESTARTS = 6;

export class Replicator {
  private peers = new Map<NodeId, Progress>();
  /** The leader's term: fixed for the whole leadership, set by `start`. */
  private term = 0;

  constructor(
    private readonly id: NodeId,
    private readonly log: RaftLog,
    private readonly limits: ReplicationLimits,
    private readonly out: (m: Message) => void,
  ) {}

  /** A new leadership: every peer starts in probe, optimistically right after our last entry. */
  start(term: number, members: readonly NodeId[]): void {
    this.term = term;
    this.peers.clear();
    this.track(members);
  }

  /** The membership changed: track new members, forget removed ones, keep everyone else's state. */
  track(members: readonly NodeId[]): void {
    const keep = this.peers;
    this.peers = new Map();
    for (const id of members) {
      if (id === this.id) continue;
      this.peers.set(id, keep.get(id) ?? new Progress(this.log.lastIndex(), this.limits.maxInflight));
    }
  }

  stop(): void {
    this.peers.clear();
  }

  match(id: NodeId): number {
    return this.peers.get(id)?.match ?? 0;
  }

  /** Record that `from` answered; returns its progress, or undefined for a non-member. */
  heardFrom(from: NodeId, now: number): Progress | undefined {
    const pr = this.peers.get(from);
    if (pr) {
      pr.recentActive = true;
      pr.lastContactTick = now;
    }
    return pr;
  }

  /** Returns true when the peer's match index advanced (the caller then checks the commit index). */
  onAppendResponse(pr: Progress, m: Response<'append-response'>): boolean {
    if (m.reject) {
      const probeFrom =
        m.hintTerm > 0 ? this.log.findConflictByTerm(m.hintIndex, m.hintTerm).index : m.hintIndex;
      if (pr.maybeDecrTo(m.index, probeFrom)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return false;
    }
    if (!pr.maybeUpdate(m.index)) return false;
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) pr.becomeProbe();
    return true;
  }

  onHeartbeatResponse(from: NodeId, pr: Progress, lastIndex: number): void {
    // Below what it acknowledged and what is committed: a late answer cannot explain that in
    // practice (links are FIFO); at worst this costs a resend.
    if (lastIndex < Math.min(pr.match, this.log.committed)) {
      // It holds less than it acknowledged: its disk lost a synced tail (a crash cannot do
      // this). What it still holds is committed, so it matches ours; resend from there.
      pr.match = lastIndex;
      pr.becomeProbe();
    }
    pr.probeSent = false;
    // A full window whose appends were lost would stall forever: let one more through; a gap
    // makes the follower reject, which puts it back into probe.
    if (pr.state === 'replicate' && pr.isPaused()) pr.inflights.shift();
    // The chunk on its way may be lost: send it again. The answers to both copies ask for the
    // same next chunk, and onSnapshotResponse sends that one once.
    if (pr.state === 'snapshot') {
      pr.snapshotStalls++;
      this.sendSnapshotChunk(from, pr);
    }
    // Behind although alive: maybe appends were lost. An append (even empty) makes it
    // acknowledge or reject, which restarts replication from where it really is.
    else if (pr.match < this.log.lastIndex()) this.sendAppend(from, true);
  }

  onSnapshotResponse(pr: Progress, m: Response<'snapshot-response'>): void {
    if (pr.state !== 'snapshot' || m.snapshotIndex !== pr.pendingSnapshot) return;
    const next = m.reject ? 0 : m.nextOffset;
    // It asks for the chunk sent last: this answers a copy of an earlier chunk (one resent at a
    // heartbeat, or duplicated by the network). Sending again would put one more copy in flight
    // for the rest of the transfer, each heartbeat adding another: on a slow link the transfer
    // then drowns in copies and never finishes.
    if (next === pr.snapshotInflight) return;
    if (next > pr.snapshotOffset) pr.snapshotStalls = 0;
    pr.snapshotOffset = next;
    // All bytes are there: its append-response after installing moves it out of snapshot state.
    if (!m.reject && m.nextOffset >= (pr.snapshotMeta?.sizeBytes ?? 0)) return;
    this.sendSnapshotChunk(m.from, pr);
  }

  /** See RaftCore.snapshotUnavailable. */
  snapshotUnavailable(to: NodeId, id: string): void {
    const pr = this.peers.get(to);
    const current = this.log.snapshot;
    if (pr?.state !== 'snapshot' || pr.snapshotMeta?.id !== id || !current || current.id === id) return;
    pr.becomeSnapshot(current);
    this.sendSnapshotChunk(to, pr);
  }

  /** Send the next append (or snapshot) to `to` if its window allows. True when entries went out. */
  sendAppend(to: NodeId, sendIfEmpty = false): boolean {
    const pr = this.peers.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      // What the follower needs was compacted away: it gets the snapshot instead.
      const snap = this.log.snapshot;
      if (!snap) throw new Error(`no term for ${prevIndex} and no snapshot`);
      pr.becomeSnapshot(snap);
      this.sendSnapshotChunk(to, pr);
      return false;
    }
    const { maxEntriesPerAppend, maxBytesPerAppend } = this.limits;
    const entries = this.log.slice(pr.next, this.log.lastIndex() + 1, maxEntriesPerAppend, maxBytesPerAppend);
    const commit = this.log.committed;
    // In replicate state an empty append is only worth sending to spread a new commit index.
    if (pr.state === 'replicate' && entries.length === 0 && !sendIfEmpty && pr.sentCommit >= commit)
      return false;
    this.out({ type: 'append', from: this.id, to, term: this.term, prevIndex, prevTerm, entries, commit });
    pr.sent(prevIndex + entries.length, entries.length);
    pr.sentCommit = commit;
    return entries.length > 0;
  }

  /** Send to `to` as much as its window takes. */
  sendAll(to: NodeId): void {
    while (this.sendAppend(to)) {}
  }

  broadcastAppend(): void {
    for (const id of this.peers.keys()) this.sendAll(id);
  }

  broadcastHeartbeat(readSeq: number): void {
    for (const [to, pr] of this.peers) {
      // Never tell a follower to commit beyond what it is known to hold.
      const commit = Math.min(pr.match, this.log.committed);
      this.out({ type: 'heartbeat', from: this.id, to, term: this.term, commit, readSeq });
    }
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const current = this.log.snapshot;
    if (!current) return;
    // Compacted again meanwhile. Once the transfer is halfway, or started over
    // MAX_SNAPSHOT_RESTARTS times, it keeps sending the snapshot it has (the follower would throw
    // away what it staged, and a transfer slower than the snapshot interval would never finish);
    // before that, starting over with the newer one costs less than what it saves: the follower
    // then needs no second transfer for the entries compacted since. Also moved: a transfer at offset 0 (nothing is
    // lost), and one that stopped moving (the host cannot read the old snapshot any more).
    const pinned = pr.snapshotMeta;
    if (
      !pinned ||
      (pinned.id !== current.id &&
        (pr.snapshotOffset === 0 ||
          pr.snapshotStalls >= SNAPSHOT_STALL_HEARTBEATS ||
          (pr.snapshotRestarts < MAX_SNAPSHOT_RESTARTS && pr.snapshotOffset * 2 < pinned.sizeBytes)))
    ) {
      // Only a restart that throws staged bytes away counts towards the limit.
      pr.becomeSnapshot(current, pr.snapshotRestarts + (pr.snapshotOffset > 0 ? 1 : 0));
    }
    const snap = pr.snapshotMeta ?? current;
    const offset = Math.min(pr.snapshotOffset, snap.sizeBytes);
    const length = Math.min(this.limits.snapshotChunkBytes, snap.sizeBytes - offset);
    const done = offset + length >= snap.sizeBytes;
    pr.snapshotInflight = offset;
    this.out({
      type: 'snapshot',
      from: this.id,
      to,
      term: this.term,
      meta: snap,
      offset,
      length,
      done,
      data: EMPTY,
    });
  }

  /** CheckQuorum: did a quorum of every config answer since the last `resetActivity`? */
  quorumActive(configs: readonly NodeId[][]): boolean {
    return hasJointQuorum(configs, (id) => id === this.id || this.peers.get(id)?.recentActive === true);
  }

  resetActivity(): void {
    for (const pr of this.peers.values()) pr.recentActive = false;
  }

  /** The voter among `candidates` holding the most of the log. */
  mostUpToDate(candidates: readonly NodeId[]): { id: NodeId; match: number } | undefined {
    return candidates
      .filter((id) => id !== this.id)
      .map((id) => ({ id, match: this.match(id) }))
      .sort((a, b) => b.match - a.match)[0];
  }

  metrics(now: number): Record<NodeId, PeerMetrics> {
    const out: Record<NodeId, PeerMetrics> = {};
    for (const [id, pr] of this.peers) {
      const lastContactTicksAgo = pr.lastContactTick === null ? null : now - pr.lastContactTick;
      out[id] = { matched: pr.match, lastContactTicksAgo, state: pr.state };
    }
    return out;
  }
}
