// KvStore: the replicated key-value state machine (the `StateMachine` the Raft node applies to).
//
// Revisions: the revision of a write is the Raft log index of its entry. `revision` is the index
// of the last applied entry that changed data (etcd's store/header revision); `applied` is the
// index of the last applied entry of any kind. Blank and membership entries, undecodable entries,
// failed compare-and-sets, transactions that only read, and deletes of missing keys advance
// `applied` but not `revision`. So revision ≤ applied, and a read at revision R sees exactly the
// writes of entries ≤ R.
//
// Apply is total: any entry with index applied + 1 is applied. An entry that does not decode (it
// should never happen: encodeCommand validates) is a counted, logged no-op. Limits on key and value
// sizes are checked at proposal (`validate`), never here, so differently configured nodes agree.
// Only a broken host invariant throws: an entry whose index is not applied + 1.
//
// Queries (`get`, `range`) are local reads of the applied state; the API adds ReadIndex on top for
// linearizable reads.

import { applyAuthCommand } from '../auth/apply.js';
import { type AuthState, EMPTY_AUTH_STATE } from '../auth/permissions.js';
import { decodeAuthSection, encodeAuthSection } from '../auth/section.js';
import type { StateMachine } from '../raft/raft-node.js';
import type { Entry, SnapshotMeta } from '../raft/types.js';
import { type KvCommand, tryDecodeCommand } from './commands.js';
import { SnapshotFormatError } from './errors.js';
import { execute } from './execute.js';
import { utf8Bytes } from './keys.js';
import { SnapshotDecoder } from './snapshot-decoder.js';
import {
  DEFAULT_CHUNK_BYTES,
  encodeSnapshot,
  encodeSnapshotBuffer,
  HEADER_BYTES,
  RECORD_FIXED_BYTES,
  type SnapshotHeader,
  sectionBytes,
  TRAILER_BYTES,
} from './snapshot-format.js';
import { KvState } from './state.js';
import type { KeyFilter, KeyValue, KvApplyResult, RangeQuery, RangeResult, WatchEvent } from './types.js';
import { DEFAULT_LIMITS, type KvLimits, validateCommand } from './validate.js';
import { type EventsPage, WatchHub, type WatchListener, type WatchOptions } from './watch.js';

/** Structured logger (pino-compatible subset). */
export interface KvLogger {
  warn(fields: Record<string, unknown>, msg: string): void;
}

export interface KvStoreOptions extends Partial<KvLimits> {
  /** Data-changing revisions kept for watches and long-polls (default 10,000). */
  historyRevisions?: number;
  /** Bytes of history kept, estimated (default 64 MiB). Whichever bound is hit first applies. */
  historyBytes?: number;
  /** Undelivered live events a watcher may hold before it is closed (default 10,000). */
  watchBufferEvents?: number;
  /** Chunk size of `snapshotStream` (default 64 KiB). */
  snapshotChunkBytes?: number;
  logger?: KvLogger;
}

/** Work between two turns of the event loop in snapshotAsync and restoreAsync. */
const DEFAULT_SLICE_MS = 10;
const ENCODE_CHUNK_BYTES = 1 << 20;
const DECODE_SLICE_BYTES = 256 * 1024;

/** Lets the event loop run (setImmediate) once `sliceMs` of work went by since the last turn. */
class Pacer {
  private since = performance.now();

  constructor(private readonly sliceMs: number) {}

  async turn(): Promise<void> {
    if (performance.now() - this.since < this.sliceMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.since = performance.now();
  }
}

/**
 * Sizes a builder for the header's key count, bounded by what `data` can hold (a damaged header
 * must not make it allocate more than the snapshot's own size justifies).
 */
const sizeFor =
  (next: ReturnType<typeof KvState.builder>, data: Uint8Array) =>
  (header: SnapshotHeader): void =>
    next.reserve(Math.min(header.keyCount, Math.floor(data.byteLength / RECORD_FIXED_BYTES)));

/** A snapshot as a stream of chunks, with the position it captures. */
export interface SnapshotStream extends AsyncIterable<Uint8Array>, Readonly<SnapshotHeader> {
  /** Release what the stream holds without reading it (reading it to the end releases it too). */
  close?(): void;
}

export class KvStore implements StateMachine<KvApplyResult> {
  readonly limits: KvLimits;
  private state = KvState.empty();
  /** Users, roles and the switch of client authorization: replicated beside the keys. */
  private authState: AuthState = EMPTY_AUTH_STATE;
  private appliedIndex = 0;
  private storeRevision = 0;
  private undecodable = 0;
  private readonly hub: WatchHub;
  private readonly chunkBytes: number;
  private readonly logger: KvLogger | undefined;

