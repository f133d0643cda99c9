// Error code -> HTTP status, in one place. The JSON body is always
// `{ "error": { "code": "...", "message": "...", ...details } }`.

import { ConfluxError, type ErrorCode } from '../errors.js';
import { RaftError } from '../raft/errors.js';

export const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_REQUEST: 400,
  KEY_TOO_LONG: 400,
  VALUE_TOO_LARGE: 413,
  BODY_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  KEY_NOT_FOUND: 404,
  COMPARE_FAILED: 412,
  COMPACTED: 410,
  STALE_TERM: 409,
  REVISION_NOT_REACHED: 412,
  NO_LEADER: 503,
  LEADER_UNREACHABLE: 503,
  TIMEOUT: 504,
  ROUTE_NOT_FOUND: 404,
  BACKUP_NOT_FOUND: 404,
  BACKUP_CORRUPT: 422,
  BACKUP_DESTINATION_ERROR: 502,
  OPERATION_NOT_FOUND: 404,
  NODE_NOT_FOUND: 404,
  QUORUM_AT_RISK: 409,
  NOT_EMPTY: 409,
  CLUSTER_MISMATCH: 409,
  OPERATION_IN_PROGRESS: 409,
  NODE_UNREACHABLE: 502,
  CATCH_UP_TIMEOUT: 504,
  QUORUM_INTACT: 409,
  NOTHING_TO_RECOVER: 409,
  // The request is well-formed and small, but what it asks for would not fit in one answer under
  // --max-response-bytes: the client must ask for less (split the transaction). Not 413, which
  // blames the request's own size; not 5xx or 429, since retrying the same request cannot help.
  RESPONSE_TOO_LARGE: 422,
  // etcd's NOSPACE: the node is healthy but its storage quota is used up (WebDAV's status).
  NO_SPACE: 507,
  TOO_MANY_WATCHERS: 429,
  HEADERS_TOO_LARGE: 431,
  REQUEST_TIMEOUT: 408,
  INTERNAL: 500,
  NOT_LEADER: 503,
  TRANSFER_IN_PROGRESS: 503,
  MEMBERSHIP_CHANGE_IN_PROGRESS: 409,
  INVALID_MEMBERSHIP: 400,
  RETIRED_NODE_ID: 409,
  ALREADY_INITIALIZED: 409,
  NOT_INITIALIZED: 503,
  INVALID_TRANSFER_TARGET: 400,
  TRANSFER_TIMEOUT: 504,
  READ_ABORTED: 503,
  PROPOSAL_DROPPED: 503,
  OUTCOME_UNKNOWN: 504,
  SNAPSHOT_TOO_OLD: 409,
  SHUTTING_DOWN: 503,
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string; [detail: string]: unknown };
}

/** Map anything thrown to a status and body. Unknown errors are INTERNAL and never leak internals. */
export function toHttpError(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof ConfluxError) {
    return {
      status: HTTP_STATUS[err.code],
      body: { error: { ...err.details, code: err.code, message: err.message } },
    };
  }
  if (err instanceof RaftError) {
    const leader = err.leader ? { leader: err.leader } : {};
    return {
      status: HTTP_STATUS[err.code],
      body: { error: { ...leader, code: err.code, message: err.message } },
    };
  }
  return { status: 500, body: { error: { code: 'INTERNAL', message: 'internal error' } } };
}
