// Test support: the operator's reconciler driving real `conflux-node` processes on the Local
// platform, with its resources in a temporary directory, as `npm start` runs it; and `until`, the
// polling wait the operator suites share.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { ConfluxCluster } from '../../operator/api/cluster.js';
import { LocalPlatform, type LocalPlatformOptions } from '../../operator/platform/local.js';
import { LocalStore } from '../../operator/platform/local-store.js';
import { Reconciler, type ReconcilerOptions } from '../../operator/reconcile/reconciler.js';

/** Silent unless CONFLUX_TEST_LOG names a level. */
export const testLog = pino({ level: process.env.CONFLUX_TEST_LOG ?? 'silent' });

/** Polls `fn` until it returns something other than undefined, null or false; throws after `ms`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  ms = 120_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v !== undefined && v !== null && v !== false) return v as T;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface LocalOperator {
  root: string;
  store: LocalStore;
  platform: LocalPlatform;
  reconciler: Reconciler;
  /** The cluster `name` in namespace default, as the store holds it now. */
  get(name: string): Promise<ConfluxCluster>;
  /** Stops the reconciler and every node, and deletes the directory. */
  stop(): Promise<void>;
}

/** A started reconciler (resync every second) over a fresh Local platform and store. */
export async function startLocalOperator(
  prefix: string,
  options: {
    platform?: Omit<LocalPlatformOptions, 'root'>;
    reconciler?: Omit<ReconcilerOptions, 'store' | 'platform' | 'logger'>;
  } = {},
): Promise<LocalOperator> {
  const root = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const store = new LocalStore({ root, logger: testLog });
  const platform = new LocalPlatform({ root, logger: testLog, ...options.platform });
  const reconciler = new Reconciler({
    store,
    platform,
    logger: testLog,
    resyncMs: 1_000,
    ...options.reconciler,
  });
  await reconciler.start();
  return {
    root,
    store,
    platform,
    reconciler,
    get: async (name) => (await store.getCluster('default', name)) as ConfluxCluster,
    stop: async () => {
      await reconciler.stop();
      await platform.stopAll();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
