// Fail-stop on a storage failure. After a write or fsync failed, the kernel may have dropped the
// dirty pages, so retrying the fsync could "succeed" over lost data (PostgreSQL's fsyncgate). A
// node in that state must not acknowledge, vote or serve reads from memory: it exits, and a
// restart (once the disk is fixed) recovers from what actually reached the disk.

import { errnoCode, StorageCorruptionError, StorageError } from './errors.js';
import { FAULT_INJECT_ENV, faultInjectorFromEnv } from './fault-inject.js';
import type { FaultInjector, StorageLogger } from './io.js';

/** sysexits.h EX_IOERR: the exit status of a node stopped by a storage failure. */
export const STORAGE_FAILED_EXIT_CODE = 74;

export function failStop(
  err: StorageError,
  logger: StorageLogger,
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  logger.error(
    { code: err.code, errno: errnoCode(err.cause), exitCode: STORAGE_FAILED_EXIT_CODE },
    `${err.code}: ${err.message}. Stopping the node now (fail-stop)`,
  );
  exit(STORAGE_FAILED_EXIT_CODE);
}

/**
 * What the node server adds to the storage options: fail-stop on a failure, and the testing-only
 * fault injector when CONFLUX_FAULT_INJECT asks for one (announced loudly).
 */
export function nodeStorageHooks(
  env: NodeJS.ProcessEnv,
  logger: StorageLogger,
): { onFailure(err: StorageError): void; faults?: FaultInjector } {
  const onFailure = (err: StorageError) => failStop(err, logger);
  const injected = faultInjectorFromEnv(env);
  if (!injected) return { onFailure };
  logger.warn(
    { [FAULT_INJECT_ENV]: injected.spec },
    `${FAULT_INJECT_ENV} is set: disk faults are injected on purpose; never use this in production`,
  );
  return { onFailure, faults: injected.faults };
}

/** Log why the data directory cannot be opened with its code, then pass the error on. */
export function reportOpenFailure(err: unknown, logger: StorageLogger): never {
  if (err instanceof StorageCorruptionError) {
    logger.error({ code: err.code, file: err.file, offset: err.offset }, `${err.code}: ${err.message}`);
  } else if (err instanceof StorageError) {
    logger.error({ code: err.code }, `${err.code}: ${err.message}`);
  }
  throw err;
}
