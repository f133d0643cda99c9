// Rolling updates on the Local platform with real node processes, under a continuous write load:
// a 5-member cluster moves to a new image one member at a time, the leader last after one
// transfer, with no acknowledged write lost; then a broken image (its process exits at start)
// stalls the roll with one member down and the cluster serving; a fixed image resumes it with the
// broken member first and completes it. The Local platform runs each image as a command.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfluxCluster } from '../operator/api/cluster.js';
import { defaultCommand, type LocalPlatform } from '../operator/platform/local.js';
import type { LocalStore } from '../operator/platform/local-store.js';
import type { MemberPod } from '../operator/platform/platform.js';
import type { Action } from '../operator/reconcile/types.js';
import { type LocalOperator, startLocalOperator, until } from './support/local-operator.js';
import { sleep } from './support/process-cluster.js';

const NAME = 'roll';
/** The versions this test rolls through: each image runs a command, as a container would. */
const node = defaultCommand(false);
const IMAGES = {
  'conflux:1': node,
  'conflux:2': node,
  'conflux:3': node,
  'conflux:broken': {
    execPath: process.execPath,
    args: ['-e', "console.error('conflux:broken cannot start'); process.exit(3)"],
  },
};

/**
 * Writers that go through the members a Service would route to (the Ready ones), retrying a
 * request on the next member for a while, as a client with several endpoints does. A write is
 * acknowledged by a 200; it failed when every attempt failed.
 */
class WriteLoad {
  readonly acked = new Map<string, string>();
  readonly failures: string[] = [];
  private endpoints: string[] = [];
  private running = true;
  private readonly loops: Promise<void>[] = [];

  constructor(private readonly pods: () => Promise<MemberPod[]>) {}

