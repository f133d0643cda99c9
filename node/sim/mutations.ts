// Deliberately broken variants of the real stack, injected by the simulator only, each to prove
// that a checker catches the class of bug it stands for (`npm run sim -- --mutation NAME`).
// None of them edits a product default: they are subclasses or options of the real code.

import { SnapshotDecoder } from '../kv/snapshot-decoder.js';
import { encodeSnapshotBuffer } from '../kv/snapshot-format.js';
import { KvStore } from '../kv/store.js';
import type { KeyValue } from '../kv/types.js';
import type { WatchListener, WatchOptions } from '../kv/watch.js';
import type { Mutation as CoreMutation } from '../raft/raft.js';
import type { SnapshotMeta } from '../raft/types.js';

export const STACK_MUTATIONS = {
  'bom-snapshot':
    'the snapshot decoder drops a leading U+FEFF from keys (a TextDecoder without ignoreBOM): replicas diverge after an install',
  'watch-skip': 'a watch silently skips one event of its stream',
  'transfer-keeps-joint':
    'a timed-out leadership transfer leaves the joint configuration in place until the next proposal',
  'no-fsync': 'the storage never fsyncs: a power loss loses acknowledged writes and votes',
  'json-drops-bom':
    'JSON answers of the HTTP API drop a leading U+FEFF from keys and values (a decoder without ignoreBOM)',
} as const;

export type StackMutation = keyof typeof STACK_MUTATIONS;

export const isStackMutation = (m: string): m is StackMutation => m in STACK_MUTATIONS;

/** The core mutation a stack mutation turns on, if any. */
export function coreMutations(ms: ReadonlySet<StackMutation>): Set<CoreMutation> {
  return new Set(ms.has('transfer-keeps-joint') ? (['transfer-keeps-joint'] as CoreMutation[]) : []);
}

/**
 * The decoder bug of an earlier release: keys came back without a leading U+FEFF, as a UTF-8
 * TextDecoder without `ignoreBOM` returns them. Decoded with the real decoder, then the keys are
 * stripped the way that decoder stripped them (the last of two keys that collide wins, as a map
 * built from the records would have it), then restored through the real restore.
 */
class BomDroppingKvStore extends KvStore {
  override restore(meta: SnapshotMeta, data: Uint8Array): void {
    const kvs: KeyValue[] = [];
    const decoder = new SnapshotDecoder({ onRecord: (kv) => kvs.push(kv) });
    decoder.push(data);
    const { header } = decoder.finish();
    const byKey = new Map<string, KeyValue>();
    for (const kv of kvs) {
      const key = kv.key.startsWith('\uFEFF') ? kv.key.slice(1) : kv.key;
      if (key.length > 0) byKey.set(key, { ...kv, key });
    }
    const stripped = [...byKey.values()].sort((a, b) =>
      Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)),
    );
    super.restore(meta, encodeSnapshotBuffer({ ...header, keyCount: stripped.length }, stripped));
  }
}

/** Every watcher loses the second event delivered to it. */
class SkippingWatchKvStore extends KvStore {
  override watch(
    filter: Parameters<KvStore['watch']>[0],
    fromRevision: number | undefined,
    listener: WatchListener,
    opts?: WatchOptions,
  ): () => void {
    let delivered = 0;
    return super.watch(filter, fromRevision, (e) => (++delivered === 2 ? undefined : listener(e)), opts);
  }
}

export function kvStoreClass(ms: ReadonlySet<StackMutation>): typeof KvStore {
  if (ms.has('bom-snapshot')) return BomDroppingKvStore;
  if (ms.has('watch-skip')) return SkippingWatchKvStore;
  return KvStore;
}
