// Errors of the key-value state machine. Refusals a client can see are ConfluxErrors from the one
// catalogue in `node/errors.ts` (so `node/api/http-errors.ts` maps them: COMPACTED -> 410, ...).
// A broken snapshot is not a client refusal but a storage or transfer fault, so it has its own
// class that names exactly what was wrong.

import { ConfluxError } from '../errors.js';

/**
 * A watch or long-poll asked for history this node no longer keeps. `oldestRevision` is the
 * oldest revision a new watch may start from; the API answers 410 with it.
 */
export class CompactedError extends ConfluxError {
  constructor(
    readonly requestedRevision: number,
    readonly oldestRevision: number,
  ) {
    super(
      'COMPACTED',
      `revision ${requestedRevision} is compacted (the oldest revision kept is ${oldestRevision}): ` +
        'the events in between are gone, so read the keys again and watch from the revision of that read',
      { oldestRevision },
    );
  }
}

export type SnapshotFormatProblem =
  | 'magic'
  | 'version'
  | 'truncated'
  | 'trailing-bytes'
  | 'checksum'
  | 'malformed'
  | 'index-mismatch';

/** Snapshot bytes that cannot be restored. The store is left untouched when this is thrown. */
export class SnapshotFormatError extends Error {
  override readonly name = 'SnapshotFormatError';
  constructor(
    readonly problem: SnapshotFormatProblem,
    message: string,
  ) {
    super(`invalid kv snapshot (${problem}): ${message}`);
  }
}
