// Helpers for the kv tests: feed a store entries the way the Raft node does (index applied + 1).

import type { Entry } from '../raft/types.js';
import { encodeCommand, type KvCommand } from './commands.js';
import type { KvStore } from './store.js';
import type { KvApplyResult } from './types.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

export const bytes = (s: string): Uint8Array => enc.encode(s);
export const text = (b: Uint8Array | undefined): string | undefined => (b ? dec.decode(b) : undefined);

export const normal = (index: number, data: Uint8Array, term = 1): Entry => ({
  type: 'normal',
  index,
  term,
  data,
});

/** Apply one command as the next entry. */
export const run = (store: KvStore, cmd: KvCommand): KvApplyResult =>
  store.apply(normal(store.applied + 1, encodeCommand(cmd)));

export const put = (store: KvStore, key: string, value: string, expectModRevision?: number): KvApplyResult =>
  run(
    store,
    expectModRevision === undefined
      ? { type: 'put', key, value: bytes(value) }
      : { type: 'put', key, value: bytes(value), expectModRevision },
  );

export const del = (store: KvStore, key: string): KvApplyResult => run(store, { type: 'delete', key });

export const blank = (store: KvStore): KvApplyResult =>
  store.apply({ type: 'blank', index: store.applied + 1, term: 1 });

/** Let queued microtasks and one macrotask turn run (watch drains are microtasks). */
export const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
