// Commands of the key-value state machine: the payload of every normal Raft entry.
//
// The zod schemas are the boundary: `encodeCommand` refuses anything they reject, so nothing
// undecodable enters the log from this version, and `decodeCommand` parses the log's bytes back
// to the same result (the common commands through an equivalent hand-written check,
// command-check.ts, as cheap as the msgpack decode; the rest through the schemas). The schemas
// check structure only (plus rules that never change, such as "a key is a non-empty well-formed
// string"); configurable limits (key and value sizes) are checked by `validate.ts` at proposal
// time and never at apply, because nodes may be configured differently and apply must give the
// same answer on every node.
//
// Wire form: msgpack (msgpackr without its record extension, so any msgpack reader can decode a
// log), binary values as msgpack `bin`. Objects are strict: a field this version does not know
// makes the command undecodable (applied as a no-op) rather than half-understood.

import { Packr } from 'msgpackr';
import { z } from 'zod';
import { authChangeSchema } from '../auth/permissions.js';
import { ConfluxError } from '../errors.js';
import { canonicalCommand, checkCommand } from './command-check.js';
import { isWellFormed } from './keys.js';

const keySchema = z
  .string()
  .min(1, 'key must not be empty')
  .refine(isWellFormed, 'key must be valid Unicode (no lone surrogate)');

/** Bytes; msgpackr hands back Buffers, which become plain Uint8Array views (no copy). */
const bytesSchema = z
  .custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes')
  .transform(
    (b): Uint8Array =>
      b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
  );

const revisionSchema = z.number().int().nonnegative();
const requestIdSchema = z.string().optional();

export const PutOpSchema = z.strictObject({ type: z.literal('put'), key: keySchema, value: bytesSchema });
export const DeleteOpSchema = z.strictObject({ type: z.literal('delete'), key: keySchema });
export const GetOpSchema = z.strictObject({ type: z.literal('get'), key: keySchema });
export const OpSchema = z.discriminatedUnion('type', [PutOpSchema, DeleteOpSchema, GetOpSchema]);
export type Op = z.infer<typeof OpSchema>;

const compareOpSchema = z.enum(['=', '!=', '<', '>']);

/**
 * One condition of a transaction, etcd's semantics: a missing key has modRevision,
 * createRevision and version 0; a `value` compare on a missing key is false whatever the op;
 * `exists` compares presence (`=` true: must exist, `=` false: must not).
 */
export const CompareSchema = z.union([
  z.strictObject({
    key: keySchema,
    target: z.enum(['modRevision', 'createRevision', 'version']),
    op: compareOpSchema,
    operand: revisionSchema,
  }),
  z.strictObject({ key: keySchema, target: z.literal('value'), op: compareOpSchema, operand: bytesSchema }),
  z.strictObject({
    key: keySchema,
    target: z.literal('exists'),
    op: z.enum(['=', '!=']),
    operand: z.boolean(),
  }),
]);
export type Compare = z.infer<typeof CompareSchema>;

/**
 * `expectModRevision` makes the put a compare-and-set on the key's modRevision (0: the key must
 * not exist); when it does not hold, nothing is written and the result is `ok: false`.
 */
export const PutCommandSchema = z.strictObject({
  type: z.literal('put'),
  key: keySchema,
  value: bytesSchema,
  expectModRevision: revisionSchema.optional(),
  requestId: requestIdSchema,
});

export const DeleteCommandSchema = z.strictObject({
  type: z.literal('delete'),
  key: keySchema,
  requestId: requestIdSchema,
});

/** If every compare holds, run `success` in order, else `failure`; reads see earlier writes. */
export const TxnCommandSchema = z.strictObject({
  type: z.literal('txn'),
  compare: z.array(CompareSchema),
  success: z.array(OpSchema),
  failure: z.array(OpSchema),
  requestId: requestIdSchema,
});

/** Changes to the users, roles and switch of client authorization (node/auth/permissions.ts),
 *  applied in order and all or none. */
export const AuthCommandSchema = z.strictObject({
  type: z.literal('auth'),
  changes: z.array(authChangeSchema).min(1).max(1000),
  requestId: requestIdSchema,
});

