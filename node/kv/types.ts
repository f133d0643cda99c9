// The data model of the key-value state machine, shared by the store, watch and the API.

/**
 * One key's current state. Revisions are Raft log indexes: `createRevision` is the index of the
 * write that created this incarnation of the key (a delete ends it; a later put starts a new one),
 * `modRevision` the index of the last write, `version` the number of writes since creation (1 after
 * the creating put).
 *
 * Invariant: a KeyValue is never mutated once made. A write makes a new one, so watch history,
 * apply results and query results can share objects safely. Callers must not write into `value`
 * either (it may view bytes the store keeps). The store itself keeps a more compact form
 * (state.ts) and makes KeyValues when asked, so two reads of one key give equal, not identical,
 * objects.
 */
export interface KeyValue {
  key: string;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
}

/**
 * A change to one key. For a delete, `kv` is a tombstone: the key with an empty value,
 * `modRevision` = the delete's revision and createRevision = version = 0 (etcd's shape);
 * `prevKv` is what was deleted. `prevKv` is absent for the put that creates a key.
 */
export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
  prevKv?: KeyValue;
  revision: number;
}

/** What a watch or long-poll follows: one key, or every key starting with a prefix ('' = all). */
export type KeyFilter = { key: string } | { prefix: string };

export const matches = (filter: KeyFilter, key: string): boolean =>
  'key' in filter ? key === filter.key : key.startsWith(filter.prefix);

/** The outcome of one operation inside a transaction, in the order of the ops. All writes of a
 *  transaction share its revision (the entry's index), given once in the txn result. */
export type OpResponse =
  | { type: 'put'; prev?: KeyValue }
  /** `prev` is what was deleted; absent when the key did not exist (nothing changed). */
  | { type: 'delete'; prev?: KeyValue }
  | { type: 'get'; kv?: KeyValue };

/**
 * What applying one log entry returns (the Raft node hands it to the proposer). `revision` is
 * always the store revision after the entry. A failed compare-and-set is a deterministic outcome
 * of the log, so it is a result (`ok: false`), never an exception.
 */
export type KvApplyResult = (
  | { type: 'put'; ok: true; revision: number; prev?: KeyValue }
  | { type: 'put'; ok: false; revision: number; current?: KeyValue }
  | { type: 'delete'; revision: number; prev?: KeyValue }
  | { type: 'txn'; succeeded: boolean; revision: number; responses: OpResponse[] }
  /** A change to client authorization (node/auth): `ok: false` with the reason it was refused. */
  | { type: 'auth'; ok: true; revision: number }
  | { type: 'auth'; ok: false; revision: number; reason: string }
  /** A blank or membership entry: applied, no data change. */
  | { type: 'none'; revision: number }
  /** A normal entry whose bytes are not a valid command: applied as a no-op and counted. */
  | { type: 'invalid'; revision: number; reason: string }
) & { requestId?: string };

export interface RangeQuery {
  /** Every key starting with it ('' = all keys). */
  prefix: string;
  /** Exclusive start: the last key of the previous page. */
  after?: string;
  /** Page size, ≥ 1. */
  limit: number;
  /** Answer bytes (kvAnswerBytes) a page may hold; it holds at least one key-value regardless. */
  maxBytes?: number;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** True when more keys with the prefix follow the last one returned. */
  more: boolean;
  /** The store revision the page was read at. */
  revision: number;
}
