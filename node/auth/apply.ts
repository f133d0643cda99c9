// Applying an `auth` command from the log (node/kv/store.ts calls this in apply). Total like the
// rest of apply: its changes apply in order, all or none; one that cannot apply (a user that does
// not exist, enabling with no root user, ...) leaves the state as it was and is a deterministic result, `ok: false` with the
// reason, identical on every member; it never throws.

import { ConfluxError } from '../errors.js';
import type { AuthCommand } from '../kv/commands.js';
import type { KvApplyResult } from '../kv/types.js';
import { type AuthState, applyAuthChange } from './permissions.js';

export function applyAuthCommand(
  state: AuthState,
  cmd: AuthCommand,
  revision: number,
): { state: AuthState; result: KvApplyResult } {
  const tag = cmd.requestId === undefined ? {} : { requestId: cmd.requestId };
  try {
    return {
      state: cmd.changes.reduce(applyAuthChange, state),
      result: { type: 'auth', ok: true, revision, ...tag },
    };
  } catch (err) {
    if (!(err instanceof ConfluxError)) throw err;
    return { state, result: { type: 'auth', ok: false, revision, reason: err.message, ...tag } };
  }
}