export const KvCommandSchema = z.discriminatedUnion('type', [
  PutCommandSchema,
  DeleteCommandSchema,
  TxnCommandSchema,
  AuthCommandSchema,
]);
export type KvCommand = z.infer<typeof KvCommandSchema>;
export type PutCommand = z.infer<typeof PutCommandSchema>;
export type DeleteCommand = z.infer<typeof DeleteCommandSchema>;
export type TxnCommand = z.infer<typeof TxnCommandSchema>;
export type AuthCommand = z.infer<typeof AuthCommandSchema>;

// copyBuffers: decoded values own their bytes instead of viewing the entry's buffer, which the
// host may reuse and which would otherwise stay alive as long as any value does.
const packr = new Packr({ useRecords: false, copyBuffers: true, mapsAsObjects: true, variableMapSize: true });
/** The same, handing out values as views of the entry's bytes: for apply, which copies what it keeps. */
const viewPackr = new Packr({
  useRecords: false,
  copyBuffers: false,
  mapsAsObjects: true,
  variableMapSize: true,
});

/** Drop `undefined` fields so the encoding of a command does not depend on how it was built. */
const defined = (o: object): object =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

const issuesText = (err: z.ZodError): string =>
  err.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');

/** Parse untrusted input into a command; throws ConfluxError INVALID_REQUEST. */
export function parseCommand(input: unknown): KvCommand {
  const r = KvCommandSchema.safeParse(input);
  if (!r.success) throw new ConfluxError('INVALID_REQUEST', `invalid command: ${issuesText(r.error)}`);
  return r.data;
}

/**
 * The log bytes of a command. Throws ConfluxError INVALID_REQUEST for a structurally bad one.
 * Puts, deletes and transactions (every client write) are checked by hand (command-check.ts
 * canonicalCommand, which accepts only what the schema does and returns what it would, fields in
 * the same order), which costs a fraction of the schema on the leader's write path; anything else,
 * and anything it does not recognise, goes through the schema: the bytes are the same either way
 * (docs/performance.md, "Write path: HTTP side").
 */
export function encodeCommand(cmd: KvCommand): Uint8Array {
  const fast = canonicalCommand(cmd);
  return fast ? packOwn(fast) : encodeCommandBySchema(cmd);
}

/** encodeCommand through the schemas alone: the reference its hand-written path is checked against. */
export function encodeCommandBySchema(cmd: KvCommand): Uint8Array {
  const c = parseCommand(cmd);
  const canonical =
    c.type === 'txn'
      ? { ...defined(c), compare: c.compare.map(defined), success: c.success, failure: c.failure }
      : c.type === 'auth'
        ? { ...defined(c), changes: c.changes.map(defined) }
        : defined(c);
  return packOwn(canonical);
}

function packOwn(canonical: object): Uint8Array {
  // msgpackr packs every value into one buffer shared by all its encoders in the process (the
  // transport's frames and the WAL's records too, up to MiBs) and returns a view of it. The bytes
  // of a command live on in the Raft log until a snapshot compacts it, and such a view would keep
  // the whole shared buffer alive, frames and all: give the log its own exact-size copy.
  return new Uint8Array(packr.pack(canonical));
}

export type DecodeResult = { ok: true; command: KvCommand } | { ok: false; reason: string };

export interface DecodeOptions {
  /**
   * Values as views of `data` instead of copies (default false). For a caller that copies what it
   * keeps before `data` may change: KvStore.apply, whose store copies every value it stores.
   */
  viewValues?: boolean;
}

/**
 * Decode log bytes; never throws (apply turns a failure into a counted no-op). Puts, deletes and
 * transactions are checked by hand (command-check.ts), which accepts only what the schema does;
 * anything else goes through the schema, so the outcome is the schema's either way.
 */
export function tryDecodeCommand(data: Uint8Array, opts: DecodeOptions = {}): DecodeResult {
  let raw: unknown;
  try {
    raw = (opts.viewValues ? viewPackr : packr).unpack(data);
  } catch (err) {
    return { ok: false, reason: `not msgpack: ${err instanceof Error ? err.message : String(err)}` };
  }
  const checked = checkCommand(raw);
  if (checked) return { ok: true, command: checked };
  const r = KvCommandSchema.safeParse(raw);
  return r.success ? { ok: true, command: r.data } : { ok: false, reason: issuesText(r.error) };
}

/** Decode log bytes; throws ConfluxError INVALID_REQUEST when they are not a command. */
export function decodeCommand(data: Uint8Array): KvCommand {
  const r = tryDecodeCommand(data);
  if (!r.ok) throw new ConfluxError('INVALID_REQUEST', `undecodable command: ${r.reason}`);
  return r.command;
}
