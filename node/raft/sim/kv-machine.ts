// The simulator's replicated state machine: a tiny key-value map. It keeps a rolling digest of
// everything applied, so "applied state identical" is one comparison per applied index.

import type { StateMachine } from '../raft-node.js';
import type { Entry, SnapshotMeta } from '../types.js';

export type KvCommand =
  | { op: 'put'; key: string; value: string; id: string }
  | { op: 'delete'; key: string; id: string }
  | { op: 'cas'; key: string; expected: string | null; value: string; id: string };

export interface KvResult {
  id: string;
  ok: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

export const encodeCommand = (c: KvCommand): Uint8Array => encoder.encode(JSON.stringify(c));
export const decodeCommand = (data: Uint8Array): KvCommand => JSON.parse(decoder.decode(data)) as KvCommand;

/** FNV-1a over a string, folded into the previous digest. */
function fold(digest: number, text: string): number {
  let h = digest ^ 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A stable fingerprint of an entry (what log matching and committed-entry checks compare). */
export function fingerprint(e: Entry): string {
  if (e.type === 'normal') return `${e.term}:n:${decoder.decode(e.data)}`;
  if (e.type === 'membership') return `${e.term}:m:${JSON.stringify(e.membership)}`;
  return `${e.term}:b`;
}

export class KvMachine {
  data = new Map<string, string>();
  applied = 0;
  digest = 0;

  apply(e: Entry): KvResult | null {
    if (e.index !== this.applied + 1) throw new Error(`apply of ${e.index} after ${this.applied}`);
    this.applied = e.index;
    this.digest = fold(this.digest, fingerprint(e));
    if (e.type !== 'normal') return null;
    const c = decodeCommand(e.data);
    const current = this.data.get(c.key) ?? null;
    let ok = true;
    if (c.op === 'put') this.data.set(c.key, c.value);
    else if (c.op === 'delete') this.data.delete(c.key);
    else if (current === c.expected) this.data.set(c.key, c.value);
    else ok = false;
    return { id: c.id, ok };
  }

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  snapshot(): Uint8Array {
    return encoder.encode(
      JSON.stringify({ applied: this.applied, digest: this.digest, data: [...this.data] }),
    );
  }

  static restore(bytes: Uint8Array): KvMachine {
    const s = JSON.parse(decoder.decode(bytes)) as {
      applied: number;
      digest: number;
      data: [string, string][];
    };
    const m = new KvMachine();
    m.applied = s.applied;
    m.digest = s.digest;
    m.data = new Map(s.data);
    return m;
  }
}

/** KvMachine behind the RaftNode's StateMachine interface, for host-level tests. */
export class KvStateMachine implements StateMachine<KvResult | null> {
  kv = new KvMachine();
  get applied(): number {
    return this.kv.applied;
  }
  apply(entry: Entry): KvResult | null {
    return this.kv.apply(entry);
  }
  snapshot(): { index: number; data: Uint8Array } {
    return { index: this.kv.applied, data: this.kv.snapshot() };
  }
  restore(_meta: SnapshotMeta, data: Uint8Array): void {
    this.kv = KvMachine.restore(data);
  }
}
