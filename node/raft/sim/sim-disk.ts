// A simulated node's storage: what survives a crash. Incoming snapshot chunks are staged in
// memory (a crash loses them, as it loses the transfer state in the core).

import type { Entry, HardState, Ready, SnapshotMeta } from '../types.js';

export class SimDisk {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  snapshot: { meta: SnapshotMeta; data: Uint8Array } | null = null;
  entries: Entry[] = [];
  private staging: Uint8Array[] = [];

  /** Make one Ready's durable part durable. Returns the bytes of a snapshot it installed, if any. */
  write(rd: Ready): Uint8Array | null {
    // A commit-only Ready is not written (Ready.mustSync): model a host that never writes it.
    if (!rd.mustSync) return null;
    if (rd.hardState) this.hardState = rd.hardState;
    for (const c of rd.snapshotChunks) {
      if (c.offset === 0) this.staging = [];
      this.staging.push(c.data);
    }
    let installed: Uint8Array | null = null;
    if (rd.snapshot) {
      installed = Buffer.concat(this.staging);
      this.staging = [];
      this.snapshot = { meta: rd.snapshot, data: installed };
      this.entries = [];
    }
    const first = rd.entries[0];
    if (first) {
      // Writing entry i replaces every durable entry from i on.
      this.entries.length = Math.max(0, first.index - (this.snapshot?.meta.index ?? 0) - 1);
      this.entries.push(...rd.entries);
    }
    return installed;
  }

  /** Keep a snapshot this node made itself and drop the entries it covers. */
  saveSnapshot(meta: SnapshotMeta, data: Uint8Array): void {
    this.snapshot = { meta, data };
    this.entries = this.entries.filter((e) => e.index > meta.index);
  }

  /** The bytes of an outgoing chunk, or null when that snapshot was superseded. */
  chunk(meta: SnapshotMeta, offset: number, length: number): Uint8Array | null {
    if (this.snapshot?.meta.id !== meta.id) return null;
    return this.snapshot.data.slice(offset, offset + length);
  }

  crash(): void {
    this.staging = [];
  }
}
