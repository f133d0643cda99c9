// Size limits, checked where a command is proposed (the API), never where it is applied: limits
// are node configuration, and a node configured differently must still apply the same log to the
// same state. So these helpers throw ConfluxErrors for the API to map, while `KvStore.apply`
// accepts any command that decodes.

import { ConfluxError } from '../errors.js';
import type { KvCommand, Op } from './commands.js';
import { isWellFormed, utf8Bytes } from './keys.js';

export interface KvLimits {
  /** Longest key, in UTF-8 bytes. */
  maxKeyBytes: number;
  /** Largest value, in bytes. */
  maxValueBytes: number;
  /** Most compares plus ops in one transaction (etcd's --max-txn-ops is 128). */
  maxTxnOps: number;
}

export const DEFAULT_LIMITS: KvLimits = {
  maxKeyBytes: 1024,
  maxValueBytes: 1024 * 1024,
  maxTxnOps: 128,
};

/** Throws INVALID_REQUEST or KEY_TOO_LONG unless `key` may be stored. */
export function validateKey(key: string, limits: KvLimits = DEFAULT_LIMITS): void {
  if (key.length === 0) throw new ConfluxError('INVALID_REQUEST', 'key must not be empty');
  if (!isWellFormed(key)) throw new ConfluxError('INVALID_REQUEST', 'key is not valid Unicode');
  const bytes = utf8Bytes(key);
  if (bytes > limits.maxKeyBytes) {
    throw new ConfluxError('KEY_TOO_LONG', `key is ${bytes} bytes, the limit is ${limits.maxKeyBytes}`, {
      maxKeyBytes: limits.maxKeyBytes,
    });
  }
}

/** A prefix may be empty (every key) but otherwise follows the key rules. */
export function validatePrefix(prefix: string, limits: KvLimits = DEFAULT_LIMITS): void {
  if (prefix.length > 0) validateKey(prefix, limits);
}

/** Throws VALUE_TOO_LARGE unless `value` may be stored. */
export function validateValue(value: Uint8Array, limits: KvLimits = DEFAULT_LIMITS): void {
  if (value.byteLength > limits.maxValueBytes) {
    throw new ConfluxError(
      'VALUE_TOO_LARGE',
      `value is ${value.byteLength} bytes, the limit is ${limits.maxValueBytes}`,
      { maxValueBytes: limits.maxValueBytes },
    );
  }
}

function validateOp(op: Op, limits: KvLimits): void {
  validateKey(op.key, limits);
  if (op.type === 'put') validateValue(op.value, limits);
}

/** Every key and value of the command, and the transaction size. Also refuses a transaction that
 *  writes one key twice in a branch (etcd does too: the outcome would hinge on op order). */
export function validateCommand(cmd: KvCommand, limits: KvLimits = DEFAULT_LIMITS): void {
  if (cmd.type === 'auth') return; // its schema bounds it (node/auth/permissions.ts)
  if (cmd.type !== 'txn') {
    validateKey(cmd.key, limits);
    if (cmd.type === 'put') validateValue(cmd.value, limits);
    return;
  }
  const total = cmd.compare.length + Math.max(cmd.success.length, cmd.failure.length);
  if (total > limits.maxTxnOps) {
    throw new ConfluxError(
      'INVALID_REQUEST',
      `transaction has ${total} compares and ops, the limit is ${limits.maxTxnOps}`,
    );
  }
  for (const c of cmd.compare) {
    validateKey(c.key, limits);
    if (c.target === 'value') validateValue(c.operand, limits);
  }
  for (const branch of [cmd.success, cmd.failure]) {
    const written = new Set<string>();
    for (const op of branch) {
      validateOp(op, limits);
      if (op.type === 'get') continue;
      if (written.has(op.key))
        throw new ConfluxError('INVALID_REQUEST', `transaction writes key twice: ${op.key}`);
      written.add(op.key);
    }
  }
}
