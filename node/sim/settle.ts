// Waiting for a call into a simulated process: its answer, or an unknown outcome when it takes
// too long or the process dies meanwhile (a client cannot tell whether the call took effect).

import type { Life } from './cluster.js';
import type { World } from './world.js';

export const OP_TIMEOUT_MS = 400;

export type Settled<T> = { kind: 'ok'; value: T } | { kind: 'error'; err: unknown } | { kind: 'unknown' };

/** Wait for a call to a process: its answer, or unknown after a timeout or when it dies. */
export function settle<T>(world: World, life: Life, p: Promise<T>, timeoutMs: number): Promise<Settled<T>> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (s: Settled<T>) => {
      if (done) return;
      done = true;
      timer.cancel();
      life.onDeath.delete(onDeath);
      resolve(life.dead && s.kind !== 'unknown' ? { kind: 'unknown' } : s);
    };
    const onDeath = () => finish({ kind: 'unknown' });
    const timer = world.timer(timeoutMs, () => finish({ kind: 'unknown' }));
    life.onDeath.add(onDeath);
    p.then(
      (value) => finish({ kind: 'ok', value }),
      (err: unknown) => finish({ kind: 'error', err }),
    );
  });
}
