// The reference replica of one cluster lineage (a cluster and the clusters force-new-cluster
// makes of it; a restore from a backup starts a new lineage). Whatever node applies an index
// first hands it to a reference KvStore, so the reference holds the state at every index any node
// reached. Checks, each on every node:
// - state machine safety: the entry applied at an index is the same on every node (term, type,
//   bytes), and so is its result;
// - replica byte-equality: the encoded state (KvStore snapshot bytes) at every CHECKPOINT-th index
//   equals the reference's, and the state a node restores from a snapshot re-encodes to exactly
//   the bytes the snapshot's maker had at that index;
// - the reference's own watch records every event of every revision, for the watch checker.
// Every index up to the highest applied is applied by some node (a snapshot is made by applying),
// so the reference never has a gap.

import type { KvStore } from '../kv/store.js';
import type { KvApplyResult, WatchEvent } from '../kv/types.js';
import type { Entry, SnapshotMeta } from '../raft/types.js';
import { Violation } from './world.js';

export const CHECKPOINT = 16;

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** A stable text form of apply results and events (bytes as hex). */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? `0x${hex(v)}` : v));
}

/** Length and trailer of an encoded state: the trailer is the CRC-32 of every byte before it. */
export const stateDigest = (bytes: Uint8Array): string =>
  `${bytes.length}:${hex(bytes.subarray(Math.max(0, bytes.length - 4)))}`;

interface Canon {
  term: number;
  type: Entry['type'];
  data: Uint8Array | null;
  result: string;
}

export class Oracle {
  private readonly entries = new Map<number, Canon>();
  private readonly checkpoints = new Map<number, string>();
  /** Digest of the bytes a snapshot's maker produced, by index. */
  private readonly made = new Map<number, string>();
  /** Every event of every data-changing revision, in revision order (complete once settled). */
  readonly events: WatchEvent[] = [];
  /** The revisions that changed data, ascending (for the compaction check), kept at apply. */
  readonly dataRevisions: number[] = [];
  /** Per revision: the writes, for checking serializable reads. */
  readonly writesAt = new Map<number, Map<string, string | null>>();
  checks = { applies: 0, checkpoints: 0, restores: 0 };
  private readonly leaders = new Map<number, string>();

  constructor(
    readonly name: string,
    readonly ref: KvStore,
    /** The lineage starts here (a restored backup's index), 0 for a new cluster. */
    readonly base: number,
  ) {
    ref.watch({ prefix: '' }, ref.revision + 1, (e) => {
      this.events.push(e);
      const w = this.writesAt.get(e.revision) ?? new Map<string, string | null>();
      this.writesAt.set(e.revision, w);
      w.set(e.kv.key, e.type === 'put' ? hex(e.kv.value) : null);
    });
  }

  get applied(): number {
    return this.ref.applied;
  }

  onApply(node: string, kv: KvStore, entry: Entry, result: KvApplyResult): void {
    this.checks.applies++;
    const i = entry.index;
    if (i === this.ref.applied + 1) {
      const r = this.ref.apply(entry);
      // Kept here, not from the watch: the watch delivers on a later microtask.
      if (this.ref.revision === i) this.dataRevisions.push(i);
      this.entries.set(i, {
        term: entry.term,
        type: entry.type,
        data: entry.type === 'normal' ? entry.data : null,
        result: canonical(r),
      });
      if (i % CHECKPOINT === 0) this.checkpoints.set(i, stateDigest(this.ref.snapshot().data));
    } else if (i > this.ref.applied) {
      throw new Violation(
        `${this.name}: ${node} applied index ${i} but no node applied ${this.ref.applied + 1} before it`,
      );
    }
    const c = this.entries.get(i);
    if (!c) return; // before the lineage's base
    const data = entry.type === 'normal' ? entry.data : null;
    if (
      c.term !== entry.term ||
      c.type !== entry.type ||
      (data && c.data && Buffer.compare(data, c.data) !== 0)
    ) {
      throw new Violation(
        `state machine safety: ${node} applied ${entry.type}@${entry.term} at index ${i}, another node ${c.type}@${c.term}`,
      );
    }
    const mine = canonical(result);
    if (mine !== c.result) {
      throw new Violation(
        `replicas diverge: applying index ${i} gave ${mine} on ${node}, ${c.result} on the reference`,
      );
    }
    if (i % CHECKPOINT === 0) this.compareState(node, kv, i, this.checkpoints.get(i), 'the reference');
  }

  /** Election safety: at most one leader per term. */
  onLeader(node: string, term: number): void {
    const other = this.leaders.get(term);
    if (other === undefined) this.leaders.set(term, node);
    else if (other !== node)
      throw new Violation(`election safety: ${other} and ${node} both lead term ${term}`);
  }

  /** A node made a snapshot at `index` with these bytes. */
  onSnapshot(node: string, index: number, data: Uint8Array): void {
    const d = stateDigest(data);
    const cp = this.checkpoints.get(index);
    if (cp !== undefined && cp !== d) {
      throw new Violation(
        `replicas diverge: ${node}'s snapshot at ${index} differs from the reference state`,
      );
    }
    const prior = this.made.get(index);
    if (prior !== undefined && prior !== d) {
      throw new Violation(`replicas diverge: two snapshots at index ${index} hold different states`);
    }
    this.made.set(index, d);
  }

  /** A node replaced its state by a snapshot's (an install, a restart, a restore). */
  onRestore(node: string, kv: KvStore, meta: SnapshotMeta): void {
    this.checks.restores++;
    const expected = this.made.get(meta.index) ?? this.checkpoints.get(meta.index);
    this.compareState(node, kv, meta.index, expected, 'the snapshot maker');
  }

  /** Record the state a backup holds (the maker of a restored lineage's first snapshot). */
  recordMade(index: number, data: Uint8Array): void {
    this.made.set(index, stateDigest(data));
  }

  private compareState(node: string, kv: KvStore, index: number, expected: string | undefined, who: string) {
    if (expected === undefined) return;
    this.checks.checkpoints++;
    const { data } = kv.snapshot();
    const mine = stateDigest(data);
    if (mine !== expected) {
      throw new Violation(
        `replica byte-equality: ${node}'s state at index ${index} encodes to ${mine}, ${who}'s to ${expected}`,
      );
    }
  }

  /** The write of `key` at revision `rev` as the reference saw it (undefined: no such write). */
  writeAt(rev: number, key: string): string | null | undefined {
    return this.writesAt.get(rev)?.get(key);
  }

  /** How many data revisions are ≥ from and ≤ to. */
  dataRevisionsBetween(from: number, to: number): number {
    const lo = lowerBound(this.dataRevisions, from);
    const hi = lowerBound(this.dataRevisions, to + 1);
    return Math.max(0, hi - lo);
  }
}

function lowerBound(xs: number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((xs[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
