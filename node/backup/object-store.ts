// The few operations backup needs from a destination, over flat names inside it (no '/').
// Implemented by `file.ts` (a local directory) and `s3.ts` (a bucket prefix).

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
  /** Read a small object; undefined when it does not exist. */
  getBytes(name: string): Promise<Uint8Array | undefined>;
  /** Read an object as chunks; undefined when it does not exist. */
  getStream(name: string): Promise<AsyncIterable<Uint8Array> | undefined>;
  /** Names of the completed objects (order unspecified). */
  list(): Promise<string[]>;
  /** Delete an object; deleting a missing object is not an error. */
  delete(name: string): Promise<void>;
}