  constructor(opts: KvStoreOptions = {}) {
    this.limits = {
      maxKeyBytes: opts.maxKeyBytes ?? DEFAULT_LIMITS.maxKeyBytes,
      maxValueBytes: opts.maxValueBytes ?? DEFAULT_LIMITS.maxValueBytes,
      maxTxnOps: opts.maxTxnOps ?? DEFAULT_LIMITS.maxTxnOps,
    };
    this.hub = new WatchHub({
      maxRevisions: opts.historyRevisions ?? 10_000,
      maxBytes: opts.historyBytes ?? 64 * 1024 * 1024,
      bufferEvents: opts.watchBufferEvents ?? 10_000,
    });
    this.chunkBytes = opts.snapshotChunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.logger = opts.logger;
  }

  get applied(): number {
    return this.appliedIndex;
  }

  /** Index of the last entry that changed data. */
  get revision(): number {
    return this.storeRevision;
  }

  /** Number of keys. */
  get size(): number {
    return this.state.size;
  }

  /**
   * Stored bytes: every key's UTF-8 bytes, its value's bytes and a fixed per-key overhead
   * (state.ts storedBytes). Kept as a running count by apply and restore, so reading it is free;
   * the storage quota is decided on it where commands are proposed, never in apply.
   */
  get bytes(): number {
    return this.state.bytes;
  }

  /** Byte length of the value under `key` (undefined when absent), without making a KeyValue. */
  valueBytes(key: string): number | undefined {
    return this.state.valueBytes(key);
  }

  /** Client authorization as of `applied` (node/auth/permissions.ts). */
  get auth(): AuthState {
    return this.authState;
  }

  /** Normal entries applied as no-ops because they did not decode. */
  get undecodableEntries(): number {
    return this.undecodable;
  }

  /** The oldest revision a watch or long-poll may start from. */
  get oldestRevision(): number {
    return this.hub.history.oldestRevision;
  }

  get watcherCount(): number {
    return this.hub.watcherCount;
  }

  /** What the watch history holds now (for metrics). */
  get historySize(): { revisions: number; bytes: number } {
    return this.hub.history.size;
  }

  /** Check a command against this node's limits before proposing it (throws ConfluxError). */
  validate(cmd: KvCommand): void {
    validateCommand(cmd, this.limits);
  }

  apply(entry: Entry): KvApplyResult {
    if (entry.index !== this.appliedIndex + 1) {
      throw new Error(`kv: apply of entry ${entry.index}, expected ${this.appliedIndex + 1}`);
    }
    this.appliedIndex = entry.index;
    if (entry.type !== 'normal') return { type: 'none', revision: this.storeRevision };
    const decoded = tryDecodeCommand(entry.data, { viewValues: true });
    if (!decoded.ok) {
      this.undecodable++;
      this.logger?.warn(
        { index: entry.index, term: entry.term, reason: decoded.reason, undecodable: this.undecodable },
        'kv: undecodable entry applied as a no-op',
      );
      return { type: 'invalid', revision: this.storeRevision, reason: decoded.reason };
    }
    if (decoded.command.type === 'auth') {
      const { state, result } = applyAuthCommand(this.authState, decoded.command, this.storeRevision);
      this.authState = state;
      return result;
    }
    const events: WatchEvent[] = [];
    const result = execute(this.state, decoded.command, entry.index, this.storeRevision, events);
    if (events.length > 0) {
      this.storeRevision = entry.index;
      this.hub.publish(entry.index, events);
    }
    return result;
  }

  get(key: string): KeyValue | undefined {
    return this.state.get(key);
  }

  /** A page of keys with `prefix` in UTF-8 byte order; page on with `after` = last key returned. */
  range(q: RangeQuery): RangeResult {
    return { ...this.state.range(q), revision: this.storeRevision };
  }

  /** See WatchHub.watch: events ≥ fromRevision (undefined: from now), replayed then live. */
  watch(
    filter: KeyFilter,
    fromRevision: number | undefined,
    listener: WatchListener,
    opts?: WatchOptions,
  ): () => void {
    return this.hub.watch(filter, fromRevision, listener, opts);
  }

  /**
   * Events available now, for a long-poll: whole revisions, within `limit` events and `maxBytes`
   * of answer (at least one revision). Throws CompactedError for a revision too old.
   */
  eventsSince(filter: KeyFilter, fromRevision: number, limit: number, maxBytes?: number): EventsPage {
    return this.hub.eventsSince(filter, fromRevision, limit, maxBytes);
  }

  /** Wait for matching events (or until `signal` aborts: then an empty page). */
  waitForEvents(
    filter: KeyFilter,
    fromRevision: number,
    limit: number,
    signal?: AbortSignal,
    maxBytes?: number,
  ): Promise<EventsPage> {
    return this.hub.waitForEvents(filter, fromRevision, limit, signal, maxBytes);
  }

  /** The state at `applied`, in the format of snapshot-format.ts. */
  snapshot(): { index: number; data: Uint8Array } {
    const header = this.header();
    const capture = this.state.captureLive();
    try {
      return { index: header.applied, data: encodeSnapshotBuffer(header, capture) };
    } finally {
      capture.close();
    }
  }

