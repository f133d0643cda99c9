import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  API_VERSION,
  type ClusterStatus,
  type ConfluxCluster,
  confluxClusterSchema,
} from '../api/cluster.js';
import { ConflictError, type Platform, type ResourceStore } from '../platform/platform.js';
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

// -- One cluster in memory: status writes, events and back-off ------------------------------------

/** A ResourceStore holding one cluster, with resourceVersions checked on status writes like an API server. */
class MemoryStore implements ResourceStore {
  cluster: ConfluxCluster;
  version = 1;
  /** Each status write attempt: the resourceVersion it was made against, and whether it took. */
  readonly writes: { resourceVersion: string | undefined; labels: unknown; ok: boolean }[] = [];
  readonly events: { type: string; reason: string; message: string }[] = [];
  /** Called before a status write is checked: a concurrent writer can change the object here. */
  beforeWrite: (() => void) | null = null;

  constructor(spec: Record<string, unknown>) {
    this.cluster = confluxClusterSchema.parse({
      apiVersion: API_VERSION,
      kind: 'ConfluxCluster',
      metadata: { name: 'demo', namespace: 'db', generation: 1, resourceVersion: '1' },
      spec,
    });
  }

  /** Another writer changes the object (a label), which bumps its resourceVersion. */
  touch(label: string): void {
    this.version++;
    const labels = { ...this.cluster.metadata.labels, touched: label };
    this.cluster = {
      ...this.cluster,
      metadata: { ...this.cluster.metadata, labels, resourceVersion: String(this.version) },
    };
  }

  async listClusters() {
    return [structuredClone(this.cluster)];
  }
  async getCluster(namespace: string, name: string) {
    const m = this.cluster.metadata;
    return m.namespace === namespace && m.name === name ? structuredClone(this.cluster) : null;
  }
  async writeClusterStatus(cluster: ConfluxCluster, status: ClusterStatus) {
    this.beforeWrite?.();
    const ok = cluster.metadata.resourceVersion === this.cluster.metadata.resourceVersion;
    this.writes.push({
      resourceVersion: cluster.metadata.resourceVersion,
      labels: cluster.metadata.labels,
      ok,
    });
    if (!ok) throw new ConflictError(`stale resourceVersion ${cluster.metadata.resourceVersion}`);
    this.version++;
    this.cluster = {
      ...this.cluster,
      metadata: { ...this.cluster.metadata, resourceVersion: String(this.version) },
      status: structuredClone(status),
    };
    return structuredClone(this.cluster);
  }
  async listBackups() {
    return [];
  }
  async writeBackupStatus(): Promise<never> {
    throw new Error('no backups in this store');
  }
  async event(_object: unknown, type: 'Normal' | 'Warning', reason: string, message: string) {
    this.events.push({ type, reason, message });
  }
  watch() {
    return () => {};
  }
}

/** A platform with no member slots; ensureMembers fails with whatever `failure` says. */
function emptyPlatform(failure: { message: string | null }): Platform {
  return {
    kind: 'local',
    async ensureMembers() {
      if (failure.message) throw new Error(failure.message);
    },
    setSize: async () => 0,
    pods: async () => [],
    volumes: async () => [],
    deleteVolume: async () => {},
    adminClient: async () => ({ timeoutMs: 1_000 }),
    backupCredentials: async () => undefined,
    templateRevision: async () => 'rev-1',
    restartMember: async () => {},
    recreateMember: async () => {},
  };
}

type Ended = { at: number; action: string; error: string | null };

/**
 * Runs a reconciler until `passes` passes are done (or 10 s) and returns when each one ended.
 * `nudge` enqueues the cluster again after each pass (a watch event); without it, only the
 * reconciler's own requeue brings the next pass. `after` sees each pass as it ends.
 */
async function runPasses(
  store: MemoryStore,
  platform: Platform,
  passes: number,
  o: { nudge?: boolean; after?: (ended: Ended[]) => void } = {},
) {
  const ended: Ended[] = [];
  const reconciler = new Reconciler({
    store,
    platform,
    logger: pino({ level: 'silent' }),
    onPass: (_key, action, error) => {
      ended.push({ at: Date.now(), action: action.type, error: error?.message ?? null });
      o.after?.(ended);
    },
  });
  const key = { namespace: 'db', name: 'demo' };
  const deadline = Date.now() + 10_000;
  reconciler.enqueue(key);
  for (let n = 1; n <= passes; n++) {
    while (ended.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    if (o.nudge && n < passes) reconciler.enqueue(key);
  }
  await reconciler.stop();
  return ended;
}

describe('Reconciler status and events', () => {
  it('retries a status write that met a conflict, against the fresh object', async () => {
    const store = new MemoryStore({ replicas: 3, paused: true });
    let first = true;
    store.beforeWrite = () => {
      if (first) store.touch('by-someone-else');
      first = false;
    };
    const ended = await runPasses(store, emptyPlatform({ message: null }), 1);
    expect(ended).toEqual([expect.objectContaining({ action: 'wait', error: null })]);
    expect(store.writes).toEqual([
      { resourceVersion: '1', labels: undefined, ok: false },
      { resourceVersion: '2', labels: { touched: 'by-someone-else' }, ok: true },
    ]);
    expect(store.cluster.status?.conditions?.length).toBeGreaterThan(0);
  });

  it('writes nothing when a pass computes the status already written', async () => {
    const store = new MemoryStore({ replicas: 3, paused: true });
    const ended = await runPasses(store, emptyPlatform({ message: null }), 3, { nudge: true });
    expect(ended.map((p) => p.error)).toEqual([null, null, null]);
    expect(store.writes).toEqual([{ resourceVersion: '1', labels: undefined, ok: true }]);
  });

  it('records a failing step once while it fails alike, again when the failure changes, and backs off', async () => {
    const store = new MemoryStore({ replicas: 3 });
    const failure = { message: 'the API server is away' as string | null };
    const ended = await runPasses(store, emptyPlatform(failure), 3, {
      after: (passes) => {
        if (passes.length === 2) failure.message = 'quota exceeded';
      },
    });
    expect(ended.map((p) => [p.action, p.error])).toEqual([
      ['ensure-members', 'the API server is away'],
      ['ensure-members', 'the API server is away'],
      ['ensure-members', 'quota exceeded'],
    ]);
    expect(store.events).toEqual([
      { type: 'Warning', reason: 'ReconcileFailed', message: 'ensure-members: the API server is away' },
      { type: 'Warning', reason: 'ReconcileFailed', message: 'ensure-members: quota exceeded' },
    ]);
    // Only the reconciler's own requeue brought the next pass, later each time: 500 ms, then 1 s.
    const gaps = [ended[1]!.at - ended[0]!.at, ended[2]!.at - ended[1]!.at];
    expect(gaps[0]).toBeGreaterThanOrEqual(450);
    expect(gaps[1]).toBeGreaterThanOrEqual(950);
    expect(store.writes).toEqual([]);
  });
});
