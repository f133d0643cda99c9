import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, type ConfluxCluster, confluxClusterSchema } from '../api/cluster.js';
import { LocalPlatform, type LocalPlatformOptions, nodeIdPrefix } from './local.js';

const cluster = (name = 'demo', namespace = 'default'): ConfluxCluster =>
  confluxClusterSchema.parse({
    apiVersion: API_VERSION,
    kind: 'ConfluxCluster',
    metadata: { name, namespace },
    spec: { replicas: 3 },
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  // A node started from source takes 20-30 s on a busy two-core machine.
  timeoutMs = 45_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  return { status: res.status, body: await res.json() };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A stand-in for conflux-node: prints its flags and CONFLUX_* variables, then idles (or not). */
const DUMMY = `
if (process.env.DUMMY_MODE === 'crash') process.exit(1);
if (process.env.DUMMY_MODE === 'stubborn') process.on('SIGTERM', () => {});
console.log(JSON.stringify({ argv: process.argv.slice(2), conflux: Object.keys(process.env).filter((k) => k.startsWith('CONFLUX_')) }));
setInterval(() => {}, 1e6);
`;

describe('LocalPlatform with stand-in processes', () => {
  let root: string;
  let dummy: string;
  const platforms: LocalPlatform[] = [];
  const make = (o: Partial<LocalPlatformOptions> = {}) => {
    const p = new LocalPlatform({
      root,
      command: { execPath: process.execPath, args: [dummy] },
      stopGraceMs: 2_000,
      ...o,
    });
    platforms.push(p);
    return p;
  };

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'conflux-local-'));
    dummy = join(root, 'dummy.cjs');
    writeFileSync(dummy, DUMMY);
  });
  afterEach(async () => {
    await Promise.all(platforms.splice(0).map((p) => p.stopAll()));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('lays out the base ports for the first cluster, free ports for the next, and passes the flags', async () => {
    process.env.CONFLUX_JOIN = '127.0.0.1:1'; // must not leak into the nodes
    try {
      const p = make({ basePort: 17_101 });
      const a = cluster('base', 'ports');
      const b = cluster('second', 'ports');
      await p.ensureMembers(a, 2);
      await p.ensureMembers(b, 1);
      const podsA = await p.pods(a);
      expect(podsA.map((x) => [x.name, x.addresses])).toEqual([
        ['base-0', { raft: '127.0.0.1:17101', api: '127.0.0.1:17201', admin: '127.0.0.1:17301' }],
        ['base-1', { raft: '127.0.0.1:17102', api: '127.0.0.1:17202', admin: '127.0.0.1:17302' }],
      ]);
      const [podB] = await p.pods(b);
      const portsB = Object.values(podB!.addresses).map((x) => Number(x.split(':')[1]));
      for (const port of portsB) expect(port < 17_101 || port >= 17_401).toBe(true);

      const log = p.logFile(a, 1);
      expect(log).toBe(join(root, 'ports', 'base', 'logs', 'base-1.log'));
      const printed = await until('the stand-in to print', async () => {
        const line = readFileSync(log, 'utf8')
          .split('\n')
          .find((l) => l.startsWith('{'));
        return line ? (JSON.parse(line) as { argv: string[]; conflux: string[] }) : undefined;
      });
      expect(printed.conflux).toEqual([]);
      expect(printed.argv.join(' ')).toBe(
        [
          '--dev-insecure',
          `--data-dir ${p.volumeDir(a, 1)}`,
          '--api-addr 127.0.0.1:17202 --raft-addr 127.0.0.1:17102 --admin-addr 127.0.0.1:17302',
          '--tick-ms 50 --election-ticks 10 --snapshot-entries 10000',
          '--node-id-prefix base-1',
        ].join(' '),
      );
      expect(p.volumeDir(a, 1)).toBe(join(root, 'ports', 'base', 'volumes', 'base-1'));
      expect(existsSync(p.volumeDir(a, 1))).toBe(true);

      // Another platform (a restarted operator) keeps the same layout, base range included.
      await p.stopAll();
      const q = make({ basePort: 17_101 });
      const c = cluster('third', 'ports');
      await q.ensureMembers(c, 1);
      expect((await q.pods(a)).map((x) => x.addresses.api)).toEqual(['127.0.0.1:17201', '127.0.0.1:17202']);
      expect((await q.pods(b))[0]?.addresses).toEqual(podB?.addresses);
      expect((await q.pods(c))[0]?.addresses.api).not.toBe('127.0.0.1:17201');
      expect(await q.setSize(a)).toBe(2);
      expect((await q.pods(a)).every((x) => x.running)).toBe(true);
    } finally {
      delete process.env.CONFLUX_JOIN;
    }
  });

  it('backs off restarting a slot that keeps crashing', async () => {
    const p = make({ env: { DUMMY_MODE: 'crash' } });
    const c = cluster('crashy');
    const starts = () =>
      readFileSync(p.logFile(c, 0), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('---')).length;
    const stopped = async () => (await p.pods(c)).every((x) => !x.running);
    await p.ensureMembers(c, 1);
    await until('the first crash', stopped);
    await p.ensureMembers(c, 1); // first crash after a start: restart at once
    expect(starts()).toBe(2);
    await until('the second crash', stopped);
    await p.ensureMembers(c, 1); // a crash loop: wait
    expect(starts()).toBe(2);
  });

  it('restarts a slot whose process died on its own, after a back-off, unless told not to', async () => {
    const p = make();
    const c = cluster('kubelet');
    await p.ensureMembers(c, 2);
    const first = p.pid(c, 0)!;
    const before = await p.pods(c);
    await p.kill(c, 0);
    expect((await p.pods(c)).map((x) => x.running)).toEqual([false, true]);
    const second = await until(
      'slot 0 to come back',
      async () => (await p.pods(c))[0]?.running && p.pid(c, 0),
    );
    expect(second).not.toBe(first);
    expect((await p.pods(c)).map((x) => x.addresses)).toEqual(before.map((x) => x.addresses));

    const manual = make({ autoRestart: false });
    const m = cluster('manual');
    await manual.ensureMembers(m, 1);
    await manual.kill(m, 0);
    await sleep(1_200);
    expect((await manual.pods(m))[0]?.running).toBe(false);
    await manual.ensureMembers(m, 1);
    expect((await manual.pods(m))[0]?.running).toBe(true);
  });

  it('kills a slot that ignores SIGTERM after the grace period', async () => {
    const p = make({ env: { DUMMY_MODE: 'stubborn' }, stopGraceMs: 300 });
    const c = cluster('stubborn');
    await p.ensureMembers(c, 1);
    const pid = p.pid(c, 0)!;
    // It prints once its SIGTERM handler is in place.
    await until('the stand-in to start', async () =>
      readFileSync(p.logFile(c, 0), 'utf8').includes('"argv"'),
    );
    const started = Date.now();
    await p.stopAll();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(alive(pid)).toBe(false);
  });

  it('ends the processes a previous operator left behind before starting new ones', async () => {
    const old = new LocalPlatform({ root, command: { execPath: process.execPath, args: [dummy] } });
    const c = cluster('orphans');
    await old.ensureMembers(c, 1);
    const orphan = old.pid(c, 0)!;
    const next = make();
    await next.ensureMembers(c, 1);
    await until('the orphan to be gone', async () => !alive(orphan));
    expect(next.pid(c, 0)).not.toBe(orphan);
    expect((await next.pods(c))[0]?.running).toBe(true);
    await old.stopAll();
  });

  it('starts the recorded set on its own when a new operator looks at the cluster, as after a reboot', async () => {
    const first = make();
    const c = cluster('reboot');
    await first.ensureMembers(c, 2);
    const addresses = (await first.pods(c)).map((x) => x.addresses);
    await first.stopAll();
    expect((await first.pods(c)).map((x) => x.running)).toEqual([false, false]);

    // No ensureMembers: looking at the cluster is enough, on the same ports and volumes.
    const next = make();
    const pods = await next.pods(c);
    expect(pods.map((x) => x.running)).toEqual([true, true]);
    expect(pods.map((x) => x.addresses)).toEqual(addresses);
    const flags = readFileSync(next.logFile(c, 1), 'utf8').trim().split('\n').at(-1)!;
    expect(flags).toContain(next.volumeDir(c, 1));

    const manual = make({ autoRestart: false });
    await next.stopAll();
    expect((await manual.pods(c)).map((x) => x.running)).toEqual([false, false]);
  });

  it('refuses bad names and sizes', async () => {
    const p = make();
    await expect(p.ensureMembers(cluster('ok'), -1)).rejects.toThrow(/invalid set size/);
    const evil = { ...cluster('ok'), metadata: { ...cluster('ok').metadata, namespace: '../..' } };
    await expect(p.ensureMembers(evil, 1)).rejects.toThrow(/invalid cluster name/);
    expect(nodeIdPrefix('a'.repeat(63), 12)).toBe(`${'a'.repeat(51)}-12`);
    expect(await p.backupCredentials(cluster())).toBeUndefined();
    expect(await p.adminClient(cluster())).toEqual({ timeoutMs: 5000 });
  });
});

