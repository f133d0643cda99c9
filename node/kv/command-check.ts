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

import { isCount, isPlainObject } from '../shapes/plain.js';
import type { KvCommand } from './commands.js';
import { isWellFormed } from './keys.js';

type Raw = Record<string, unknown>;

const isKey = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && isWellFormed(v);

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

/**
 * How a recognised command is returned. In place (the apply path): `raw` itself, a freshly decoded
 * value, its byte fields made plain. As a copy (encoding a command the node built): a new object
 * with the schema's fields in the schema's order, so it packs to the bytes the schema's output
 * would, the caller's object left as it is.
 */
type Mode = 'in-place' | 'copy';

/** A put, delete or get of a transaction; null when not recognised. */
function checkOp(o: unknown, mode: Mode): Raw | null {
  if (!isPlainObject(o) || !isKey(o.key)) return null;
  if (o.type === 'put') {
    const value = plainBytes(o.value);
    if (!value || !onlyKeys(o, PUT_OP, 3)) return null;
    if (mode === 'copy') return { type: 'put', key: o.key, value };
    o.value = value;
    return o;
  }
  if ((o.type !== 'delete' && o.type !== 'get') || !onlyKeys(o, KEY_OP, 2)) return null;
  return mode === 'copy' ? { type: o.type, key: o.key } : o;
}

function checkCompare(c: unknown, mode: Mode): Raw | null {
  if (!isPlainObject(c) || !isKey(c.key) || !onlyKeys(c, COMPARE, 4)) return null;
  let operand: unknown = c.operand;
  if (REVISION_TARGETS.has(c.target as string)) {
    if (!ORDERED_OPS.has(c.op as string) || !isCount(operand)) return null;
  } else if (c.target === 'exists') {
    if ((c.op !== '=' && c.op !== '!=') || typeof operand !== 'boolean') return null;
  } else {
    operand = c.target === 'value' && ORDERED_OPS.has(c.op as string) ? plainBytes(operand) : null;
    if (!operand) return null;
  }
  if (mode === 'copy') return { key: c.key, target: c.target, op: c.op, operand };
  c.operand = operand;
  return c;
}

function checkList(v: unknown, check: (item: unknown, mode: Mode) => Raw | null, mode: Mode): Raw[] | null {
  if (!Array.isArray(v)) return null;
  const out: Raw[] | null = mode === 'copy' ? [] : null;
  for (const item of v) {
    const c = check(item, mode);
    if (!c) return null;
    out?.push(c);
  }
  return out ?? (v as Raw[]);
}

function check(raw: unknown, mode: Mode): KvCommand | null {
  if (!isPlainObject(raw) || !requestIdOk(raw)) return null;
  let out: Raw;
  switch (raw.type) {
    case 'put': {
      const value = plainBytes(raw.value);
      if (!value || !isKey(raw.key) || !onlyKeys(raw, PUT_CMD, 3)) return null;
      if ('expectModRevision' in raw && !isCount(raw.expectModRevision)) return null;
      if (mode === 'in-place') {
        raw.value = value;
        return raw as KvCommand;
      }
      out = { type: 'put', key: raw.key, value };
      if ('expectModRevision' in raw) out.expectModRevision = raw.expectModRevision;
      break;
    }
    case 'delete':
      if (!isKey(raw.key) || !onlyKeys(raw, DELETE_CMD, 2)) return null;
      if (mode === 'in-place') return raw as KvCommand;
      out = { type: 'delete', key: raw.key };
      break;
    case 'txn': {
      if (!onlyKeys(raw, TXN_CMD, 4)) return null;
      const compare = checkList(raw.compare, checkCompare, mode);
      const success = compare && checkList(raw.success, checkOp, mode);
      const failure = success && checkList(raw.failure, checkOp, mode);
      if (!failure) return null;
      if (mode === 'in-place') return raw as KvCommand;
      out = { type: 'txn', compare, success, failure };
      break;
    }
    default:
      return null;
  }
  if ('requestId' in raw) out.requestId = raw.requestId;
  return out as KvCommand;
}

/**
 * `raw` (a freshly decoded msgpack value, changed in place) as a command when it is a put, delete
 * or txn the schema accepts; null when the schema must decide.
 */
export const checkCommand = (raw: unknown): KvCommand | null => check(raw, 'in-place');

/**
 * For encoding a command the node built itself (commands.ts encodeCommand): a new object equal to
 * what the schema returns for `cmd`, fields in the schema's order (so it packs to the same
 * bytes), when `cmd` is a put, delete or txn the schema accepts; null when the schema must decide.
 * Leaves `cmd` as it is.
 */
export const canonicalCommand = (cmd: unknown): KvCommand | null => check(cmd, 'copy');
