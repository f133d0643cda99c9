// The PeerAdmission a node runs with: who may send it Raft messages, from its membership.
//
// A member is a voter of any config (both during a joint change) or a learner of the committed
// membership, the one the engine acts on (membership takes effect when its entry commits). The
// leader adds a node to that membership before it sends it anything, so the node's answers are
// always admitted by the leader. The node itself starts empty, and its log may begin with
// memberships that predate today's leader, so while it is not a member of its own committed
// membership it also admits the nodes it was told of outside the log: the members of a static
// initial cluster, or those the leader named when it prepared this node to be added. Once it
// holds the entry that adds it, the log alone decides who is a member.
//
// Not being a member is not a refusal by itself: a member that missed the entry adding a node
// must still follow that node when it leads, so the transport also admits ids this node does not
// know yet once it has a cluster id (inbound-connection.ts: the hello must name that cluster and,
// with TLS, a node certificate of the cluster CA must name the id). What is refused for good is
// a retired id, as etcd refuses removed members: removal retires an id in the log, and the
// engine ignores retired senders too.

import * as M from '../raft/membership.js';
import type { Membership, NodeId } from '../raft/types.js';
import type { PeerAdmission } from './options.js';

export class MembershipAdmission implements PeerAdmission {
  private members: ReadonlySet<NodeId> = new Set();
  private retired: ReadonlySet<NodeId> = new Set();
  private selfIsMember = false;

  /**
   * @param toldOf the advertised peer address of a node this node knows of, from its membership
   *   or from what it was told outside the log (a static initial cluster, a prepare); undefined
   *   for a node it knows nothing of.
   */
  constructor(
    private readonly selfId: NodeId,
    private readonly toldOf: (id: NodeId) => string | undefined,
  ) {}

  /** The committed membership changed (or is known for the first time). */
  update(membership: Membership): void {
    this.members = new Set(M.members(membership));
    this.retired = new Set(membership.retired);
    this.selfIsMember = this.members.has(this.selfId);
  }

  isMember(id: NodeId): boolean {
    if (id === this.selfId || this.retired.has(id)) return false;
    if (this.members.has(id)) return true;
    return !this.selfIsMember && this.toldOf(id) !== undefined;
  }

  isRetired(id: NodeId): boolean {
    return this.retired.has(id);
  }

  advertisedAddress(id: NodeId): string | undefined {
    return this.toldOf(id);
  }
}
