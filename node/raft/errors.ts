// Refusals of the engine's facade and core. The host maps each code to its API status in one table.

export const RAFT_ERROR_CODES = [
  'NOT_LEADER',
  'TRANSFER_IN_PROGRESS',
  'MEMBERSHIP_CHANGE_IN_PROGRESS',
  'INVALID_MEMBERSHIP',
  'RETIRED_NODE_ID',
  'ALREADY_INITIALIZED',
  'NOT_INITIALIZED',
  'INVALID_TRANSFER_TARGET',
  'TRANSFER_TIMEOUT',
  'READ_ABORTED',
  'PROPOSAL_DROPPED',
  'OUTCOME_UNKNOWN',
  'SNAPSHOT_TOO_OLD',
  'SHUTTING_DOWN',
] as const;

export type RaftErrorCode = (typeof RAFT_ERROR_CODES)[number];

export class RaftError extends Error {
  override readonly name = 'RaftError';
  constructor(
    readonly code: RaftErrorCode,
    message: string,
    /** For NOT_LEADER: the leader this node knows of, so callers can redirect. */
    readonly leader: string | null = null,
  ) {
    super(message);
  }
}

/** Why RaftCore.step refused a peer's message (see ProtocolViolation). */
export type ProtocolViolationReason =
  /** A leader's message (or TimeoutNow) in this node's term from another node than its leader. */
  | 'conflicting-leader'
  /** A message that claims to come from this very node. */
  | 'own-id'
  /** An acknowledgement of entries this leader never had. */
  | 'ack-beyond-log';

/**
 * A peer's message that no correct peer could send to this node in its current state. The core
 * throws it from `step` before changing anything, so it describes bad input, never bad local
 * state: the host drops the message (and the transport the connection) and the node runs on.
 */
export class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation';
  constructor(
    readonly reason: ProtocolViolationReason,
    message: string,
  ) {
    super(message);
  }
}
