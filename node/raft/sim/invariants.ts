// Safety invariants the simulator checks after every event. Each records what the whole cluster
// has ever shown and fails the run on the first contradiction.

import type { RaftCore } from '../raft.js';
import type { Entry, NodeId } from '../types.js';
import { fingerprint } from './kv-machine.js';

export class Violation extends Error {
  override readonly name = 'Violation';
}

export class Invariants {
  private leaders = new Map<number, NodeId>();
  /** (index, term) -> the entry's fingerprint and the term before it: log matching by induction. */
  private entries = new Map<string, { fp: string; prevTerm: number }>();
  private committed = new Map<number, string>();
  /** The lowest term in which each index was seen committed: the term of the leader that committed it. */
  private commitTerm = new Map<number, number>();
  private maxCommitted = 0;
  private checkedCommit = new Map<NodeId, number>();
  private appliedDigest = new Map<number, number>();

  /** Election safety: at most one leader per term. Leader completeness on every new leader. */
  observeRole(core: RaftCore): void {
    if (core.role !== 'leader') return;
    const prior = this.leaders.get(core.term);
    if (prior === core.id) return;
    if (prior !== undefined) throw new Violation(`two leaders in term ${core.term}: ${prior} and ${core.id}`);
    this.leaders.set(core.term, core.id);
    // Leader completeness (§5.4): every entry committed in an earlier term is in the new leader's
    // log. (A leader of an older term may still win a late election; it can never commit.)
    const log = core.log;
    for (const [index, term] of this.commitTerm) {
      if (term >= core.term || index <= log.snapshotIndex()) continue;
      if (index > log.lastIndex()) {
        throw new Violation(
          `leader ${core.id} of term ${core.term} lacks entry ${index}, committed in term ${term}`,
        );
      }
      this.compareCommitted(core.id, index, log.entry(index));
    }
  }

  /** Log matching: the same (index, term) anywhere is the same entry with the same predecessor. */
  observeEntries(node: NodeId, entries: readonly Entry[], termAt: (i: number) => number | undefined): void {
    for (const e of entries) {
      const key = `${e.index}:${e.term}`;
      const fp = fingerprint(e);
      const prevTerm = termAt(e.index - 1) ?? -1;
      const seen = this.entries.get(key);
      if (!seen) {
        this.entries.set(key, { fp, prevTerm });
        continue;
      }
      if (seen.fp !== fp) throw new Violation(`log matching: ${node} has a different entry at ${key}`);
      if (prevTerm !== -1 && seen.prevTerm !== -1 && seen.prevTerm !== prevTerm) {
        throw new Violation(
          `log matching: ${node} has entry ${key} after term ${prevTerm}, elsewhere after ${seen.prevTerm}`,
        );
      }
    }
  }

  /** Committed entries never change, on any node, ever. */
  observeCommit(core: RaftCore): void {
    const from = Math.max(this.checkedCommit.get(core.id) ?? 0, core.log.snapshotIndex());
    const to = core.log.committed;
    for (let i = from + 1; i <= to; i++) {
      this.compareCommitted(core.id, i, core.log.entry(i));
      this.commitTerm.set(i, Math.min(this.commitTerm.get(i) ?? core.term, core.term));
    }
    this.checkedCommit.set(core.id, to);
    this.maxCommitted = Math.max(this.maxCommitted, to);
  }

  /** After a restart a node re-learns its commit index; re-check from its snapshot. */
  forget(node: NodeId): void {
    this.checkedCommit.delete(node);
  }

  private compareCommitted(node: NodeId, index: number, e: Entry | undefined): void {
    if (!e) throw new Violation(`${node} claims index ${index} committed but does not hold it`);
    const fp = fingerprint(e);
    const known = this.committed.get(index);
    if (known === undefined) this.committed.set(index, fp);
    else if (known !== fp)
      throw new Violation(`committed entry ${index} changed on ${node}: ${known} -> ${fp}`);
  }

  /** State machine safety: every node that applied index i holds the same state. */
  observeApplied(node: NodeId, index: number, digest: number): void {
    const known = this.appliedDigest.get(index);
    if (known === undefined) this.appliedDigest.set(index, digest);
    else if (known !== digest) throw new Violation(`${node} diverged: state after applying ${index} differs`);
  }

  stats(): { maxCommitted: number; terms: number } {
    return { maxCommitted: this.maxCommitted, terms: this.leaders.size };
  }
}
