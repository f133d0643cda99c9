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
 * Counter hooks (for prom-client). `sent` counts messages handed to the socket, `received` messages
 * delivered to `onMessage`. Hooks run synchronously on the transport's path: keep them cheap.
 */
export interface TransportMetricsHooks {
  sent?(peer: NodeId, messages: number, bytes: number): void;
  dropped?(peer: NodeId, messages: number, reason: DropReason): void;
  received?(peer: NodeId, messages: number, bytes: number): void;
}

export type { Logger };
