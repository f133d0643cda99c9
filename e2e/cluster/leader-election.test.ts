// The operator's leader election (operator/platform/leader-election.ts) on real Leases of the real
// API server: the Lease round trip (MicroTime with microseconds, 409 on a stale resourceVersion),
// exactly one leader among candidates, a release handed over at once, a killed leader replaced
// after the lease duration, a leader that finds another holder stepping down, and a leader whose
// renewal hangs stepping down within its renew deadline, before anyone else may lead. The hang is
// made by a TCP proxy between that leader and the API server that stops forwarding (a network
// fault, not an API imitation). Only the control plane runs (no nodes): it starts in seconds.
// The pure lease logic (decideLease, nextLeaseRecord) stays in the unit test beside the code.

import { type ChildProcess, spawn } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  kubernetesLeaseApi,
  LeaderElector,
  type LeaseApi,
  LeaseConflictError,
  nextLeaseRecord,
} from '../../operator/platform/leader-election.js';
import { binariesPresent, ensureBinaries, hasGo } from './binaries.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';
import { sleep } from './proc.js';
import { skipUnless } from './require.js';

const skip = skipUnless(
  binariesPresent() || hasGo(),
  'leader-election.test.ts',
  'no Go toolchain to build the Kubernetes binaries (e2e/cluster/build.sh) and none cached',
);

const NS = 'operator';
const REPO = resolve(import.meta.dirname, '../..');
/** Whole seconds: a Lease records its duration in seconds. */
const TIMING = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 250 };
const silent = pino({ level: 'silent' });

async function until(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
  return Date.now();
}

/**
 * A TCP proxy in front of the API server that can stop forwarding in both directions (requests
 * reach neither side, connections stay open): what a leader sees when its API path hangs.
 */
