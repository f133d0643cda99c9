// A hand-written check of the frames that carry every write between peers (append with blank and
// normal entries, append-response, heartbeat, heartbeat-response), for the receive path. Running
// the zod schemas of message-schema.ts on each of them cost a follower about a tenth of its CPU
// per write (docs/performance.md, "Write path: peer side").
//
// The rule that keeps the boundary exactly as strict as before: `checkHotFrame` returns a value
// only for input the schema accepts, and returns what the schema would (a fresh object with the
// declared fields only, in the schema's order; byte fields as the same Uint8Array). Anything it is
// not sure about (another message type, a membership entry, a non-plain object, an unknown field
// value) returns null and the caller asks the schema, which then decides and explains. A property
// test (message-check.test.ts) compares the two on valid and malformed frames.

import type { Entry, Message } from '../raft/types.js';
import { isCount, isPlainObject } from '../shapes/plain.js';

/** nodeIdSchema: a string of 1 to 256 UTF-16 units. */
const isNodeId = (v: unknown): v is string => typeof v === 'string' && v.length >= 1 && v.length <= 256;

/** One blank or normal entry as entrySchema parses it, or null (membership entries included). */
function checkEntry(e: unknown): Entry | null {
  if (!isPlainObject(e)) return null;
  const { index, term, type } = e;
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 1 || !isCount(term)) return null;
  if (type === 'normal') {
    const data = e.data;
    return data instanceof Uint8Array ? { index, term, type, data } : null;
  }
  return type === 'blank' ? { index, term, type } : null;
}

function checkEntries(v: unknown): Entry[] | null {
  if (!Array.isArray(v)) return null;
  const out: Entry[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const entry = checkEntry(v[i]);
    if (entry === null) return null;
    out[i] = entry;
  }
  return out;
}

/**
 * The message the schema would parse `value` into, for the four frame types of the write path;
 * null when `value` is anything else or is not certainly valid (then the schema decides).
 */
export function checkHotFrame(value: unknown): Message | null {
  if (!isPlainObject(value)) return null;
  const { type, from, to, term } = value;
  if (!isNodeId(from) || !isNodeId(to) || !isCount(term)) return null;
  switch (type) {
    case 'append': {
      const { prevIndex, prevTerm, commit } = value;
      if (!isCount(prevIndex) || !isCount(prevTerm) || !isCount(commit)) return null;
      const entries = checkEntries(value.entries);
      return entries && { from, to, term, type, prevIndex, prevTerm, entries, commit };
    }
    case 'append-response': {
      const { index, reject, hintIndex, hintTerm } = value;
      if (!isCount(index) || typeof reject !== 'boolean' || !isCount(hintIndex) || !isCount(hintTerm))
        return null;
      return { from, to, term, type, index, reject, hintIndex, hintTerm };
    }
    case 'heartbeat': {
      const { commit, readSeq } = value;
      return isCount(commit) && isCount(readSeq) ? { from, to, term, type, commit, readSeq } : null;
    }
    case 'heartbeat-response': {
      const { readSeq, lastIndex } = value;
      return isCount(readSeq) && isCount(lastIndex) ? { from, to, term, type, readSeq, lastIndex } : null;
    }
    default:
      return null;
  }
}
