// A hand-written check of the common commands (put, delete, txn) as they come out of msgpack, for
// the apply path. Applying a log re-reads every entry the node itself (or its leader) validated
// with the zod schemas of commands.ts before it was written; running those schemas again cost
// about as much as decoding the msgpack (0.8 s of CPU for a million puts in transactions, README
// "Performance"), on every restart that replays the log.
//
// The rule that keeps every node agreeing: `checkCommand` accepts only what KvCommandSchema
// accepts, and returns what the schema would (the same fields, values as plain Uint8Arrays).
// Anything it does not recognise (an auth command, an unusual number, an unknown field) returns
// null, and the caller asks the schema, which then decides. So an entry is applied or refused
// exactly as the schema alone would, only faster for the commands that fill a log.

import type { KvCommand } from './commands.js';
import { isWellFormed } from './keys.js';

type Raw = Record<string, unknown>;

const isRecord = (v: unknown): v is Raw =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

const isKey = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && isWellFormed(v);

const isRevision = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A value as the schema's bytes transform makes it: a plain Uint8Array (views stay views). */
function plainBytes(v: unknown): Uint8Array | null {
  if (!(v instanceof Uint8Array)) return null;
  return v.constructor === Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** Every own key of `o` is in `allowed` and each of `required` is present. */
function onlyKeys(o: Raw, allowed: ReadonlySet<string>, required: number): boolean {
  let n = 0;
  for (const k of Object.keys(o)) {
    if (!allowed.has(k)) return false;
    n++;
  }
  return n >= required;
}

const PUT_OP = new Set(['type', 'key', 'value']);
const KEY_OP = new Set(['type', 'key']);
const PUT_CMD = new Set(['type', 'key', 'value', 'expectModRevision', 'requestId']);
const DELETE_CMD = new Set(['type', 'key', 'requestId']);
const TXN_CMD = new Set(['type', 'compare', 'success', 'failure', 'requestId']);
const COMPARE = new Set(['key', 'target', 'op', 'operand']);
const ORDERED_OPS = new Set(['=', '!=', '<', '>']);
const REVISION_TARGETS = new Set(['modRevision', 'createRevision', 'version']);

/** `requestId` absent or a string (present but undefined: left to the schema). */
const requestIdOk = (o: Raw): boolean => !('requestId' in o) || typeof o.requestId === 'string';

/** A put, delete or get of a transaction, made plain in place; false when not recognised. */
function checkOp(o: unknown): boolean {
  if (!isRecord(o) || !isKey(o.key)) return false;
  if (o.type === 'put') {
    const value = plainBytes(o.value);
    if (!value || !onlyKeys(o, PUT_OP, 3)) return false;
    o.value = value;
    return true;
  }
  return (o.type === 'delete' || o.type === 'get') && onlyKeys(o, KEY_OP, 2);
}

function checkCompare(c: unknown): boolean {
  if (!isRecord(c) || !isKey(c.key) || !onlyKeys(c, COMPARE, 4)) return false;
  if (REVISION_TARGETS.has(c.target as string))
    return ORDERED_OPS.has(c.op as string) && isRevision(c.operand);
  if (c.target === 'exists') return (c.op === '=' || c.op === '!=') && typeof c.operand === 'boolean';
  if (c.target !== 'value' || !ORDERED_OPS.has(c.op as string)) return false;
  const operand = plainBytes(c.operand);
  if (!operand) return false;
  c.operand = operand;
  return true;
}

function checkList(v: unknown, check: (item: unknown) => boolean): boolean {
  if (!Array.isArray(v)) return false;
  for (const item of v) if (!check(item)) return false;
  return true;
}

/**
 * `raw` (a freshly decoded msgpack value, changed in place) as a command when it is a put, delete
 * or txn the schema accepts; null when the schema must decide.
 */
export function checkCommand(raw: unknown): KvCommand | null {
  if (!isRecord(raw) || !requestIdOk(raw)) return null;
  switch (raw.type) {
    case 'put': {
      const value = plainBytes(raw.value);
      if (!value || !isKey(raw.key) || !onlyKeys(raw, PUT_CMD, 3)) return null;
      if ('expectModRevision' in raw && !isRevision(raw.expectModRevision)) return null;
      raw.value = value;
      return raw as KvCommand;
    }
    case 'delete':
      return isKey(raw.key) && onlyKeys(raw, DELETE_CMD, 2) ? (raw as KvCommand) : null;
    case 'txn': {
      if (!onlyKeys(raw, TXN_CMD, 4)) return null;
      const ok =
        checkList(raw.compare, checkCompare) &&
        checkList(raw.success, checkOp) &&
        checkList(raw.failure, checkOp);
      return ok ? (raw as KvCommand) : null;
    }
    default:
      return null;
  }
}

/** An op of a transaction as the schema returns it (its fields in the schema's order); null when not recognised. */
function canonicalOp(o: unknown): Raw | null {
  if (!isRecord(o) || !isKey(o.key)) return null;
  if (o.type === 'put') {
    const value = plainBytes(o.value);
    return value && onlyKeys(o, PUT_OP, 3) ? { type: 'put', key: o.key, value } : null;
  }
  return (o.type === 'delete' || o.type === 'get') && onlyKeys(o, KEY_OP, 2)
    ? { type: o.type, key: o.key }
    : null;
}

function canonicalCompare(c: unknown): Raw | null {
  if (!isRecord(c) || !isKey(c.key) || !onlyKeys(c, COMPARE, 4)) return null;
  let operand: unknown = c.operand;
  if (REVISION_TARGETS.has(c.target as string)) {
    if (!ORDERED_OPS.has(c.op as string) || !isRevision(operand)) return null;
  } else if (c.target === 'exists') {
    if ((c.op !== '=' && c.op !== '!=') || typeof operand !== 'boolean') return null;
  } else {
    operand = c.target === 'value' && ORDERED_OPS.has(c.op as string) ? plainBytes(operand) : null;
    if (!operand) return null;
  }
  return { key: c.key, target: c.target, op: c.op, operand };
}

function canonicalList(v: unknown, canonical: (item: unknown) => Raw | null): Raw[] | null {
  if (!Array.isArray(v)) return null;
  const out: Raw[] = [];
  for (const item of v) {
    const c = canonical(item);
    if (!c) return null;
    out.push(c);
  }
  return out;
}

/**
 * For encoding a command the node built itself (commands.ts encodeCommand): a new object equal to
 * what the schema returns for `cmd`, fields in the schema's order (so it packs to the same
 * bytes), when `cmd` is a put, delete or txn the schema accepts; null when the schema must decide.
 * Leaves `cmd` as it is.
 */
export function canonicalCommand(cmd: unknown): KvCommand | null {
  if (!isRecord(cmd) || !requestIdOk(cmd)) return null;
  let out: Raw | null = null;
  switch (cmd.type) {
    case 'put': {
      const value = plainBytes(cmd.value);
      if (!value || !isKey(cmd.key) || !onlyKeys(cmd, PUT_CMD, 3)) return null;
      out = { type: 'put', key: cmd.key, value };
      if ('expectModRevision' in cmd) {
        if (!isRevision(cmd.expectModRevision)) return null;
        out.expectModRevision = cmd.expectModRevision;
      }
      break;
    }
    case 'delete':
      if (!isKey(cmd.key) || !onlyKeys(cmd, DELETE_CMD, 2)) return null;
      out = { type: 'delete', key: cmd.key };
      break;
    case 'txn': {
      if (!onlyKeys(cmd, TXN_CMD, 4)) return null;
      const compare = canonicalList(cmd.compare, canonicalCompare);
      const success = compare && canonicalList(cmd.success, canonicalOp);
      const failure = success && canonicalList(cmd.failure, canonicalOp);
      if (!failure) return null;
      out = { type: 'txn', compare, success, failure };
      break;
    }
    default:
      return null;
  }
  if ('requestId' in cmd) out.requestId = cmd.requestId;
  return out as KvCommand;
}
