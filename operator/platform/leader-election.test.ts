import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  decideLease,
  kubernetesLeaseApi,
  LeaderElector,
  type LeaseApi,
  LeaseConflictError,
  type LeaseRecord,
  nextLeaseRecord,
} from './leader-election.js';

const silent = pino({ level: 'silent' });
const t0 = new Date('2030-01-01T00:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);
const DEFAULT = { defaultLeaseDurationMs: 15_000 };

describe('decideLease', () => {
  const held = (holder: string | undefined, renewMs: number, durationS = 15): LeaseRecord => ({
    ...(holder ? { holderIdentity: holder } : {}),
    leaseDurationSeconds: durationS,
    acquireTime: t0,
    renewTime: at(renewMs),
    leaseTransitions: 2,
  });

  it.each([
    ['no lease: create it', null, 0, undefined, { action: 'create' }],
    [
      'released (no holder): take it',
      held(undefined, 0),
      1_000,
      undefined,
      { action: 'acquire', reason: 'released' },
    ],
    ['ours: renew', held('me', 0), 1_000, undefined, { action: 'renew' }],
    ['ours, even if expired: renew', held('me', 0), 60_000, undefined, { action: 'renew' }],
    [
      'theirs, live: wait',
      held('them', 0),
      14_999,
      undefined,
      { action: 'wait', holder: 'them', expiresAt: at(15_000) },
    ],
    [
      'theirs, expired by renewTime: take it',
      held('them', 0),
      15_000,
      undefined,
      { action: 'acquire', reason: 'expired' },
    ],
    [
      'theirs, old renewTime but only just observed: wait (clock skew)',
      held('them', -3_600_000),
      0,
      at(-1_000),
      { action: 'wait', holder: 'them', expiresAt: at(14_000) },
    ],
    [
      'theirs, observed unchanged for a whole duration: take it',
      held('them', 5_000),
      20_000,
      at(5_000),
      { action: 'acquire', reason: 'expired' },
    ],
    [
      'their own duration counts (5 s)',
      held('them', 0, 5),
      5_000,
      undefined,
      { action: 'acquire', reason: 'expired' },
    ],
    [
      'theirs without any time: take it',
      { holderIdentity: 'them' },
      0,
      undefined,
      { action: 'acquire', reason: 'expired' },
    ],
  ] as const)('%s', (_, lease, nowMs, observedAt, expected) => {
    const decision = decideLease(lease, 'me', at(nowMs), {
      ...DEFAULT,
      ...(observedAt ? { observedAt } : {}),
    });
    expect(decision).toEqual(expected);
  });

  it('a missing duration falls back to the default', () => {
    const lease = { holderIdentity: 'them', renewTime: t0 };
    expect(decideLease(lease, 'me', at(9_999), { defaultLeaseDurationMs: 10_000 }).action).toBe('wait');
    expect(decideLease(lease, 'me', at(10_000), { defaultLeaseDurationMs: 10_000 }).action).toBe('acquire');
  });
});

describe('nextLeaseRecord', () => {
  const theirs: LeaseRecord = {
    holderIdentity: 'them',
    leaseDurationSeconds: 15,
    acquireTime: t0,
    renewTime: t0,
    leaseTransitions: 4,
  };
  it('create: held by us, no transitions yet', () => {
    expect(nextLeaseRecord({ action: 'create' }, null, 'me', at(1), 15_000)).toEqual({
      holderIdentity: 'me',
      leaseDurationSeconds: 15,
      acquireTime: at(1),
      renewTime: at(1),
      leaseTransitions: 0,
    });
  });
  it('acquire from another holder counts a transition', () => {
    const r = nextLeaseRecord({ action: 'acquire', reason: 'expired' }, theirs, 'me', at(20_000), 15_000);
    expect(r).toMatchObject({ holderIdentity: 'me', acquireTime: at(20_000), leaseTransitions: 5 });
  });
  it('renew moves only renewTime', () => {
    const ours = { ...theirs, holderIdentity: 'me' };
    expect(nextLeaseRecord({ action: 'renew' }, ours, 'me', at(2_000), 15_000)).toEqual({
      ...ours,
      renewTime: at(2_000),
    });
  });
  it('durations round up to whole seconds', () => {
    expect(nextLeaseRecord({ action: 'create' }, null, 'me', t0, 1_500).leaseDurationSeconds).toBe(2);
  });
});

/** One Lease in memory with resourceVersions; `broken` makes one client's calls fail. */
class MemoryLease {
  record: LeaseRecord | null = null;
  rv = 0;
  client(broken: () => boolean = () => false): LeaseApi {
    const check = () => {
      if (broken()) throw new Error('connection refused');
    };
    return {
      get: async () => {
        check();
        return this.record ? { record: { ...this.record }, resourceVersion: String(this.rv) } : null;
      },
      create: async (record) => {
        check();
        if (this.record) throw new LeaseConflictError('exists');
        this.record = { ...record };
        return { record, resourceVersion: String(++this.rv) };
      },
      update: async (record, resourceVersion) => {
        check();
        if (resourceVersion !== String(this.rv)) throw new LeaseConflictError('stale');
        this.record = { ...record };
        return { record, resourceVersion: String(++this.rv) };
      },
    };
  }
}

async function until(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('LeaderElector', () => {
  const electors: LeaderElector[] = [];
  afterEach(async () => {
    await Promise.all(electors.splice(0).map((e) => e.stop()));
  });

  function elector(lease: LeaseApi, identity: string, log: string[]) {
    const e = new LeaderElector({
      lease,
      identity,
      leaseDurationMs: 400,
      renewDeadlineMs: 200,
      retryPeriodMs: 20,
      logger: silent,
      onStartedLeading: () => {
        log.push(`${identity} started`);
      },
      onStoppedLeading: () => {
        log.push(`${identity} stopped`);
      },
    });
    electors.push(e);
    return e;
  }

  it('exactly one of two candidates leads; stopping it hands over at once', async () => {
    const store = new MemoryLease();
    const log: string[] = [];
    const a = elector(store.client(), 'a', log);
    const b = elector(store.client(), 'b', log);
    a.start();
    b.start();
    await until(() => a.isLeader() || b.isLeader());
    await new Promise((r) => setTimeout(r, 100));
    expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
    const [leader, other] = a.isLeader() ? [a, b] : [b, a];

    const stoppedAt = Date.now();
    await leader.stop();
    expect(store.record?.holderIdentity).toBeUndefined();
    await until(() => other.isLeader());
    // A released lease is taken on the next attempt, not after a lease duration.
    expect(Date.now() - stoppedAt).toBeLessThan(300);
    expect(log).toEqual(
      leader === a ? ['a started', 'a stopped', 'b started'] : ['b started', 'b stopped', 'a started'],
    );
    expect(store.record?.leaseTransitions).toBe(1);
  });

  it('a leader that cannot renew steps down before anyone else may take over', async () => {
    const store = new MemoryLease();
    const log: string[] = [];
    let aBroken = false;
    const a = elector(
      store.client(() => aBroken),
      'a',
      log,
    );
    a.start();
    await until(() => a.isLeader());
    const b = elector(store.client(), 'b', log);
    b.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(b.isLeader()).toBe(false);

    aBroken = true;
    await until(() => !a.isLeader());
    await until(() => b.isLeader());
    expect(log).toEqual(['a started', 'a stopped', 'b started']);
  });

  it('a leader that finds another holder steps down at once', async () => {
    const store = new MemoryLease();
    const log: string[] = [];
    const a = elector(store.client(), 'a', log);
    a.start();
    await until(() => a.isLeader());
    // Someone else took the lease (say, a's process was paused past the lease duration).
    store.record = { ...store.record, holderIdentity: 'z', renewTime: new Date() };
    store.rv++;
    await until(() => !a.isLeader(), 200);
    expect(log).toEqual(['a started', 'a stopped']);
  });

  it('refuses timings that could let two leaders overlap', () => {
    const base = {
      lease: new MemoryLease().client(),
      identity: 'x',
      logger: silent,
      onStartedLeading: () => {},
      onStoppedLeading: () => {},
    };
    expect(() => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 })).toThrow(
      /leaseDurationMs > renewDeadlineMs > retryPeriodMs/,
    );
  });
});

