// Starting a Raft node in a node process: `RaftNode.start` after installing the recovered snapshot
// with the state machine's `restoreAsync` (in slices, the event loop free in between:
// docs/ARCHITECTURE.md §5) rather than with `restore` in one piece in RaftNode's constructor. At
// a million keys the install takes seconds, and metrics, timers and the peer port keep running.

import { RaftNode, type RaftNodeOptions } from './raft-node.js';
import type { RaftStorage } from './raft-node-api.js';
import type { SnapshotMeta } from './types.js';

export async function openRaftNode<R>(opts: RaftNodeOptions<R>): Promise<RaftNode<R>> {
  const snap = opts.state?.snapshot;
  if (snap && opts.stateMachine.restoreAsync && opts.stateMachine.applied < snap.index) {
    const data = await readInSlices(opts.storage, snap);
    if (!data) throw new Error(`snapshot ${snap.id} is missing from storage`);
    await opts.stateMachine.restoreAsync(snap, data);
  }
  return RaftNode.start(opts);
}

/** 8 MiB: a read of that much takes a few ms; 165 MiB (1M keys) in one read stalls for 0.1 s. */
const READ_SLICE_BYTES = 8 << 20;

/** The whole snapshot, read in slices with a turn of the event loop between them. */
async function readInSlices(storage: RaftStorage, snap: SnapshotMeta): Promise<Uint8Array | null> {
  if (snap.sizeBytes <= READ_SLICE_BYTES) return storage.readSnapshotChunk(snap, 0, snap.sizeBytes);
  const data = Buffer.allocUnsafe(snap.sizeBytes);
  for (let at = 0; at < snap.sizeBytes; ) {
    if (at > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const piece = storage.readSnapshotChunk(snap, at, READ_SLICE_BYTES);
    if (!piece || piece.length === 0) return null;
    data.set(piece, at);
    at += piece.length;
  }
  return data;
}
