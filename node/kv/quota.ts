// How much a command would change the stored bytes (KvState.bytes), estimated against the state
// as it is now. The storage quota is decided with it where commands are proposed, on the leader,
// never at apply: the quota is node configuration, and apply must give the same result on every
// node whatever its configuration (see validate.ts).

import type { KvCommand, Op } from './commands.js';
import { storedBytes } from './state.js';

/** The byte length of the value stored under a key now, or undefined when it is absent. */
export type ValueBytesOf = (key: string) => number | undefined;

function opGrowth(op: Op, current: ValueBytesOf): number {
  if (op.type === 'get') return 0;
  const now = current(op.key);
  const before = now === undefined ? 0 : storedBytes(op.key, now);
  return op.type === 'put' ? storedBytes(op.key, op.value.byteLength) - before : 0 - before;
}

/**
 * Stored bytes the command adds (negative: frees). A transaction counts the larger of its two
 * branches, since the branch is only known at apply. Exact for a branch (validate.ts refuses a
 * branch that writes one key twice), approximate only in that the state may change before apply.
 */
export function writeGrowth(cmd: KvCommand, current: ValueBytesOf): number {
  if (cmd.type === 'auth') return 0;
  if (cmd.type !== 'txn') return opGrowth(cmd, current);
  const branch = (ops: Op[]) => ops.reduce((sum, op) => sum + opGrowth(op, current), 0);
  return Math.max(branch(cmd.success), branch(cmd.failure));
}
