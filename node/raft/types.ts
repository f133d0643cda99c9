// Shared vocabulary of the Raft engine. Everything here is plain data: the core never does I/O,
// so every type must be serialisable by the host (WAL records, peer frames, metrics).

export type NodeId = string;

/**
 * Cluster membership, shaped like openraft's: `configs` holds one voter set, or two during a
 * joint-consensus change (old, new). A decision needs a majority of *every* set in `configs`.
 * Learners receive the log but never vote and never count towards a quorum. `retired` lists
 * every id that has ever left the cluster; such ids are refused forever, so a wiped node can never
 * come back under its old name and vote twice in a term it already voted in.
 */
export interface Membership {
  configs: NodeId[][];
  learners: NodeId[];
  retired: NodeId[];
  /**
   * How to reach every current member (voters and learners), replicated with the membership as
   * openraft's `nodes` map is, so any member can reach any other after restarts and changes.
   */
  nodes: Record<NodeId, NodeInfo>;
  /** Minted once, when the cluster is initialized or restored; every later membership carries it. */
  cluster: ClusterIdentity | null;
}

/** A member's advertised addresses (host:port). The engine carries them; only the host uses them. */
export interface NodeInfo {
  raft: string;
  api: string;
  admin: string;
}

export interface ClusterIdentity {
  id: string;
  /** Set when the cluster was restored from a backup: where its data came from. */
  restoredFrom: { clusterId: string; uri: string; index: number } | null;
  /**
   * Set when the cluster was rebuilt after a quorum loss (`forceNewCluster`): the cluster it
   * replaced, the survivor whose log it kept, that log's last index and when (ISO time).
   */
  recoveredFrom?: RecoveredFrom | null;
}

export interface RecoveredFrom {
  clusterId: string;
  nodeId: NodeId;
  index: number;
  at: string;
}

interface EntryBase {
  index: number;
  term: number;
}

/** A blank entry is what a new leader appends to commit an entry of its own term. */
export type Entry =
  | (EntryBase & { type: 'blank' })
  | (EntryBase & { type: 'normal'; data: Uint8Array })
  | (EntryBase & { type: 'membership'; membership: Membership });

/** What must be durable before a vote or an acknowledgement leaves this node. */
export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
}

export interface SnapshotMeta {
  index: number;
  term: number;
  membership: Membership;
  sizeBytes: number;
  /**
   * Host-chosen identity of the snapshot's bytes. Two nodes' snapshots at the same index hold the
   * same state but not necessarily the same bytes, so a transfer resumes only on the same id.
   */
  id: string;
}

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

interface MessageBase {
  from: NodeId;
  to: NodeId;
  term: number;
}

export type Message =
  | (MessageBase & {
      type: 'vote';
      pre: boolean;
      lastLogIndex: number;
      lastLogTerm: number;
      /** Set when campaigning on a leader's TimeoutNow: voters then ignore their leader lease. */
      transfer: boolean;
    })
  | (MessageBase & { type: 'vote-response'; pre: boolean; granted: boolean })
  | (MessageBase & {
      type: 'append';
      prevIndex: number;
      prevTerm: number;
      entries: Entry[];
      commit: number;
    })
  | (MessageBase & {
      type: 'append-response';
      /** On success: the highest index known to match the leader. On reject: the rejected prevIndex. */
      index: number;
      reject: boolean;
      /** On reject: where the follower suggests the leader probes next (etcd's fast back-off). */
      hintIndex: number;
      hintTerm: number;
    })
  | (MessageBase & { type: 'heartbeat'; commit: number; readSeq: number })
  | (MessageBase & {
      type: 'heartbeat-response';
      readSeq: number;
      /** The follower's last log index: lower than what it acknowledged means its disk lost a tail. */
      lastIndex: number;
    })
  | (MessageBase & {
      type: 'snapshot';
      meta: SnapshotMeta;
      offset: number;
      /** Chunk bytes. The core emits chunks with empty data and the host fills them from its snapshot store. */
      data: Uint8Array;
      length: number;
      done: boolean;
    })
  | (MessageBase & {
      type: 'snapshot-response';
      snapshotIndex: number;
      /** The next offset the follower expects; on `reject` the transfer restarts from 0. */
      nextOffset: number;
      reject: boolean;
    })
  | (MessageBase & { type: 'timeout-now' });

export type MessageType = Message['type'];

/** A confirmed linearizable read: serve it once the state machine has applied `index`. */
export interface ReadState {
  ctx: string;
  index: number;
}

/** A chunk of an incoming snapshot the host must stage (in order) before the snapshot is installed. */
export interface SnapshotChunk {
  meta: SnapshotMeta;
  offset: number;
  data: Uint8Array;
}

/**
 * The host's work list. Contract (etcd's): persist `hardState`, `entries` (writing entry i truncates
 * any durable entry ≥ i) and `snapshot` durably; `messages` may be sent at once, even before that
 * write completes (this is how the leader appends in parallel with replication); `messagesAfterPersist`
 * only after it completed. `committedEntries` are already durable here (never past what an earlier
 * Ready persisted), so they may be applied, in order, at once, while that write is under way. Once
 * all of this is done, call `advance(ready)`.
 */
export interface Ready {
  hardState: HardState | null;
  entries: Entry[];
  snapshotChunks: SnapshotChunk[];
  /** A received snapshot to install: the staged chunks become the state machine, the log restarts after it. */
  snapshot: SnapshotMeta | null;
  committedEntries: Entry[];
  messages: Message[];
  messagesAfterPersist: Message[];
  readStates: ReadState[];
  /** Reads that can no longer be confirmed (leadership lost): fail them so clients retry. */
  droppedReads: string[];
  /** Present when the role or the known leader changed. */
  softState: { role: Role; leader: NodeId | null } | null;
  /**
   * Whether the durable part must be synced before `messagesAfterPersist` leave (etcd's
   * MustSync): new entries, a new term or vote, or a snapshot. A Ready whose only durable change
   * is the commit index need not be written at all: a restarted node learns its commit index
   * again from the leader, so losing it costs nothing but a round trip.
   */
  mustSync: boolean;
}

export interface PeerMetrics {
  matched: number;
  /** Ticks since this peer last answered the leader; null before it ever did. */
  lastContactTicksAgo: number | null;
  state: 'probe' | 'replicate' | 'snapshot';
}

/** Shaped like openraft's RaftMetrics. */
export interface RaftMetrics {
  id: NodeId;
  state: Role | 'learner';
  currentTerm: number;
  vote: NodeId | null;
  lastLogIndex: number;
  /** Term of the last log entry (or of the snapshot when the log is empty). */
  lastLogTerm?: number;
  committed: number;
  lastApplied: number;
  currentLeader: NodeId | null;
  membership: Membership;
  snapshot: { index: number; term: number } | null;
  /** Only on the leader: one entry per other member. */
  replication: Record<NodeId, PeerMetrics> | null;
}
