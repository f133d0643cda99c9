// The follower's half of a chunked snapshot transfer. Chunks must arrive in order; a transfer
// resumes only for the same snapshot id (two nodes' snapshots at one index may differ in bytes),
// and a chunk of another snapshot at offset 0 starts over.

import type { Message, SnapshotChunk, SnapshotMeta } from './types.js';

export type ChunkOutcome =
  /** Out of order or of an unknown snapshot: tell the leader where to continue (0 on reject). */
  | { kind: 'resend'; nextOffset: number; reject: boolean }
  /** Stage the chunk; `complete` when it was the last one. */
  | { kind: 'accepted'; chunk: SnapshotChunk; nextOffset: number; complete: boolean };

export class SnapshotReceiver {
  private incoming: { meta: SnapshotMeta; next: number } | null = null;

  receive(m: Extract<Message, { type: 'snapshot' }>): ChunkOutcome {
    const { meta } = m;
    if (m.offset === 0 && this.incoming?.meta.id !== meta.id) this.incoming = { meta, next: 0 };
    const incoming = this.incoming;
    if (!incoming || incoming.meta.id !== meta.id) return { kind: 'resend', nextOffset: 0, reject: true };
    if (m.offset !== incoming.next) return { kind: 'resend', nextOffset: incoming.next, reject: false };
    incoming.next += m.length;
    if (m.done) this.incoming = null;
    return {
      kind: 'accepted',
      chunk: { meta, offset: m.offset, data: m.data },
      nextOffset: incoming.next,
      complete: m.done,
    };
  }

  reset(): void {
    this.incoming = null;
  }
}
