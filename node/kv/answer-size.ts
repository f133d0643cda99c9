// What key-values and events cost in an answer, counted on the stored bytes before any encoding
// (so a 16 MiB budget is decided without building the JSON). The JSON is larger by a bounded
// factor: base64 adds a third, and escaped control characters in UTF-8 text up to 6 bytes each.

import type { KvCommand, Op } from './commands.js';
import { utf8Bytes } from './keys.js';
import type { KeyValue, OpResponse, WatchEvent } from './types.js';

/** Field names, revisions, quotes and separators of one key-value in JSON. */
export const KV_ANSWER_OVERHEAD_BYTES = 100;

export const kvAnswerBytes = (kv: KeyValue): number =>
  utf8Bytes(kv.key) + kv.value.byteLength + KV_ANSWER_OVERHEAD_BYTES;

/** An event carries its key-value and, for overwrites and deletes, the previous one. */
export const eventAnswerBytes = (e: WatchEvent): number =>
  kvAnswerBytes(e.kv) + (e.prevKv ? kvAnswerBytes(e.prevKv) : 0);

/**
 * The largest answer a transaction could give (its gets' key-values and its writes' previous
 * ones), estimated against the state now, over both branches: counted without reading a value,
 * so a transaction asking for far too much is refused before it is proposed.
 */
export function txnAnswerEstimate(
  cmd: Extract<KvCommand, { type: 'txn' }>,
  current: (key: string) => number | undefined,
): number {
  const branch = (ops: Op[]): number => {
    // What earlier ops of the branch wrote: gets see them (undefined: deleted).
    const written = new Map<string, number | undefined>();
    let bytes = 0;
    for (const op of ops) {
      const now = written.has(op.key) ? written.get(op.key) : current(op.key);
      if (now !== undefined) bytes += utf8Bytes(op.key) + now + KV_ANSWER_OVERHEAD_BYTES;
      if (op.type === 'put') written.set(op.key, op.value.byteLength);
      else if (op.type === 'delete') written.set(op.key, undefined);
    }
    return bytes;
  };
  return Math.max(branch(cmd.success), branch(cmd.failure));
}

/** The answer size of a transaction's results, exactly as kvAnswerBytes counts them. */
export function txnAnswerBytes(responses: readonly OpResponse[]): number {
  let bytes = 0;
  for (const r of responses) {
    const kv = r.type === 'get' ? r.kv : r.prev;
    if (kv) bytes += kvAnswerBytes(kv);
  }
  return bytes;
}
