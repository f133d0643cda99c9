// Structural checks of a peer's message: what must hold of any message a correct peer sends,
// whatever the receiver's state. The transport runs them on every message after its schema
// check and before the engine sees it (the schema already ensures types, non-negative safe
// integers and entry indexes ≥ 1). What depends on the receiver's state (a second leader in its
// term) is RaftCore.step's to refuse.
//
// The engine relies on these: RaftLog.tryAppend assumes an append's entries are consecutive from
// prevIndex + 1 (an entry placed anywhere else leaves a gap in the log, which storage then refuses
// at the next start), and a follower commits at most prevIndex + entries.length from an append, the
// prefix it has just verified against the leader's (prevIndex, prevTerm).

import type { Message } from './types.js';

/** Why `m` cannot come from a correct peer, or null when it is well-formed. */
export function messageProblem(m: Message): string | null {
  if (m.from === m.to) return 'addressed to its own sender';
  switch (m.type) {
    case 'vote':
      // A candidate's term is above every term in its log (a pre-vote asks for the next one).
      if (m.term === 0) return 'a vote request in term 0';
      if (m.lastLogTerm > m.term) return `lastLogTerm ${m.lastLogTerm} is above the term ${m.term}`;
      if (m.lastLogIndex === 0 && m.lastLogTerm !== 0) return 'an empty log with a last term';
      return null;
    case 'append':
      return appendProblem(m);
    case 'append-response':
      if (m.reject && m.hintIndex > m.index) return `hintIndex ${m.hintIndex} beyond the rejected ${m.index}`;
      if (m.hintTerm > m.term) return `hintTerm ${m.hintTerm} is above the term ${m.term}`;
      return null;
    case 'heartbeat':
    case 'timeout-now':
      return m.term === 0 ? `a ${m.type} in term 0` : null;
    case 'snapshot': {
      const { meta } = m;
      if (m.term === 0) return 'a snapshot in term 0';
      if (meta.term > m.term) return `snapshot term ${meta.term} is above the term ${m.term}`;
      if (meta.index === 0 && meta.term !== 0) return 'a snapshot at index 0 with a term';
      if (m.data.byteLength !== m.length)
        return `chunk declares ${m.length} bytes but carries ${m.data.byteLength}`;
      const end = m.offset + m.length;
      if (end > meta.sizeBytes) return `chunk ends at ${end}, beyond the snapshot's ${meta.sizeBytes} bytes`;
      if (m.done !== (end === meta.sizeBytes)) return `chunk ending at ${end} has done=${m.done}`;
      return null;
    }
    default:
      return null;
  }
}

function appendProblem(m: Extract<Message, { type: 'append' }>): string | null {
  if (m.term === 0) return 'an append in term 0';
  if (m.prevTerm > m.term) return `prevTerm ${m.prevTerm} is above the term ${m.term}`;
  if (m.prevIndex === 0 && m.prevTerm !== 0) return 'prevIndex 0 with a term';
  // A log's terms never decrease, and a leader holds no entry of a term above its own.
  let previousTerm = m.prevTerm;
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i] as (typeof m.entries)[number];
    const expected = m.prevIndex + 1 + i;
    if (e.index !== expected) return `entry ${i} has index ${e.index}, expected ${expected}`;
    if (e.term === 0) return `entry ${e.index} has term 0`;
    if (e.term > m.term) return `entry ${e.index} has term ${e.term}, above the term ${m.term}`;
    if (e.term < previousTerm) return `entry ${e.index} has term ${e.term}, below the term before it`;
    previousTerm = e.term;
  }
  return null;
}