describe('kubernetesLeaseApi (against a stand-in HTTP server)', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  async function serve(handler: (req: IncomingMessage, body: string, res: ServerResponse) => void) {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => handler(req, body, res));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        {
          name: 'fake',
          server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          skipTLSVerify: true,
        },
      ],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'c', cluster: 'fake', user: 'u' }],
      currentContext: 'c',
    });
    return kc;
  }

  it('reads, creates and updates the Lease; MicroTime has microseconds; 409 is a conflict', async () => {
    let stored: { metadata: { resourceVersion: string }; spec: Record<string, unknown> } | null = null;
    const bodies: Record<string, unknown>[] = [];
    const path = '/apis/coordination.k8s.io/v1/namespaces/ops/leases/conflux-operator';
    const kc = await serve((req, raw, res) => {
      const send = (code: number, obj: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      const status = (code: number, reason: string) =>
        send(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, code });
      const body = raw ? JSON.parse(raw) : null;
      if (body) bodies.push(body);
      if (req.method === 'GET' && req.url === path)
        return stored ? send(200, stored) : status(404, 'NotFound');
      if (req.method === 'POST' && req.url === '/apis/coordination.k8s.io/v1/namespaces/ops/leases') {
        if (stored) return status(409, 'AlreadyExists');
        stored = { ...body, metadata: { ...body.metadata, resourceVersion: '1' } };
        return send(201, stored);
      }
      if (req.method === 'PUT' && req.url === path) {
        if (body.metadata.resourceVersion !== stored?.metadata.resourceVersion)
          return status(409, 'Conflict');
        stored = {
          ...body,
          metadata: {
            ...body.metadata,
            resourceVersion: String(Number(stored!.metadata.resourceVersion) + 1),
          },
        };
        return send(200, stored);
      }
      status(404, 'NotFound');
    });

    const api = kubernetesLeaseApi(kc, 'ops', 'conflux-operator');
    expect(await api.get()).toBeNull();
    const now = new Date('2030-01-01T00:00:00.123Z');
    const record = nextLeaseRecord({ action: 'create' }, null, 'op-1', now, 15_000);
    const created = await api.create(record);
    expect(created.resourceVersion).toBe('1');
    expect(bodies[0]).toMatchObject({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'conflux-operator', namespace: 'ops' },
      spec: {
        holderIdentity: 'op-1',
        leaseDurationSeconds: 15,
        acquireTime: '2030-01-01T00:00:00.123000Z',
        renewTime: '2030-01-01T00:00:00.123000Z',
        leaseTransitions: 0,
      },
    });
    await expect(api.create(record)).rejects.toBeInstanceOf(LeaseConflictError);

    const read = await api.get();
    expect(read?.record).toEqual(record); // MicroTime strings come back as Dates
    const renewed = await api.update({ ...record, renewTime: new Date(now.getTime() + 2_000) }, '1');
    expect(renewed.resourceVersion).toBe('2');
    await expect(api.update(record, '1')).rejects.toBeInstanceOf(LeaseConflictError);
  });
});