class StallingProxy {
  private stalled = false;
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  static async start(target: { host: string; port: number }): Promise<StallingProxy> {
    const server = createServer();
    const proxy = new StallingProxy(server);
    server.on('connection', (client) => {
      const upstream = createConnection(target);
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        proxy.sockets.add(from);
        from.on('data', (chunk) => to.write(chunk));
        from.on('end', () => to.end());
        from.on('error', () => to.destroy());
        from.on('close', () => {
          proxy.sockets.delete(from);
          to.destroy();
        });
        if (proxy.stalled) from.pause();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  stall(): void {
    this.stalled = true;
    for (const s of this.sockets) s.pause();
  }

  resume(): void {
    this.stalled = false;
    for (const s of this.sockets) s.resume();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

describe.skipIf(skip)('leader election on real Leases', () => {
  let cp: ControlPlane;
  let admin: KubeConfig;
  const electors: LeaderElector[] = [];
  const children: ChildProcess[] = [];
  const proxies: StallingProxy[] = [];

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    admin = new KubeConfig();
    admin.loadFromFile(cp.kubeconfigPath);
    await cp.kubectl(['create', 'namespace', NS]);
  }, 90 * 60_000);

  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    await Promise.all(electors.splice(0).map((e) => e.stop()));
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });

  afterAll(async () => {
    await cp?.stop();
  }, 60_000);

  /** The admin kubeconfig, reaching the API server through `proxy`. */
  function throughProxy(proxy: StallingProxy): KubeConfig {
    const kc = new KubeConfig();
    const url = new URL(cp.apiserverUrl);
    url.port = String(proxy.port);
    kc.loadFromOptions({
      clusters: admin.clusters.map((c) => ({ ...c, server: url.origin })),
      users: admin.users,
      contexts: admin.contexts,
      currentContext: admin.currentContext,
    });
    return kc;
  }

  function elector(lease: LeaseApi, identity: string, log: string[]): LeaderElector {
    const e = new LeaderElector({
      lease,
      identity,
      ...TIMING,
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

  /** The Lease as the API server stores it. */
  async function stored(name: string) {
    const r = await cp.api('GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${name}`);
    expect(r.status).toBe(200);
    return JSON.parse(r.body) as {
      metadata: { resourceVersion: string };
      spec: { holderIdentity?: string; leaseTransitions?: number; acquireTime?: string; renewTime?: string };
    };
  }

  it('reads, creates and replaces the Lease; MicroTime keeps microseconds; a stale write is a conflict', async () => {
    const api = kubernetesLeaseApi(admin, NS, 'round-trip');
    expect(await api.get()).toBeNull();
    const now = new Date('2030-01-01T00:00:00.123Z');
    const record = nextLeaseRecord({ action: 'create' }, null, 'op-1', now, 15_000);
    const created = await api.create(record);
    expect(created.record).toEqual(record);
    expect((await stored('round-trip')).spec).toEqual({
      holderIdentity: 'op-1',
      leaseDurationSeconds: 15,
      acquireTime: '2030-01-01T00:00:00.123000Z',
      renewTime: '2030-01-01T00:00:00.123000Z',
      leaseTransitions: 0,
    });
    await expect(api.create(record)).rejects.toBeInstanceOf(LeaseConflictError);

    const read = await api.get();
    expect(read).toEqual(created); // MicroTime strings come back as Dates
    const renewed = await api.update(
      { ...record, renewTime: new Date(now.getTime() + 2_000) },
      created.resourceVersion,
    );
    expect(renewed.resourceVersion).not.toBe(created.resourceVersion);
    expect((await stored('round-trip')).spec.renewTime).toBe('2030-01-01T00:00:02.123000Z');
    await expect(api.update(record, created.resourceVersion)).rejects.toBeInstanceOf(LeaseConflictError);
  });

  it('exactly one of three candidates leads; stopping it hands over at once', async () => {
    const log: string[] = [];
    const all = ['a', 'b', 'c'].map((id) => elector(kubernetesLeaseApi(admin, NS, 'handover'), id, log));
    for (const e of all) e.start();
    await until('a leader', () => all.some((e) => e.isLeader()));
    // Over a few renewals, never two at once.
    for (let i = 0; i < 40; i++) {
      expect(all.filter((e) => e.isLeader())).toHaveLength(1);
      await sleep(25);
    }
    // Each attempt's stop() listener is removed again: none pile up on a long-running elector.
    for (const e of all) {
      const { signal } = (e as unknown as { abort: AbortController }).abort;
      expect(getEventListeners(signal, 'abort').length).toBeLessThanOrEqual(1);
    }
    const leader = all.find((e) => e.isLeader())!;
    const first = log[0]!.split(' ')[0]!;

    const stoppedAt = Date.now();
    await leader.stop();
    // Released (no holder), or already taken by another candidate on its next attempt.
    expect((await stored('handover')).spec.holderIdentity).not.toBe(first);
    const tookOver = await until('another leader', () => all.some((e) => e !== leader && e.isLeader()));
    // A released lease is taken on a next attempt, not after a lease duration.
    expect(tookOver - stoppedAt).toBeLessThan(TIMING.leaseDurationMs / 2);
    const next = all.find((e) => e.isLeader())!;
    const second = log[2]!.split(' ')[0]!;
    expect(log).toEqual([`${first} started`, `${first} stopped`, `${second} started`]);
    expect(next).not.toBe(leader);
    const spec = (await stored('handover')).spec;
    expect(spec.holderIdentity).toBe(second);
    expect(spec.leaseTransitions).toBe(1);
  });

  it('a killed leader is replaced once its lease has gone unrenewed for the lease duration', async () => {
    const lines: string[] = [];
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'e2e/cluster/lease-candidate.ts',
        cp.kubeconfigPath,
        NS,
        'crash',
        'doomed',
        String(TIMING.leaseDurationMs),
        String(TIMING.renewDeadlineMs),
        String(TIMING.retryPeriodMs),
      ],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().trim().split('\n')));
    await until('the child to lead', () => lines.includes('started'), 30_000);

    const log: string[] = [];
    const b = elector(kubernetesLeaseApi(admin, NS, 'crash'), 'b', log);
    b.start();
    await sleep(TIMING.leaseDurationMs + 500);
    expect(b.isLeader()).toBe(false); // the child renews: its lease stays live

    const exited = new Promise((r) => child.once('exit', r));
    const killedAt = Date.now();
    child.kill('SIGKILL');
    await exited;
    // The child's last renewal, by the machine's clock (the child's is the same).
    const last = (await stored('crash')).spec;
    expect(last.holderIdentity).toBe('doomed');
    const renewedAt = Date.parse(last.renewTime!);
    const tookOver = await until('b to take over', () => b.isLeader());
    const waited = tookOver - killedAt;
    // b counts the lease duration from when it saw that renewal, and looks again every retry
    // period (+20% jitter); the child renewed about a retry period before it died.
    expect(tookOver - renewedAt).toBeGreaterThanOrEqual(TIMING.leaseDurationMs);
    expect(waited).toBeLessThan(TIMING.leaseDurationMs + 3 * TIMING.retryPeriodMs + 1_000);
    expect(lines).toEqual(['started']); // killed: it never said it stopped
    const spec = (await stored('crash')).spec;
    expect(spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    console.log(`leader-election: killed leader replaced after ${waited} ms (lease duration 3000 ms)`);
  });

  it('a leader that finds another holder in the Lease steps down at once', async () => {
    const log: string[] = [];
    const a = elector(kubernetesLeaseApi(admin, NS, 'taken'), 'a', log);
    a.start();
    await until('a to lead', () => a.isLeader());
    // Someone else wrote the Lease (say, a's process was paused past the lease duration).
    const api = kubernetesLeaseApi(admin, NS, 'taken');
    for (;;) {
      const current = (await api.get())!;
      try {
        await api.update(
          { ...current.record, holderIdentity: 'z', renewTime: new Date() },
          current.resourceVersion,
        );
        break;
      } catch (err) {
        if (!(err instanceof LeaseConflictError)) throw err; // a renewed meanwhile: read again
      }
    }
    const takenAt = Date.now();
    const stepped = await until('a to step down', () => !a.isLeader(), 5_000);
    expect(stepped - takenAt).toBeLessThan(TIMING.retryPeriodMs + 1_000);
    expect(log).toEqual(['a started', 'a stopped']);
    expect((await stored('taken')).spec.holderIdentity).toBe('z');
  });

  it('a leader whose renewal hangs steps down within its renew deadline, before anyone else leads', async () => {
    const url = new URL(cp.apiserverUrl);
    const proxy = await StallingProxy.start({ host: url.hostname, port: Number(url.port) });
    proxies.push(proxy);
    const log: string[] = [];
    // A request timeout far beyond the renew deadline: only the elector's own bound can help.
    const a = elector(kubernetesLeaseApi(throughProxy(proxy), NS, 'hung', 60_000), 'a', log);
    a.start();
    await until('a to lead', () => a.isLeader());
    const b = elector(kubernetesLeaseApi(admin, NS, 'hung'), 'b', log);
    b.start();
    await sleep(TIMING.leaseDurationMs + 500);
    expect(b.isLeader()).toBe(false);

    const stalledAt = Date.now();
    proxy.stall();
    const aStoppedAt = await until('a to step down', () => !a.isLeader());
    // a's last renewal the API server holds (any later one would show a later time): its clock
    // is ours, so the renew deadline is measured from exactly when a last renewed.
    const held = (await stored('hung')).spec;
    expect(held.holderIdentity).toBe('a');
    expect(b.isLeader()).toBe(false);
    const renewedAt = Date.parse(held.renewTime!);
    const bStartedAt = await until('b to take over', () => b.isLeader());
    const aStopped = aStoppedAt - stalledAt;
    const bStarted = bStartedAt - stalledAt;
    // a steps down at its last renewal plus the renew deadline (not at once: the stall is only
    // noticed when the deadline passes); b takes over only a lease duration after that renewal.
    // (Slack for timers firing late on a loaded machine.)
    expect(aStoppedAt - renewedAt).toBeLessThanOrEqual(TIMING.renewDeadlineMs + 300);
    expect(aStopped).toBeGreaterThanOrEqual(TIMING.renewDeadlineMs / 2);
    expect(bStartedAt - renewedAt).toBeGreaterThanOrEqual(TIMING.leaseDurationMs);
    expect(log).toEqual(['a started', 'a stopped', 'b started']);

    // The path comes back: a's held requests reach the API server late (a read that now finds b,
    // or a write on a stale resourceVersion, refused with 409); either way b keeps the Lease.
    proxy.resume();
    await sleep(TIMING.leaseDurationMs);
    expect(a.isLeader()).toBe(false);
    expect(b.isLeader()).toBe(true);
    expect((await stored('hung')).spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    expect(log).toEqual(['a started', 'a stopped', 'b started']);
    console.log(
      `leader-election: hung renewal: a stepped down ${aStoppedAt - renewedAt} ms after its last renewal ` +
        `(${aStopped} ms after the stall), b led ${bStartedAt - renewedAt} ms after it (${bStarted} ms after the stall)`,
    );
  });
});
