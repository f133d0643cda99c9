// The reconcile loop: observe -> plan (pure) -> act (one idempotent step) -> write status ->
// requeue. One pass per cluster at a time; changes to a cluster while a pass runs queue exactly
// one more pass (a work queue with de-duplication). Failures back off exponentially and are
// reported as Warning events; they never stop the loop.

import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { API_VERSION, type ClusterStatus, type ConfluxCluster } from '../api/cluster.js';
import {
  ConflictError,
  type InvalidCluster,
  type Platform,
  type ResourceStore,
} from '../platform/platform.js';
import { act } from './act.js';
import { backupStatusAfter, nextBackupTime, runBackup, withBackupResult } from './backups.js';
import { setCondition } from './conditions.js';
import { adminAddressOf, observe, statusSource } from './observe.js';
import { plan } from './plan.js';
import type { Reason } from './reasons.js';
import type { Action, Observation } from './types.js';

export interface ReconcilerOptions {
  store: ResourceStore;
  platform: Platform;
  logger: Logger;
  /** First delay before a failed initial list of the clusters is retried (doubling). Default 1 s. */
  listRetryMs?: number;
  /** Look at a converged cluster again after this long (status refresh). Default 10 s. */
  resyncMs?: number;
  /** Called after every pass (metrics, tests). */
  onPass?: (key: string, action: Action, error: Error | null, ms: number) => void;
  /** Called with the status each pass computed (metrics). */
  onStatus?: (key: string, status: ClusterStatus) => void;
  /**
   * Crash tests: asked after each step was taken, before its status is written; true stops this
   * reconciler on the spot, as if the operator process died there.
   */
  failpoint?: (action: Action) => boolean;
}

class Crash extends Error {}

type Key = { namespace: string; name: string };
const keyOf = (k: Key) => `${k.namespace}/${k.name}`;

/** After a step was taken, look again soon: its effect is what the next pass observes. */
const AFTER_ACTION_MS = 200;
const MAX_BACKOFF_MS = 30_000;
const backoffMs = (failures: number) => Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(failures, 10));
/** Condition and event reason of a spec the CRD admits but the operator cannot run. */
export const INVALID_SPEC: Reason = 'InvalidSpec';

export class Reconciler {
  private readonly queued = new Map<string, Key>();
  private readonly running = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly failures = new Map<string, number>();
  private readonly lastEvents = new Map<string, string>();
  private stopWatch: (() => void) | null = null;
  private stopped = false;
  private readonly resyncMs: number;

  constructor(private readonly o: ReconcilerOptions) {
    this.resyncMs = o.resyncMs ?? 10_000;
  }

  /**
   * Watch the store and reconcile every cluster it holds. The first list is retried until it
   * succeeds: an API server answers 429 while a CRD installed a moment ago initializes its storage.
   */
  async start(): Promise<void> {
    this.stopWatch = this.o.store.watch((k) => this.enqueue(k));
    for (let n = 0; !this.stopped; n++) {
      try {
        for (const c of await this.o.store.listClusters()) this.enqueue(c.metadata);
        return;
      } catch (err) {
        const retryInMs = Math.min(MAX_BACKOFF_MS, (this.o.listRetryMs ?? 1000) * 2 ** Math.min(n, 10));
        this.o.logger.warn({ err: (err as Error).message, retryInMs }, 'listing clusters failed; retrying');
        await new Promise((r) => setTimeout(r, retryInMs));
      }
    }
  }

  /** Whether a failpoint stopped this reconciler. */
  get crashed(): boolean {
    return this.stopped;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopWatch?.();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    while (this.running.size > 0) await new Promise((r) => setTimeout(r, 20));
  }

  enqueue(k: Key, delayMs = 0): void {
    if (this.stopped) return;
    const key = keyOf(k);
    if (delayMs > 0) {
      clearTimeout(this.timers.get(key));
      this.timers.set(
        key,
        setTimeout(() => {
          this.timers.delete(key);
          this.enqueue(k);
        }, delayMs),
      );
      return;
    }
    this.queued.set(key, { namespace: k.namespace, name: k.name });
    if (!this.running.has(key)) void this.drain(key);
  }

