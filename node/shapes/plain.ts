// The two primitives of the hand-written checks that stand in for zod schemas on hot paths (peer
// frames: transport/message-check.ts; commands: kv/command-check.ts). Each must accept exactly
// what its schema counterpart does.

/** A plain object, as msgpack decodes a map (not an array, a class instance or null). */
export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;

/** What `z.int().min(0)` accepts: a safe, non-negative integer. */
export const isCount = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
