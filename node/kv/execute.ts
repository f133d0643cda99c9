// Executing one decoded command against the state at one revision. Total and deterministic: the
// outcome depends only on the state and the command (no clock, no configuration), so every node
// that applies the same log reaches the same state and returns the same results.

import type { Compare, KvCommand, Op } from './commands.js';
import type { KvState } from './state.js';
import type { KvApplyResult, OpResponse, WatchEvent } from './types.js';

function ordered(diff: number, op: '=' | '!=' | '<' | '>'): boolean {
  switch (op) {
    case '=':
      return diff === 0;
    case '!=':
      return diff !== 0;
    case '<':
      return diff < 0;
    case '>':
      return diff > 0;
  }
}

/** etcd's semantics: see CompareSchema. */
export function compareHolds(state: KvState, c: Compare): boolean {
  const kv = state.get(c.key);
  switch (c.target) {
    case 'exists':
      return c.op === '=' ? (kv !== undefined) === c.operand : (kv !== undefined) !== c.operand;
    case 'value':
      return kv !== undefined && ordered(Buffer.compare(kv.value, c.operand), c.op);
    default:
      return ordered((kv ? kv[c.target] : 0) - c.operand, c.op);
  }
}

function runOp(state: KvState, op: Op, revision: number, events: WatchEvent[]): OpResponse {
  switch (op.type) {
    case 'get': {
      const kv = state.get(op.key);
      return kv ? { type: 'get', kv } : { type: 'get' };
    }
    case 'put': {
      const prev = state.put(op.key, op.value, revision, events);
      return prev ? { type: 'put', prev } : { type: 'put' };
    }
    case 'delete': {
      const prev = state.delete(op.key, revision, events);
      return prev ? { type: 'delete', prev } : { type: 'delete' };
    }
  }
}

/**
 * Apply `cmd` as the entry at `revision`; changes are appended to `events`. `storeRevision` is
 * the store revision before the entry: a result's `revision` is `revision` when the command
 * changed data and `storeRevision` otherwise.
 */
export function execute(
  state: KvState,
  cmd: Exclude<KvCommand, { type: 'auth' }>,
  revision: number,
  storeRevision: number,
  events: WatchEvent[],
): KvApplyResult {
  const after = () => (events.length > 0 ? revision : storeRevision);
  const tag = cmd.requestId === undefined ? {} : { requestId: cmd.requestId };
  switch (cmd.type) {
    case 'put': {
      if (cmd.expectModRevision !== undefined) {
        const current = state.get(cmd.key);
        if ((current?.modRevision ?? 0) !== cmd.expectModRevision) {
          return current
            ? { type: 'put', ok: false, revision: storeRevision, current, ...tag }
            : { type: 'put', ok: false, revision: storeRevision, ...tag };
        }
      }
      const prev = state.put(cmd.key, cmd.value, revision, events);
      return prev
        ? { type: 'put', ok: true, revision, prev, ...tag }
        : { type: 'put', ok: true, revision, ...tag };
    }
    case 'delete': {
      const prev = state.delete(cmd.key, revision, events);
      return prev
        ? { type: 'delete', revision, prev, ...tag }
        : { type: 'delete', revision: storeRevision, ...tag };
    }
    case 'txn': {
      // Compares are all evaluated against the state before any op of the transaction runs.
      const succeeded = cmd.compare.every((c) => compareHolds(state, c));
      const ops = succeeded ? cmd.success : cmd.failure;
      const responses = ops.map((op) => runOp(state, op, revision, events));
      return { type: 'txn', succeeded, revision: after(), responses, ...tag };
    }
  }
}
