// Leader election over a coordination.k8s.io/v1 Lease, so two operator replicas never act at
// once. The semantics are client-go's: a candidate retries every retryPeriod; a lease held by
// someone else is taken over only after leaseDuration has passed without it changing, measured on
// the candidate's own clock from when it first saw the current record (so clock skew between
// replicas does not shorten a lease); the leader renews every retryPeriod and steps down when it
// could not renew for renewDeadline (< leaseDuration, so it stops acting before anyone else may
// start). Every write carries the resourceVersion read, so two candidates never both win.
//
// The clock logic is the pure `decideLease`; `LeaderElector` is the loop around it, over a small
// `LeaseApi` (the Kubernetes one; e2e/cluster/leader-election.test.ts runs it on a real API server).

import { setTimeout as sleepFor } from 'node:timers/promises';
import {
  ApiException,
  CoordinationV1Api,
  type KubeConfig,
  type V1Lease,
  V1MicroTime,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { boundedApiClient } from './kube-client.js';

export interface LeaseRecord {
  /** Empty or absent: released. */
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: Date;
  renewTime?: Date;
  leaseTransitions?: number;
}

export type LeaseDecision =
  /** No Lease exists: create it, held by us. */
  | { action: 'create' }
  /** We hold it: renew. */
  | { action: 'renew' }
  /** Nobody holds it, or the holder let it expire: take it. */
  | { action: 'acquire'; reason: 'released' | 'expired' }
  /** Someone else holds a live lease. */
  | { action: 'wait'; holder: string; expiresAt: Date };

/**
 * What a candidate does with the lease it read at `now`. `observedAt` is when this candidate first
 * saw the current record (by its own clock); without it the record's renewTime is trusted.
 */
export function decideLease(
  lease: LeaseRecord | null,
  identity: string,
  now: Date,
  options: { defaultLeaseDurationMs: number; observedAt?: Date },
): LeaseDecision {
  if (!lease) return { action: 'create' };
  const holder = lease.holderIdentity;
  if (!holder) return { action: 'acquire', reason: 'released' };
  if (holder === identity) return { action: 'renew' };
  const durationMs =
    lease.leaseDurationSeconds && lease.leaseDurationSeconds > 0
      ? lease.leaseDurationSeconds * 1000
      : options.defaultLeaseDurationMs;
  const since = options.observedAt ?? lease.renewTime ?? lease.acquireTime;
  if (!since) return { action: 'acquire', reason: 'expired' };
  const expiresAt = new Date(since.getTime() + durationMs);
  return now.getTime() >= expiresAt.getTime()
    ? { action: 'acquire', reason: 'expired' }
    : { action: 'wait', holder, expiresAt };
}

/** The record to write for a decision (nothing for `wait`). */
export function nextLeaseRecord(
  decision: Exclude<LeaseDecision, { action: 'wait' }>,
  current: LeaseRecord | null,
  identity: string,
  now: Date,
  leaseDurationMs: number,
): LeaseRecord {
  const leaseDurationSeconds = Math.max(1, Math.ceil(leaseDurationMs / 1000));
  if (decision.action === 'renew' && current) {
    return { ...current, holderIdentity: identity, leaseDurationSeconds, renewTime: now };
  }
  const transitions = current?.leaseTransitions ?? 0;
  return {
    holderIdentity: identity,
    leaseDurationSeconds,
    acquireTime: now,
    renewTime: now,
    leaseTransitions: current && current.holderIdentity !== identity ? transitions + 1 : transitions,
  };
}

export interface StoredLease {
  record: LeaseRecord;
  resourceVersion: string;
}

/** Someone else wrote the Lease since it was read (HTTP 409), or created it first. */
export class LeaseConflictError extends Error {
  override readonly name = 'LeaseConflictError';
}

export interface LeaseApi {
  get(): Promise<StoredLease | null>;
  create(record: LeaseRecord): Promise<StoredLease>;
  /** Conditional on `resourceVersion`; LeaseConflictError when it is stale. */
  update(record: LeaseRecord, resourceVersion: string): Promise<StoredLease>;
}

/** client-node hands MicroTime fields back as strings, not Dates. */
function toDate(value: unknown): Date | undefined {
  if (value instanceof Date) return value;
  if (typeof value === 'string' && value) {
    const t = Date.parse(value);
    return Number.isNaN(t) ? undefined : new Date(t);
  }
  return undefined;
}

function fromLease(lease: V1Lease): StoredLease {
  const s = lease.spec ?? {};
  const record: LeaseRecord = {};
  if (s.holderIdentity) record.holderIdentity = s.holderIdentity;
  if (s.leaseDurationSeconds !== undefined) record.leaseDurationSeconds = s.leaseDurationSeconds;
  const acquireTime = toDate(s.acquireTime);
  const renewTime = toDate(s.renewTime);
  if (acquireTime) record.acquireTime = acquireTime;
  if (renewTime) record.renewTime = renewTime;
  if (s.leaseTransitions !== undefined) record.leaseTransitions = s.leaseTransitions;
  return { record, resourceVersion: lease.metadata?.resourceVersion ?? '' };
}

function toLease(namespace: string, name: string, record: LeaseRecord, resourceVersion?: string): V1Lease {
  // MicroTime fields must be V1MicroTime: the API server refuses millisecond timestamps there.
  const micro = (d: Date | undefined) => (d ? new V1MicroTime(d.getTime()) : undefined);
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, ...(resourceVersion ? { resourceVersion } : {}) },
    spec: {
      ...(record.holderIdentity ? { holderIdentity: record.holderIdentity } : {}),
      ...(record.leaseDurationSeconds !== undefined
        ? { leaseDurationSeconds: record.leaseDurationSeconds }
        : {}),
      ...(record.acquireTime ? { acquireTime: micro(record.acquireTime) } : {}),
      ...(record.renewTime ? { renewTime: micro(record.renewTime) } : {}),
      ...(record.leaseTransitions !== undefined ? { leaseTransitions: record.leaseTransitions } : {}),
    },
  };
}

