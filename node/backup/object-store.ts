// The few operations backup needs from a destination, over flat names inside it (no '/').
// Implemented by `file.ts` (a local directory) and `s3.ts` (a bucket prefix).

import { BackupError } from './errors.js';

/** Largest small object (a manifest) getBytes reads; a real manifest is well under 4 KiB. */
export const MAX_SMALL_OBJECT_BYTES = 1024 * 1024;

export interface ObjectStore {
  /** The URI of an object (whether or not it exists). */
  uriOf(name: string): string;
  /**
   * Stream `body` into object `name`. Atomic: the object appears complete or not at all. When the
   * body throws or the write fails, the partial upload is discarded and the error is rethrown.
   */
  putStream(name: string, body: AsyncIterable<Uint8Array>): Promise<void>;
  /** Write a small object atomically. */
  putBytes(name: string, body: Uint8Array): Promise<void>;
  /**
   * Read a small object; undefined when it does not exist. More than MAX_SMALL_OBJECT_BYTES, or
   * (file://) anything but a regular file, is a BackupError 'corrupt'.
   */
  getBytes(name: string): Promise<Uint8Array | undefined>;
  /** Read an object as chunks; undefined when it does not exist. */
  getStream(name: string): Promise<AsyncIterable<Uint8Array> | undefined>;
  /** Names of the completed objects (order unspecified). */
  list(): Promise<string[]>;
  /** Delete an object; deleting a missing object is not an error. */
  delete(name: string): Promise<void>;
}

/** The refusal of a small object over MAX_SMALL_OBJECT_BYTES (`bytes`: what was seen of it). */
export function tooLarge(uri: string, bytes: number): BackupError {
  return new BackupError(
    'corrupt',
    `${uri} holds more than ${MAX_SMALL_OBJECT_BYTES} bytes (at least ${bytes}): not a manifest`,
  );
}
