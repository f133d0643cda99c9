// The storage layer's refusals. All of them are start-up or fatal errors: the node stops and an
// operator looks at the data directory, so none of them maps to a client-facing HTTP status.

export const STORAGE_ERROR_CODES = [
  /** A checksum, frame or cross-record check failed: the data cannot be trusted. */
  'STORAGE_CORRUPTION',
  /** Another process (or another opener in this one) holds the data directory. */
  'STORAGE_LOCKED',
  /** An earlier write or fsync failed; the on-disk state is unknown until the node restarts. */
  'STORAGE_FAILED',
  'STORAGE_CLOSED',
  /** The data directory belongs to another node id than the one requested. */
  'NODE_ID_MISMATCH',
  'INVALID_NODE_ID',
  'CORRUPT_RECORD',
  /** CONFLUX_FAULT_INJECT (testing only) does not parse. */
  'FAULT_INJECTION_INVALID',
] as const;

export type StorageErrorCode = (typeof STORAGE_ERROR_CODES)[number];

export class StorageError extends Error {
  override readonly name: string = 'StorageError';
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * What an operator does about corrupt data: the node cannot prove it still holds every vote and
 * acknowledged entry, so it must not rejoin with that data (README, "Disk faults").
 */
export const CORRUPTION_REMEDY =
  'the node refuses to start on data it cannot trust. Keep a copy of the data directory for ' +
  'inspection, remove this node from the cluster (DELETE /_cluster/nodes/{id}), wipe its data ' +
  'directory and add it back as a new member (POST /_cluster/nodes); it copies the data from the others';

/** Names the file and the byte offset where the bad data starts, so an operator can inspect it. */
export class StorageCorruptionError extends StorageError {
  override readonly name = 'StorageCorruptionError';
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly detail: string,
  ) {
    super(
      'STORAGE_CORRUPTION',
      `${file} is corrupt at byte offset ${offset}: ${detail}; ${CORRUPTION_REMEDY}`,
    );
  }
}

/** The `code` of a Node system error (ENOENT, EEXIST, …), if `err` is one. */
export function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}