/** One Lease request may take this long (well inside the default 10 s renew deadline). */
export const LEASE_REQUEST_TIMEOUT_MS = 5_000;

/** The Lease `namespace/name` on the API server, every request bounded by `timeoutMs`. */
export function kubernetesLeaseApi(
  kubeConfig: KubeConfig,
  namespace: string,
  name: string,
  timeoutMs = LEASE_REQUEST_TIMEOUT_MS,
): LeaseApi {
  const api = boundedApiClient(kubeConfig, CoordinationV1Api, { timeoutMs });
  const conflict = (err: unknown) =>
    err instanceof ApiException && err.code === 409
      ? new LeaseConflictError(`Lease ${namespace}/${name} changed since it was read`)
      : err;
  return {
    async get() {
      try {
        return fromLease(await api.readNamespacedLease({ name, namespace }));
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) return null;
        throw err;
      }
    },
    async create(record) {
      try {
        return fromLease(
          await api.createNamespacedLease({ namespace, body: toLease(namespace, name, record) }),
        );
      } catch (err) {
        throw conflict(err);
      }
    },
    async update(record, resourceVersion) {
      try {
        const body = toLease(namespace, name, record, resourceVersion);
        return fromLease(await api.replaceNamespacedLease({ name, namespace, body }));
      } catch (err) {
        throw conflict(err);
      }
    },
  };
}

export interface LeaderElectionOptions {
  lease: LeaseApi;
  /** Unique per operator replica (its pod name). */
  identity: string;
  /** How long a lease lasts without renewal (default 15 s). */
  leaseDurationMs?: number;
  /** A leader that could not renew for this long steps down (default 10 s). */
  renewDeadlineMs?: number;
  /** How often candidates try and the leader renews (default 2 s). */
  retryPeriodMs?: number;
  onStartedLeading: () => void | Promise<void>;
  /** Called once when leadership ends (lost, or released by stop()). */
  onStoppedLeading: () => void;
  /** Another replica is seen leading. */
  onNewLeader?: (identity: string) => void;
  logger: Logger;
  now?: () => Date;
}

type Attempt = 'held' | 'lost' | 'failed';

export class LeaderElector {
  private leading = false;
  private observed: { resourceVersion: string; at: Date } | null = null;
  private lastLeader: string | undefined;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly now: () => Date;
  private readonly log: Logger;

  constructor(private readonly o: LeaderElectionOptions) {
    this.leaseDurationMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = o.retryPeriodMs ?? 2_000;
    if (!(this.leaseDurationMs > this.renewDeadlineMs && this.renewDeadlineMs > this.retryPeriodMs)) {
      throw new Error('leader election needs leaseDurationMs > renewDeadlineMs > retryPeriodMs');
    }
    this.now = o.now ?? (() => new Date());
    this.log = o.logger.child({ component: 'leader-election', identity: o.identity });
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops trying; a leader releases the Lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    if (!this.leading) return;
    try {
      await this.release();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not release the lease; it expires on its own');
    }
    this.stepDown('stopped');
  }

