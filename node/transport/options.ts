// Options and hooks shared by the transport's parts.

import type { Logger } from 'pino';
import type { NodeId } from '../raft/types.js';

export interface PeerTlsOptions {
  /** This node's certificate (PEM), presented both as a server and as a client. */
  cert: Buffer | string;
  key: Buffer | string;
  /** The cluster CA(s) (PEM): peers must present a certificate it signed, in both directions. */
  ca: Buffer | string | (Buffer | string)[];
  /**
   * Also require the server certificate to name the dialled host (DNS or IP SAN), as HTTPS does.
   * Default true; turn off only when peer certificates cannot carry their addresses.
   */
  verifyServerName?: boolean;
}

/** Why messages were dropped instead of sent or delivered. */
export type DropReason =
  /** The peer's queue was full: the oldest message made room for a new one. */
  | 'queue-full'
  /** Addressed to a node that is not in the peer map. */
  | 'unknown-peer'
  /** Queued for a peer that was removed (or the transport closed) before it could be sent. */
  | 'peer-removed'
  /** Its frame would exceed maxFrameBytes, or it could not be encoded: the receiver would refuse it. */
  | 'unsendable'
  /** Received, but addressed to another node id (a node replaced at the same address). */
  | 'wrong-recipient';

/**
 * Who may send to this node. Asked with the node id a dialer claims in its hello, and again for
 * every message on its connection (a member removed meanwhile is cut off at its next message).
 *
 * A member is admitted. So is an id this node does not know yet (a member that missed the entry
 * adding a node still follows it when it leads), provided it is not retired and this node has a
 * cluster id, which the hello must then name; with TLS it must also present a node certificate
 * of the cluster CA naming it (inbound-connection.ts). A retired id never is.
 */
export interface PeerAdmission {
  /**
   * A current member: a voter (of either config, in a joint one) or a learner of this node's
   * membership; before this node is itself a member, also the members it was told of (a static
   * initial cluster, or the leader preparing it to be added), so a joining node hears its leader.
   */
  isMember(id: NodeId): boolean;
  /** An id removed from the cluster: refused for good, whatever it presents. */
  isRetired(id: NodeId): boolean;
  /** The member's advertised peer address ("host:port"), when known: TLS binds the id to its host. */
  advertisedAddress(id: NodeId): string | undefined;
}

/**
 * Why an inbound connection was closed: each is a frame or a peer no correct member sends. The
 * connection is dropped (its peer redials), nothing of it reaches the engine, and the node runs on.
 */
export type ProtocolErrorReason =
  /** Undecodable, oversized or empty frame, or a schema failure. */
  | 'bad-frame'
  /** The first frame is not a hello, or a second hello came. */
  | 'no-hello'
  /** A hello of another protocol version. */
  | 'version'
  /** The dialer's cluster id is not this node's. */
  | 'cluster-mismatch'
  /** The claimed node id is retired, or unknown to a node that has no cluster id yet. */
  | 'not-a-member'
  /** TLS: the certificate does not name the claimed node id; or the peer claims this node's id. */
  | 'identity'
  /** TLS: no verified certificate, or one without the node role (a client or admin certificate). */
  | 'certificate'
  /** TLS: the handshake failed (or timed out) before any certificate could be checked. */
  | 'tls-handshake'
  /** A message whose `from` is not the id the hello claimed. */
  | 'from-mismatch'
  /** A message failing the structural checks (node/raft/message-checks.ts). */
  | 'invalid-message'
  /** The engine refused a message as impossible in its state (ProtocolViolation's reasons). */
  | 'conflicting-leader'
  | 'own-id'
  | 'ack-beyond-log';

/**
 * Counter hooks (for prom-client). `sent` counts messages handed to the socket, `received` messages
 * delivered to `onMessage`. Hooks run synchronously on the transport's path: keep them cheap.
 */
export interface TransportMetricsHooks {
  sent?(peer: NodeId, messages: number, bytes: number): void;
  dropped?(peer: NodeId, messages: number, reason: DropReason): void;
  received?(peer: NodeId, messages: number, bytes: number): void;
  /** An inbound connection closed on a protocol error; `peer`: the id its hello claimed, if any. */
  protocolError?(reason: ProtocolErrorReason, peer: NodeId | null): void;
}

export type { Logger };
