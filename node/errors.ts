// The one error catalogue of Conflux. Every refusal any surface gives (client API, admin API,
// internal API) is a ConfluxError or a RaftError with a code listed here; `node/api/http-errors.ts`
// maps codes to HTTP statuses in one table, and a test checks every code is mapped and documented.

import { RAFT_ERROR_CODES, type RaftErrorCode } from './raft/errors.js';

export const CONFLUX_ERROR_CODES = [
  'INVALID_REQUEST',
  'KEY_TOO_LONG',
  'VALUE_TOO_LARGE',
  'BODY_TOO_LARGE',
  'RATE_LIMITED',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'KEY_NOT_FOUND',
  'COMPARE_FAILED',
  'COMPACTED',
  'STALE_TERM',
  'REVISION_NOT_REACHED',
  'NO_LEADER',
  'LEADER_UNREACHABLE',
  'TIMEOUT',
  'ROUTE_NOT_FOUND',
  'BACKUP_NOT_FOUND',
  'BACKUP_CORRUPT',
  'BACKUP_DESTINATION_ERROR',
  'OPERATION_NOT_FOUND',
  'NODE_NOT_FOUND',
  'QUORUM_AT_RISK',
  'NOT_EMPTY',
  'CLUSTER_MISMATCH',
  'OPERATION_IN_PROGRESS',
  'NODE_UNREACHABLE',
  'CATCH_UP_TIMEOUT',
  'QUORUM_INTACT',
  'NOTHING_TO_RECOVER',
  'RESPONSE_TOO_LARGE',
  'NO_SPACE',
  'TOO_MANY_WATCHERS',
  'HEADERS_TOO_LARGE',
  'REQUEST_TIMEOUT',
  'INTERNAL',
] as const;

export type ConfluxErrorCode = (typeof CONFLUX_ERROR_CODES)[number];
export type ErrorCode = ConfluxErrorCode | RaftErrorCode;
export const ALL_ERROR_CODES: readonly ErrorCode[] = [...CONFLUX_ERROR_CODES, ...RAFT_ERROR_CODES];

export class ConfluxError extends Error {
  override readonly name = 'ConfluxError';
  constructor(
    readonly code: ConfluxErrorCode,
    message: string,
    /** Extra fields for the JSON body (for example `oldestRevision` with COMPACTED). */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}
