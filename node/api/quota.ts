// The storage quota (etcd's NOSPACE alarm), decided on the leader right before a command is
// proposed: never at apply, which must not depend on a node's configuration (kv/validate.ts).
//
// The alarm is on while the stored bytes (KvStore.bytes) are at or above the quota. Then a write
// that would grow them (a put of a new or larger value, a transaction whose larger branch grows
// them) is refused with NO_SPACE; deletes, and writes that keep or shrink the data, still pass.
// Growth admitted but not yet applied counts as used, so concurrent writers cannot overshoot the
// quota by more than the one write that reaches it (at most --max-body-bytes). Nothing latches:
// once deletes bring the stored bytes back below the quota, the alarm is off and writes pass.

import { ConfluxError } from '../errors.js';
import type { KvCommand } from '../kv/commands.js';
import { writeGrowth } from '../kv/quota.js';
import type { KvStore } from '../kv/store.js';

const MiB = 1024 * 1024;

/**
 * The quota when none is configured: 512 MiB, or less under a memory limit (a cgroup's, as
 * process.constrainedMemory reports it), so that the members refuse writes before the limit
 * kills them all at once (they hold the same data, so they reach it together). Measured: a
 * node's RSS is about 140 MiB plus 2.2 times the stored bytes (the values, the Raft log since
 * the last snapshot, the watch history); the quota leaves 192 MiB and a factor of 2.5.
 */
export function defaultQuotaBytes(memoryLimit: number | undefined): number {
  const ceiling = 512 * MiB;
  if (
    memoryLimit === undefined ||
    !Number.isFinite(memoryLimit) ||
    memoryLimit <= 0 ||
    memoryLimit >= 2 ** 53
  )
    return ceiling;
  return Math.max(16 * MiB, Math.min(ceiling, Math.floor((memoryLimit - 192 * MiB) / 2.5)));
}

export class StorageQuota {
  /** Growth of admitted writes not yet applied (or failed). */
  private inFlight = 0;

  constructor(
    private readonly kv: Pick<KvStore, 'bytes' | 'valueBytes'>,
    readonly quotaBytes: number,
  ) {}

  get usedBytes(): number {
    return this.kv.bytes;
  }

  get alarm(): boolean {
    return this.kv.bytes >= this.quotaBytes;
  }

  /**
   * Admit `cmd` for proposal, or throw NO_SPACE. Call the returned release once the write was
   * applied or failed.
   */
  admit(cmd: KvCommand): () => void {
    const growth = writeGrowth(cmd, (key) => this.kv.valueBytes(key));
    if (growth <= 0) return () => {};
    const used = this.kv.bytes + this.inFlight;
    if (used >= this.quotaBytes) {
      throw new ConfluxError(
        'NO_SPACE',
        `the storage quota is used up (${used} of ${this.quotaBytes} bytes): writes that add data ` +
          'are refused until deletes free space',
        { usedBytes: used, quotaBytes: this.quotaBytes },
      );
    }
    this.inFlight += growth;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight -= growth;
    };
  }
}