describe('LocalPlatform with conflux-node processes', () => {
  let root: string;
  let platform: LocalPlatform;
  const c = cluster('demo');
  const pids: number[] = [];

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'conflux-local-'));
    platform = new LocalPlatform({ root, stopGraceMs: 5_000, extraArgs: ['--log-level', 'warn'] });
  });
  afterAll(async () => {
    await platform.stopAll();
    rmSync(root, { recursive: true, force: true });
  });

  it('starts two empty nodes whose health and internal status answer', async () => {
    await platform.ensureMembers(c, 2);
    await platform.ensureMembers(c, 2); // idempotent: no second process
    expect(await platform.setSize(c)).toBe(2);
    const pods = await platform.pods(c);
    expect(pods.map((p) => [p.ordinal, p.name, p.running])).toEqual([
      [0, 'demo-0', true],
      [1, 'demo-1', true],
    ]);
    for (const pod of pods) {
      pids.push(platform.pid(c, pod.ordinal)!);
      const health = await until(`${pod.name} /healthz`, async () => {
        const r = await getJson(`http://${pod.addresses.api}/healthz`);
        return r.status === 200 && (r.body as { node: string });
      });
      expect(health.node).toMatch(new RegExp(`^${pod.name}-[0-9a-f]+$`));
      const status = await getJson(`http://${pod.addresses.admin}/_internal/status`);
      expect(status.status).toBe(200);
      expect(status.body).toMatchObject({ node_id: health.node, initialized: false });
    }
    // Not members of anything yet: not ready.
    expect((await platform.pods(c)).map((p) => p.ready)).toEqual([false, false]);
    expect(JSON.parse(readFileSync(join(root, 'default', 'demo', 'slots.json'), 'utf8')).size).toBe(2);
  }, 120_000);

  it('restarts a killed slot on the same ports and volume, with the same node id', async () => {
    const before = await platform.pods(c);
    const id = (await getJson(`http://${before[0]!.addresses.api}/healthz`)).body as { node: string };
    await platform.kill(c, 0);
    expect(alive(pids[0]!)).toBe(false);
    expect((await platform.pods(c)).map((p) => p.running)).toEqual([false, true]);
    await platform.ensureMembers(c, 2);
    const after = await platform.pods(c);
    expect(after.map((p) => p.addresses)).toEqual(before.map((p) => p.addresses));
    expect(after.map((p) => p.running)).toEqual([true, true]);
    pids.push(platform.pid(c, 0)!);
    const again = await until('demo-0 back', async () => {
      const r = await getJson(`http://${after[0]!.addresses.api}/healthz`);
      return r.status === 200 && (r.body as { node: string });
    });
    expect(again.node).toBe(id.node);
  });

  it('shrinks to one: stops slot 1, keeps its volume until deleteVolume', async () => {
    await platform.ensureMembers(c, 1);
    expect(await platform.setSize(c)).toBe(1);
    // Still stopping: listed, and its volume may not go yet.
    expect((await platform.pods(c)).map((p) => p.ordinal)).toEqual([0, 1]);
    await expect(platform.deleteVolume(c, 1)).rejects.toThrow(/still runs/);
    await expect(platform.deleteVolume(c, 0)).rejects.toThrow(/in the set/);

    await until('demo-1 to stop', async () => (await platform.pods(c)).length === 1);
    expect(alive(pids[1]!)).toBe(false);
    const volume = platform.volumeDir(c, 1);
    expect(existsSync(join(volume, 'node-id'))).toBe(true);
    await platform.deleteVolume(c, 1);
    expect(existsSync(volume)).toBe(false);
    expect(existsSync(platform.volumeDir(c, 0))).toBe(true);
  });

  it('stopAll leaves no process behind', async () => {
    await platform.stopAll();
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect((await platform.pods(c)).map((p) => p.running)).toEqual([false]);
  });
});