  /** Installs what `decoder` read, once it is complete and at `meta.index`. */
  private installDecoded(
    decoder: SnapshotDecoder,
    meta: SnapshotMeta,
    next: ReturnType<typeof KvState.builder>,
  ): void {
    const { header } = decoder.finish();
    if (header.applied !== meta.index) {
      throw new SnapshotFormatError(
        'index-mismatch',
        `snapshot holds applied index ${header.applied}, expected ${meta.index}`,
      );
    }
    this.install(header, next.build());
  }

  /**
   * The same bytes as `snapshot()` at this moment, built in slices of about `sliceMs` of work with
   * the event loop free in between (docs/ARCHITECTURE.md §5): the capture copies the key index only,
   * and entries applied meanwhile do not change what is encoded (LiveCapture).
   */
  async snapshotAsync(sliceMs = DEFAULT_SLICE_MS): Promise<{ index: number; data: Uint8Array }> {
    const header = this.header();
    const capture = this.state.captureLive();
    const pace = new Pacer(sliceMs);
    try {
      let size = HEADER_BYTES + sectionBytes(header) + TRAILER_BYTES;
      let n = 0;
      for (const kv of capture) {
        size += RECORD_FIXED_BYTES + utf8Bytes(kv.key) + kv.value.byteLength;
        if ((++n & 1023) === 0) await pace.turn();
      }
      const data = Buffer.allocUnsafe(size);
      let at = 0;
      for (const chunk of encodeSnapshot(header, capture, ENCODE_CHUNK_BYTES)) {
        data.set(chunk, at);
        at += chunk.byteLength;
        await pace.turn();
      }
      if (at !== size) throw new Error(`snapshot size miscounted: ${at} bytes, expected ${size}`);
      return { index: header.applied, data };
    } finally {
      capture.close();
    }
  }

  /**
   * `restore`, decoding in slices of about `sliceMs` with the event loop free in between. The
   * caller applies nothing meanwhile (RaftNode awaits it within its round); the state is replaced
   * at the end, in one step, only once everything was verified.
   */
  async restoreAsync(meta: SnapshotMeta, data: Uint8Array, sliceMs = DEFAULT_SLICE_MS): Promise<void> {
    const next = KvState.builder();
    const decoder = new SnapshotDecoder({ onRecord: next.add, onHeader: sizeFor(next, data) });
    const pace = new Pacer(sliceMs);
    for (let off = 0; off < data.byteLength; off += DECODE_SLICE_BYTES) {
      decoder.push(data.subarray(off, off + DECODE_SLICE_BYTES));
      await pace.turn();
    }
    this.installDecoded(decoder, meta, next);
  }

  /**
   * The same bytes as `snapshot()` at this moment, as chunks of at most `snapshotChunkBytes`. The
   * state is captured now as `snapshotAsync` captures it (a copy of the key index, no pass over the
   * values: at 1M keys a pass stalls the event loop for 0.2 s, docs/ARCHITECTURE.md §5), so
   * applying more entries while the stream is consumed does not change it. Consume it once; it
   * releases the capture when read to the end or stopped early; call `close` if it is never read.
   * For a Node stream: `Readable.from(store.snapshotStream())`.
   */
  snapshotStream(): SnapshotStream {
    const header = this.header();
    const kvs = this.state.captureLive();
    const chunkBytes = this.chunkBytes;
    return {
      ...header,
      close: () => kvs.close(),
      async *[Symbol.asyncIterator]() {
        try {
          yield* encodeSnapshot(header, kvs, chunkBytes);
        } finally {
          kvs.close();
        }
      },
    };
  }

  /**
   * Replace the whole state by a snapshot's bytes (throws SnapshotFormatError, leaving the store
   * untouched, when they are corrupt, of another format version, or not at `meta.index`). Watch
   * history is not part of a snapshot: every watcher is closed with reason 'restored', and
   * watches from revisions ≤ the restored revision get CompactedError.
   */
  restore(meta: SnapshotMeta, data: Uint8Array): void {
    const next = KvState.builder();
    const decoder = new SnapshotDecoder({ onRecord: next.add, onHeader: sizeFor(next, data) });
    decoder.push(data);
    this.installDecoded(decoder, meta, next);
  }

  /**
   * Restore from chunks (a backup being downloaded). Verified completely before anything is
   * replaced. The caller must not apply entries meanwhile (restore a stopped or fresh node).
   */
  async restoreFromStream(stream: AsyncIterable<Uint8Array>): Promise<SnapshotHeader> {
    const next = KvState.builder();
    const decoder = new SnapshotDecoder({ onRecord: next.add });
    for await (const chunk of stream) decoder.push(chunk);
    const { header } = decoder.finish();
    this.install(header, next.build());
    return header;
  }

  private header(): SnapshotHeader {
    const auth = encodeAuthSection(this.authState);
    const header = { applied: this.appliedIndex, revision: this.storeRevision, keyCount: this.state.size };
    return auth ? { ...header, auth } : header;
  }

  private install(header: SnapshotHeader, state: KvState): void {
    const auth = decodeAuthSection(header.auth); // throws before anything is replaced
    this.state = state;
    this.authState = auth;
    this.appliedIndex = header.applied;
    this.storeRevision = header.revision;
    this.hub.reset(header.revision);
  }
}
