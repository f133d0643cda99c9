// Streaming sha256 + byte count: on upload to compute the manifest's checksum without buffering,
// on download to verify the data against the manifest as it is consumed.

import { createHash } from 'node:crypto';
import { BackupError } from './errors.js';

export interface Digest {
  bytes: number;
  sha256: string;
}

/** Passes `source` through; `result()` is valid once the source is exhausted. */
export function digestingStream(source: AsyncIterable<Uint8Array>): {
  stream: AsyncGenerator<Uint8Array>;
  result: () => Digest;
} {
  const hash = createHash('sha256');
  let bytes = 0;
  let done = false;
  async function* stream(): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      hash.update(chunk);
      bytes += chunk.byteLength;
      yield chunk;
    }
    done = true;
  }
  return {
    stream: stream(),
    result: () => {
      if (!done) throw new Error('digest read before the stream ended');
      return { bytes, sha256: hash.digest('hex') };
    },
  };
}

/**
 * Passes `source` through, checking it against `expected`. Throws BackupError 'corrupt' as soon as
 * there are too many bytes, or at the end (on the final `next()`, after the last chunk) when there
 * are too few or the checksum differs. So a consumer that commits only after the loop completes
 * (as `KvStore.restoreFromStream` does) never commits unverified data.
 */
export async function* verifyingStream(
  source: AsyncIterable<Uint8Array>,
  expected: Digest,
  uri: string,
): AsyncGenerator<Uint8Array> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of source) {
    bytes += chunk.byteLength;
    if (bytes > expected.bytes) {
      throw new BackupError(
        'corrupt',
        `backup ${uri} is longer than its manifest says (${expected.bytes} bytes)`,
      );
    }
    hash.update(chunk);
    yield chunk;
  }
  if (bytes !== expected.bytes) {
    throw new BackupError('corrupt', `backup ${uri} is truncated: ${bytes} of ${expected.bytes} bytes`);
  }
  const sha256 = hash.digest('hex');
  if (sha256 !== expected.sha256) {
    throw new BackupError(
      'corrupt',
      `backup ${uri} is corrupt: sha256 ${sha256}, manifest says ${expected.sha256}`,
    );
  }
}