  /** Hand the Lease back (a 1-second lease, just expired), within the renew deadline. */
  private async release(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error('the API server did not answer in time')),
        this.renewDeadlineMs,
      );
    });
    try {
      await Promise.race([this.releaseNow(), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async releaseNow(): Promise<void> {
    const stored = await this.o.lease.get();
    if (stored?.record.holderIdentity === this.o.identity) {
      const now = this.now();
      const { leaseTransitions } = stored.record;
      await this.o.lease.update(
        {
          leaseDurationSeconds: 1,
          acquireTime: now,
          renewTime: now,
          ...(leaseTransitions !== undefined ? { leaseTransitions } : {}),
        },
        stored.resourceVersion,
      );
    }
    this.log.info('released the lease');
  }

  private async run(): Promise<void> {
    let lastRenewMs = 0;
    while (!this.abort.signal.aborted) {
      const attemptAtMs = this.now().getTime();
      // A leader's renewal must finish before its renew deadline (client-go bounds it the same
      // way): a request that hangs past it counts as failed, so the leader steps down on time
      // rather than act on a lease that may have passed to another replica.
      const budgetMs = this.leading
        ? Math.max(0, lastRenewMs + this.renewDeadlineMs - attemptAtMs)
        : this.renewDeadlineMs;
      const result = await this.bounded(this.attempt(), budgetMs);
      if (this.abort.signal.aborted) break;
      if (result === 'held') {
        // Counted from before the request: the lease may have been written any time after.
        lastRenewMs = attemptAtMs;
        if (!this.leading) {
          this.leading = true;
          this.log.info('started leading');
          Promise.resolve()
            .then(() => this.o.onStartedLeading())
            .catch((err: unknown) =>
              this.log.error({ err: (err as Error).message }, 'onStartedLeading failed'),
            );
        }
      } else if (
        this.leading &&
        (result === 'lost' || this.now().getTime() - lastRenewMs >= this.renewDeadlineMs)
      ) {
        this.stepDown(result === 'lost' ? 'another replica holds the lease' : 'could not renew in time');
      }
      // Candidates spread their attempts a little; the leader renews on time.
      const delayMs = this.leading ? this.retryPeriodMs : this.retryPeriodMs * (1 + Math.random() * 0.2);
      try {
        await sleepFor(delayMs, undefined, { signal: this.abort.signal });
      } catch {
        break; // aborted
      }
    }
  }

  /** The attempt's result, or 'failed' once `budgetMs` passed without one (or on stop()). */
  private async bounded(attempt: Promise<Attempt>, budgetMs: number): Promise<Attempt> {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const late = new Promise<Attempt>((resolve) => {
      timer = setTimeout(() => {
        this.log.warn({ budgetMs }, 'lease request did not answer within the renew deadline');
        resolve('failed');
      }, budgetMs);
      onAbort = () => resolve('failed');
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([attempt, late]);
    } finally {
      clearTimeout(timer);
      // One listener per attempt would otherwise pile up on the signal for the process's life.
      if (onAbort) this.abort.signal.removeEventListener('abort', onAbort);
    }
  }

  private stepDown(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.log.warn({ why }, 'stopped leading');
    try {
      this.o.onStoppedLeading();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'onStoppedLeading failed');
    }
  }

  private async attempt(): Promise<Attempt> {
    try {
      const now = this.now();
      const stored = await this.o.lease.get();
      if (stored && stored.resourceVersion !== this.observed?.resourceVersion) {
        this.observed = { resourceVersion: stored.resourceVersion, at: now };
      }
      const decision = decideLease(stored?.record ?? null, this.o.identity, now, {
        defaultLeaseDurationMs: this.leaseDurationMs,
        ...(stored && this.observed ? { observedAt: this.observed.at } : {}),
      });
      if (decision.action === 'wait') {
        if (decision.holder !== this.lastLeader) {
          this.lastLeader = decision.holder;
          this.o.onNewLeader?.(decision.holder);
        }
        return 'lost';
      }
      const record = nextLeaseRecord(
        decision,
        stored?.record ?? null,
        this.o.identity,
        now,
        this.leaseDurationMs,
      );
      const written =
        decision.action === 'create' || !stored
          ? await this.o.lease.create(record)
          : await this.o.lease.update(record, stored.resourceVersion);
      this.observed = { resourceVersion: written.resourceVersion, at: now };
      if (decision.action !== 'renew') this.log.info({ reason: decision.action }, 'acquired the lease');
      this.lastLeader = this.o.identity;
      return 'held';
    } catch (err) {
      const level = err instanceof LeaseConflictError ? 'debug' : 'warn';
      this.log[level]({ err: (err as Error).message }, 'lease attempt failed');
      return 'failed';
    }
  }
}
