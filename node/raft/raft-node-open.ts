// Starting a Raft node in a node process: `RaftNode.start` after installing the recovered snapshot
// with the state machine's `restoreAsync` (in slices, the event loop free in between:
// docs/ARCHITECTURE.md §5) rather than with `restore` in one piece in RaftNode's constructor. At
// a million keys the install takes seconds, and metrics, timers and the peer port keep running.

import { RaftNode, type RaftNodeOptions } from './raft-node.js';

export async function openRaftNode<R>(opts: RaftNodeOptions<R>): Promise<RaftNode<R>> {
  const snap = opts.state?.snapshot;
  if (snap && opts.stateMachine.restoreAsync && opts.stateMachine.applied < snap.index) {
    const data = await opts.storage.readSnapshot(snap);
    if (!data) throw new Error(`snapshot ${snap.id} is missing from storage`);
    await opts.stateMachine.restoreAsync(snap, data);
  }
  return RaftNode.start(opts);
}
