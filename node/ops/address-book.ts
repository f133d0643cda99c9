// Where every member can be reached. The source of truth is the replicated membership (each
// membership entry carries the members' addresses, as openraft's `nodes` map does); before this
// node has seen one (a static --initial-cluster start, or a node being added that the leader
// prepared), addresses it was told are kept as hints. Every change is pushed to the transport.

import type { Membership, NodeId, NodeInfo } from '../raft/types.js';

export class AddressBook {
  private fromMembership: Record<NodeId, NodeInfo> = {};
  private hints: Record<NodeId, NodeInfo> = {};
  private published = '';

  constructor(
    private readonly selfId: NodeId,
    private readonly self: NodeInfo,
    /** Receives the raft address of every peer whenever the set changes. */
    private readonly onPeers: (peers: Record<NodeId, string>) => void,
  ) {}

  /** Addresses heard outside the log: they fill gaps and never override the membership's. */
  hint(nodes: Record<NodeId, NodeInfo>): void {
    this.hints = { ...this.hints, ...nodes };
    this.publish();
  }

  /** The committed membership changed (or was seen for the first time). */
  learn(m: Membership): void {
    if (Object.keys(m.nodes).length === 0) return; // a membership without addresses adds nothing
    this.fromMembership = m.nodes;
    // A member that left is no longer a hint either: it must not be dialled again.
    for (const id of m.retired) delete this.hints[id];
    this.publish();
  }

  get(id: NodeId): NodeInfo | undefined {
    if (id === this.selfId) return this.self;
    return this.fromMembership[id] ?? this.hints[id];
  }

  all(): Record<NodeId, NodeInfo> {
    return { ...this.hints, ...this.fromMembership, [this.selfId]: this.self };
  }

  private publish(): void {
    const peers = Object.fromEntries(
      Object.entries(this.all())
        .filter(([id]) => id !== this.selfId)
        .map(([id, info]) => [id, info.raft]),
    );
    const key = JSON.stringify(Object.entries(peers).sort());
    if (key === this.published) return;
    this.published = key;
    this.onPeers(peers);
  }
}