  private async drain(key: string): Promise<void> {
    this.running.add(key);
    try {
      while (!this.stopped) {
        const k = this.queued.get(key);
        if (!k) break;
        this.queued.delete(key);
        const next = await this.pass(k).catch((err: unknown) => this.passFailed(key, err));
        if (next !== null) this.enqueue(k, next);
      }
    } finally {
      this.running.delete(key);
    }
  }

  /**
   * A pass that failed before it had a cluster to report on (the API server refused the read): log
   * it and look again after the same back-off as a failed step. Nothing a pass throws may reach
   * the process as an unhandled rejection.
   */
  private passFailed(key: string, err: unknown): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const message = err instanceof Error ? err.message : String(err);
    this.o.logger.warn({ err: message, cluster: key, failures: n }, 'reading the cluster failed; retrying');
    return backoffMs(n);
  }

  /** One pass; returns when to look again (null: the cluster is gone). */
  private async pass(k: Key): Promise<number | null> {
    const key = keyOf(k);
    const started = performance.now();
    const cluster = await this.o.store.getCluster(k.namespace, k.name);
    if (!cluster) {
      const invalid = await this.o.store.invalidCluster?.(k.namespace, k.name);
      if (invalid) return this.reportInvalid(invalid);
      // A ConfluxBackup changed: reconcile the cluster it names.
      const backup = (await this.o.store.listBackups(k.namespace)).find((b) => b.metadata.name === k.name);
      if (backup) this.enqueue({ namespace: k.namespace, name: backup.spec.clusterName });
      return null;
    }
    const log = this.o.logger.child({ cluster: k.name, namespace: k.namespace });
    let action: Action = { type: 'none' };
    try {
      const obs = await observe(this.o.platform, cluster);
      const p = plan(obs);
      action = p.action;
      if (action.type !== 'none' && action.type !== 'wait') log.info({ action }, 'reconcile step');
      const learned = await act(this.o.platform, obs, action);
      const step = action.type !== 'wait' && action.type !== 'none';
      if (step && this.o.failpoint?.(action)) throw new Crash(`failpoint after ${action.type}`);
      let status: ClusterStatus = p.status;
      if (learned.clusterId) status = { ...status, clusterId: learned.clusterId };
      if (learned.restoredFrom) status = { ...status, restoredFrom: learned.restoredFrom };
      if (learned.operationId && status.operation) {
        status = { ...status, operation: { ...status.operation, operationId: learned.operationId } };
      }
      const settled = !step;
      if (settled && obs.status?.leader_id) status = await this.backups(cluster, obs, status);
      await this.writeStatus(cluster, status);
      this.o.onStatus?.(key, status);
      for (const e of p.events) await this.event(cluster, e.type, e.reason, e.message);
      this.failures.delete(key);
      this.o.onPass?.(key, action, null, performance.now() - started);
      if (!settled) return AFTER_ACTION_MS;
      const untilBackup = status.nextBackup
        ? Date.parse(status.nextBackup) - Date.now()
        : Number.POSITIVE_INFINITY;
      const requeue = action.type === 'wait' ? action.requeueMs : this.resyncMs;
      return Math.max(50, Math.min(requeue, untilBackup));
    } catch (err) {
      if (err instanceof Crash) {
        this.stopped = true;
        this.stopWatch?.();
        return null;
      }
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      const error = err instanceof Error ? err : new Error(String(err));
      log.warn({ err: error.message, action, failures: n }, 'reconcile step failed');
      await this.event(cluster, 'Warning', 'ReconcileFailed', `${action.type}: ${error.message}`).catch(
        () => undefined,
      );
      this.o.onPass?.(key, action, error, performance.now() - started);
      return backoffMs(n);
    }
  }

  /**
   * A cluster the CRD admitted but the operator cannot run: Ready=False and Degraded=True with
   * reason InvalidSpec naming the fields, and a Warning event. Its members are left as they are
   * (the last good spec keeps running) until the spec is fixed.
   */
  private async reportInvalid(invalid: InvalidCluster): Promise<number> {
    const message = `the spec cannot be run: ${invalid.problems.join('; ')}`;
    const now = new Date();
    const generation = invalid.metadata.generation;
    let conditions = setCondition(
      invalid.status.conditions,
      { type: 'Ready', status: 'False', reason: INVALID_SPEC, message },
      now,
      generation,
    );
    conditions = setCondition(
      conditions,
      { type: 'Degraded', status: 'True', reason: INVALID_SPEC, message },
      now,
      generation,
    );
    const status: ClusterStatus = { ...invalid.status, conditions };
    if (!isDeepStrictEqual(invalid.status, status)) {
      await this.o.store.writeInvalidClusterStatus?.(invalid, status).catch((err: unknown) => {
        if (!(err instanceof ConflictError)) throw err;
      });
    }
    const shell = { apiVersion: API_VERSION, kind: 'ConfluxCluster', metadata: invalid.metadata, spec: {} };
    await this.event(shell as unknown as ConfluxCluster, 'Warning', INVALID_SPEC, message);
    this.o.logger.warn({ cluster: invalid.metadata.name, problems: invalid.problems }, 'spec cannot be run');
    return this.resyncMs;
  }

  /** Scheduled backups when due, then the ConfluxBackups waiting for this cluster. */
  private async backups(
    cluster: ConfluxCluster,
    obs: Observation,
    status: ClusterStatus,
  ): Promise<ClusterStatus> {
    const member = statusSource(obs.slots);
    const address = member && adminAddressOf(member);
    if (!address) return status;
    const client = await this.o.platform.adminClient(cluster);
    const now = new Date();
    let next = status;
    const due = nextBackupTime({ ...cluster, status });
    const destination = cluster.spec.backup?.destination.uri;
    if (due && destination && due.getTime() <= now.getTime()) {
      const result = await runBackup(address, destination, false, client);
      next = withBackupResult(cluster, status, result, new Date());
      await this.event(
        cluster,
        result.ok ? 'Normal' : 'Warning',
        result.ok ? 'BackupCompleted' : 'BackupFailed',
        result.ok ? `backed up to ${result.uri}` : result.error,
      );
    } else if (due) {
      next = { ...status, nextBackup: due.toISOString() };
    }
    for (const backup of await this.o.store.listBackups(cluster.metadata.namespace)) {
      if (backup.spec.clusterName !== cluster.metadata.name) continue;
      if (backup.status?.phase === 'Succeeded' || backup.status?.phase === 'Failed') continue;
      const uri = backup.spec.destination?.uri ?? destination;
      const started = new Date();
      const result = uri
        ? await runBackup(address, uri, true, client)
        : ({
            ok: false,
            error: "no destination: set spec.destination or the cluster's spec.backup.destination",
          } as const);
      await this.o.store.writeBackupStatus(backup, backupStatusAfter(backup, result, started, new Date()));
      await this.o.store.event(
        backup,
        result.ok ? 'Normal' : 'Warning',
        result.ok ? 'BackupCompleted' : 'BackupFailed',
        result.ok ? `backed up to ${result.uri}` : result.error,
      );
    }
    return next;
  }

  /** The one place status is written: a fresh read, no write when nothing changed, retry on conflict. */
  private async writeStatus(cluster: ConfluxCluster, status: ClusterStatus): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const fresh = await this.o.store.getCluster(cluster.metadata.namespace, cluster.metadata.name);
      if (!fresh) return;
      if (isDeepStrictEqual(fresh.status ?? {}, status)) return;
      try {
        await this.o.store.writeClusterStatus(fresh, status);
        return;
      } catch (err) {
        if (!(err instanceof ConflictError) || attempt >= 4) throw err;
      }
    }
  }

  /** Record an event unless it repeats the last one of the same reason for this cluster. */
  private async event(
    cluster: ConfluxCluster,
    type: 'Normal' | 'Warning',
    reason: Reason,
    message: string,
  ): Promise<void> {
    const key = `${keyOf(cluster.metadata)}/${reason}`;
    if (this.lastEvents.get(key) === message) return;
    this.lastEvents.set(key, message);
    await this.o.store.event(cluster, type, reason, message);
  }
}
