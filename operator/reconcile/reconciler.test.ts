import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ConfluxCluster } from '../api/cluster.js';
import type { Platform, ResourceStore } from '../platform/platform.js';
import { Reconciler } from './reconciler.js';

describe('Reconciler.start', () => {
  it('retries a failed first list (a CRD whose storage is still initializing answers 429)', async () => {
    let lists = 0;
    const asked: string[] = [];
    const store = {
      async listClusters() {
        if (++lists < 3) throw new Error('HTTP-Code: 429 storage is (re)initializing');
        return [{ metadata: { namespace: 'db', name: 'demo' } }] as ConfluxCluster[];
      },
      async getCluster(namespace: string, name: string) {
        asked.push(`${namespace}/${name}`);
        return null;
      },
      async listBackups() {
        return [];
      },
      watch: () => () => {},
    } as unknown as ResourceStore;
    const reconciler = new Reconciler({
      store,
      platform: {} as Platform,
      logger: pino({ level: 'silent' }),
      listRetryMs: 5,
    });
    await reconciler.start();
    await new Promise((r) => setTimeout(r, 20));
    await reconciler.stop();
    expect(lists).toBe(3);
    expect(asked).toEqual(['db/demo']);
  });
});

describe('Reconciler passes', () => {
  it('survive an API server that refuses the read of the cluster, and look again after a back-off', async () => {
    let reads = 0;
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    const store = {
      async listClusters() {
        return [{ metadata: { namespace: 'db', name: 'demo' } }] as ConfluxCluster[];
      },
      async getCluster() {
        if (++reads < 3) throw new Error('connect ECONNREFUSED 10.96.0.1:443');
        return null;
      },
      async listBackups() {
        return [];
      },
      watch: () => () => {},
    } as unknown as ResourceStore;
    const reconciler = new Reconciler({ store, platform: {} as Platform, logger: pino({ level: 'silent' }) });
    try {
      await reconciler.start();
      const deadline = Date.now() + 5_000;
      while (reads < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await reconciler.stop();
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
    expect(reads).toBe(3);
  });
});
