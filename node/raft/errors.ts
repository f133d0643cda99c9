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