  async start(writers: number): Promise<void> {
    await this.refresh();
    this.loops.push(this.refreshLoop());
    for (let w = 0; w < writers; w++) this.loops.push(this.writer(w));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async refresh(): Promise<void> {
    const ready = (await this.pods()).filter((p) => p.ready).map((p) => `http://${p.addresses.api}`);
    if (ready.length > 0) this.endpoints = ready;
  }

  private async refreshLoop(): Promise<void> {
    while (this.running) {
      await this.refresh().catch(() => undefined);
      await sleep(250);
    }
  }

  private async writer(w: number): Promise<void> {
    for (let seq = 0; this.running; seq++) {
      const key = `load/${w}/${seq}`;
      const value = `${w}:${seq}`;
      const errors: string[] = [];
      for (let attempt = 0; attempt < 10; attempt++) {
        const eps = this.endpoints;
        const url = eps[(seq + attempt) % eps.length];
        try {
          const res = await fetch(`${url}/v1/kv/${key}`, {
            method: 'PUT',
            body: value,
            signal: AbortSignal.timeout(5_000),
          });
          const text = await res.text();
          if (res.status === 200) {
            this.acked.set(key, value);
            break;
          }
          errors.push(`${url} ${res.status} ${text.slice(0, 120)}`);
        } catch (err) {
          errors.push(`${url} ${(err as Error).message}`);
        }
        await sleep(200);
      }
      if (!this.acked.has(key)) this.failures.push(`${key}: ${errors.join(' | ')}`);
    }
  }
}

describe('rolling updates on the Local platform', () => {
  let op: LocalOperator;
  let store: LocalStore;
  let platform: LocalPlatform;
  let load: WriteLoad;
  /** Steps the operator took, in order (only those that succeeded). */
  const steps: Action[] = [];

  const get = () => store.getCluster('default', NAME) as Promise<ConfluxCluster>;
  const condition = (c: ConfluxCluster, type: string) => c.status?.conditions?.find((x) => x.type === type);
  const pods = async () => platform.pods(await get());
  const pidsByOrdinal = async () => {
    const c = await get();
    return Object.fromEntries([0, 1, 2, 3, 4].map((o) => [o, platform.pid(c, o)]));
  };
  const setImage = async (image: string) => {
    const c = await get();
    await store.applyCluster({
      apiVersion: c.apiVersion,
      kind: c.kind,
      metadata: { name: NAME },
      spec: { ...c.spec, image },
    });
    return platform.templateRevision(await get());
  };
  /** Every member on `revision`, Ready, the operator idle and not stalled. */
  const rolled = (revision: string, ms = 300_000) =>
    until(
      `every member on revision ${revision}`,
      async () => {
        const c = await get();
        const ps = await platform.pods(c);
        const onIt = ps.length === 5 && ps.every((p) => p.revision === revision && !p.outdated && p.ready);
        return onIt && condition(c, 'Ready')?.status === 'True' && !c.status?.operation ? c : undefined;
      },
      ms,
    );

  beforeAll(async () => {
    op = await startLocalOperator('conflux-rolling', {
      platform: { stopGraceMs: 5_000, images: IMAGES },
      reconciler: {
        onPass: (_key, action, error) => {
          if (!error && action.type !== 'wait' && action.type !== 'none') steps.push(action);
        },
      },
    });
    ({ store, platform } = op);
    load = new WriteLoad(pods);
  });
  afterAll(async () => {
    await load?.stop();
    await op?.stop();
  });

  it('rolls a new template through 5 members one at a time, the leader last, losing no write', async () => {
    await store.applyCluster({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: NAME },
      spec: { replicas: 5, image: 'conflux:1', rollingUpdate: { readyTimeoutSeconds: 60 } },
    });
    const first = await platform.templateRevision(await get());
    const before = await rolled(first, 180_000);
    const ids = before.status?.members?.map((m) => `${m.pod}=${m.id}`).sort();
    const leaderBefore = before.status?.members?.find((m) => m.id === before.status?.leaderId)?.pod;
    const pidsBefore = await pidsByOrdinal();
    await load.start(3);
    await sleep(1_000);
    steps.length = 0;

    const second = await setImage('conflux:2');
    expect(second).not.toBe(first);
    // At no time is more than one member down.
    let mostDown = 0;
    const after = await until(
      'the roll to finish',
      async () => {
        const ps = await pods();
        mostDown = Math.max(mostDown, ps.filter((p) => !p.running).length);
        const c = await get();
        const done = ps.every((p) => p.revision === second && p.ready) && !c.status?.operation;
        return done && condition(c, 'Ready')?.status === 'True' ? c : undefined;
      },
      300_000,
    );
    await sleep(1_000);
    expect(mostDown).toBeLessThanOrEqual(1);

    // Every member restarted exactly once, as the same node, the leader last after one transfer.
    const restarts = steps.filter((a) => a.type === 'restart-member').map((a) => a.ordinal);
    expect([...restarts].sort()).toEqual([0, 1, 2, 3, 4]);
    const transfers = steps.filter((a) => a.type === 'transfer-leader');
    expect(transfers.length).toBeLessThanOrEqual(1);
    expect(`${NAME}-${restarts.at(-1)}`).toBe(leaderBefore);
    const pidsAfter = await pidsByOrdinal();
    for (const o of [0, 1, 2, 3, 4]) expect(pidsAfter[o]).not.toBe(pidsBefore[o]);
    expect(after.status?.members?.map((m) => `${m.pod}=${m.id}`).sort()).toEqual(ids);
    const reasons = store.events({ name: NAME }).map((e) => e.reason);
    expect(reasons.filter((r) => r === 'RestartingMember')).toHaveLength(5);
    expect(reasons).toContain('RollingUpdateCompleted');
    expect(reasons).not.toContain('ReconcileFailed');

    const acked = load.acked.size;
    console.log(
      `rolling update: ${acked} acknowledged writes, ${load.failures.length} failed, transfers ${transfers.length}, restart order ${restarts.join(',')}`,
      load.failures.slice(0, 5),
    );
    expect(acked).toBeGreaterThan(100);
    expect(load.failures).toEqual([]);
  }, 600_000);

  it('stops at a broken template with one member down, serving, and resumes once it is fixed', async () => {
    const broken = await setImage('conflux:broken');
    const stalled = await until(
      'Stalled RollingUpdateFailed',
      async () => {
        const c = await get();
        return condition(c, 'Stalled')?.status === 'True' ? c : undefined;
      },
      240_000,
    );
    const stall = condition(stalled, 'Stalled');
    expect(stall?.reason).toBe('RollingUpdateFailed');
    const bad = stalled.status?.operation?.ordinal as number;
    expect(stall?.message).toContain(`${NAME}-${bad} did not come back`);

    // Only that member tried the broken template; the others keep serving writes.
    const ackedAtStall = load.acked.size;
    for (let i = 0; i < 12; i++) {
      const ps = await pods();
      expect(ps.filter((p) => p.revision === broken).map((p) => p.ordinal)).toEqual([bad]);
      expect(ps.filter((p) => p.ordinal !== bad).every((p) => p.running)).toBe(true);
      await sleep(500);
    }
    expect(load.acked.size).toBeGreaterThan(ackedAtStall);
    const reasons = store.events({ name: NAME }).map((e) => e.reason);
    expect(reasons).toContain('RollingUpdateFailed');

    steps.length = 0;
    const fixed = await setImage('conflux:3');
    const done = await rolled(fixed);
    expect(condition(done, 'Stalled')?.status).toBe('False');
    const restarts = steps.filter((a) => a.type === 'restart-member').map((a) => a.ordinal);
    expect(restarts[0]).toBe(bad);
    expect([...restarts].sort()).toEqual([0, 1, 2, 3, 4]);

    await load.stop();
    console.log(
      `after the failed and fixed rolls: ${load.acked.size} acknowledged, ${load.failures.length} failed`,
    );
    expect(load.failures).toEqual([]);
    const api = `http://${(await pods())[0]?.addresses.api}`;
    const missing: string[] = [];
    for (const [key, value] of load.acked) {
      const res = await fetch(`${api}/v1/kv/${key}`);
      const body = (await res.json()) as { value?: string };
      if (body.value !== value) missing.push(key);
    }
    expect(missing).toEqual([]);
  }, 600_000);
});
