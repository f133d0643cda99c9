// Errors of the backup module. They are ConfluxErrors so the admin API maps them through the one
// catalogue (`node/errors.ts`); `problem` (also in `details`) says exactly what went wrong.

import { ConfluxError, type ConfluxErrorCode } from '../errors.js';

export type BackupProblem =
  /** The URI is malformed or of an unsupported scheme. */
  | 'invalid-uri'
  /** The metadata given to `uploadBackup` is invalid. */
  | 'invalid-metadata'
  /** No manifest at that URI: the backup does not exist or never completed. */
  | 'not-found'
  /** The manifest is unreadable, or the data does not match it (checksum, size). */
  | 'corrupt'
  /** The destination failed (I/O, network, S3 error). */
  | 'io';

const CODES: Record<BackupProblem, ConfluxErrorCode> = {
  'invalid-uri': 'INVALID_REQUEST',
  'invalid-metadata': 'INVALID_REQUEST',
  'not-found': 'BACKUP_NOT_FOUND',
  corrupt: 'BACKUP_CORRUPT',
  io: 'BACKUP_DESTINATION_ERROR',
};

export class BackupError extends ConfluxError {
  constructor(
    readonly problem: BackupProblem,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(CODES[problem], message, { problem });
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

/** A one-line description of an unknown thrown value, for wrapping it in a BackupError. */
export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
