// Cross-key real-time order of revisions: if operation a returned before operation b was called,
// b's revision is at least a's, and above it when b created a revision. Linearizable reads record
// the store revision they read at, so a stale read of any key shows here even when the per-key
// check cannot see it.

import type { RevisionOp } from './workload.js';

export function revisionOrderProblem(ops: readonly RevisionOp[]): string | null {
  const byReturn = [...ops].sort((a, b) => a.return - b.return);
  const byCall = [...ops].sort((a, b) => a.call - b.call);
  let i = 0;
  let max: RevisionOp | null = null;
  for (const b of byCall) {
    while (i < byReturn.length && (byReturn[i] as RevisionOp).return < b.call) {
      const a = byReturn[i] as RevisionOp;
      if (!max || a.rev > max.rev) max = a;
      i++;
    }
    if (max && (b.changed ? b.rev <= max.rev : b.rev < max.rev)) {
      return (
        `revision order: ${b.what} (called at ${b.call}) has revision ${b.rev}, but ${max.what} ` +
        `returned revision ${max.rev} at ${max.return}, before it`
      );
    }
  }
  return null;
}
