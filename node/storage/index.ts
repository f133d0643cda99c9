// Public surface of the node's storage.

export { StorageCorruptionError, StorageError, type StorageErrorCode } from './errors.js';
export { nodeStorageHooks, reportOpenFailure, STORAGE_FAILED_EXIT_CODE } from './fail-stop.js';
export { loadOrCreateNodeId } from './identity.js';
export type { FaultInjector, FsyncTarget, StorageLogger } from './io.js';
export { readRecord, writeRecord } from './record-file.js';
export {
  DEFAULT_SEGMENT_BYTES,
  DiskStorage,
  openStorage,
  type StorageOptions,
  type StorageStats,
} from './storage.js';
