// The `conflux` CLI and `conflux-node` as a user meets them on day two, through their real entry
// points against real node processes on npm start's ports: a member down, one restarting under a
// watch, the leader removed through a follower, a quorum lost with slot 0's data gone.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterStatusSchema } from '../node/api/admin-contract.js';
import { conflux, confluxNode, SlotCluster, startConflux } from './support/cli-run.js';
import { until } from './support/local-operator.js';

// Ports BASE .. BASE+202 must be free: a range away from the other suites' (local-restart: 20000+).
const BASE = 12_000 + 400 * Math.floor(Math.random() * 15);
const ENV = { CONFLUX_BASE_PORT: String(BASE) };

describe('conflux-node --help', () => {
  it('prints every setting with its flag, variable and default, and exits 0', async () => {
    const r = await confluxNode(['--help']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^usage: conflux-node \[flags\]/);
    for (const [flag, env] of [
      ['--data-dir <value>', 'CONFLUX_DATA_DIR, default ./data'],
      ['--api-addr <value>', 'CONFLUX_API_ADDR, default 127.0.0.1:8080'],
      ['--dev-insecure', 'CONFLUX_DEV_INSECURE, default off'],
      ['--quota-bytes <value>', 'CONFLUX_QUOTA_BYTES)\n      storage quota'],
      ['--catch-up-timeout-ms <value>', 'CONFLUX_CATCH_UP_TIMEOUT_MS'],
    ])
      expect(r.out).toContain(`${flag}  (${env}`);
    const bad = await confluxNode(['--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('conflux-node --help');
  }, 60_000);
});

describe('the conflux CLI against npm start slots', () => {
  const c = new SlotCluster(BASE);
  beforeAll(() => c.start(), 120_000);
  afterAll(() => c.destroy());

  const put = (k: number, key: string, value: string) =>
    until(`${key} written`, async () => {
      const res = await fetch(`${c.api(k)}/v1/kv/${key}`, {
        method: 'PUT',
        body: value,
        signal: AbortSignal.timeout(3_000),
      }).catch(() => undefined);
      return res?.ok;
    });

  it('status finds the slots through CONFLUX_BASE_PORT', async () => {
    const r = await conflux(['status'], ENV);
    expect(r.code, r.err).toBe(0);
    for (const id of ['s0', 's1', 's2']) expect(r.out).toContain(id);
    expect(r.out).toMatch(/fault tolerance:\s+1/);
  }, 30_000);

  it('kv watch goes on through restarts of the members it watches: nothing lost, nothing twice', async () => {
    const watch = startConflux(['kv', 'watch', 'w/'], ENV);
    try {
      // The watch pins its start when it begins; a probe shows it has.
      let probes = 0;
      await until('the watch to run', async () => {
        await put(1, `w/probe-${probes++}`, 'p');
        return watch.out().includes('PUT w/probe-');
      });
      const expected: string[] = [];
      const write = async (k: number, n: number) => {
        await put(k, `w/${n}`, `v${n}`);
        expected.push(`w/${n} = v${n}`);
      };
      for (let n = 1; n <= 3; n++) await write(1, n);
      await c.kill(0); // the member it watches (slot 0 comes first)
      for (let n = 4; n <= 6; n++) await write(1, n);
      // Also a write through the CLI itself while slot 0 is down.
      const cliPut = await conflux(['kv', 'put', 'w/7', 'v7'], ENV);
      expect(cliPut.code, cliPut.err).toBe(0);
      expected.push('w/7 = v7');
      c.spawn(0);
      await c.ready(0);
      await c.kill(1); // where it went next
      for (let n = 8; n <= 10; n++) await write(0, n);
      c.spawn(1);
      await c.ready(1);
      for (let n = 11; n <= 12; n++) await write(2, n);
      await until('every write to be printed', async () => watch.out().includes('PUT w/12 = v12'), 30_000);
      watch.child.kill('SIGINT');
      await watch.done;
      const lines = watch
        .out()
        .trim()
        .split('\n')
        .filter((l) => !l.includes('w/probe-'));
      expect(lines.map((l) => l.replace(/^\d+ PUT /, ''))).toEqual(expected);
      const revisions = lines.map((l) => Number(l.split(' ')[0]));
      expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
      expect(watch.err()).toMatch(/watch: lost 127\.0\.0\.1:\d+ \(.+\); reconnecting from revision \d+/);
      expect(watch.err()).toMatch(/watch: resumed on 127\.0\.0\.1:\d+ from revision \d+/);
    } finally {
      watch.child.kill('SIGKILL');
    }
  }, 120_000);

  it('nodes remove <leader> through a follower: leadership moves, the new leader removes it', async () => {
    const moved = await conflux(['leader', 'transfer', 's0'], ENV);
    expect(moved.code, moved.err).toBe(0);
    expect(moved.out).toContain('leader is now s0');
    const r = await conflux(['nodes', 'remove', 's0', '--admin', c.admin(1)], ENV);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/remove-node s0: succeeded/);
    const s = await conflux(['status', '--json', '--admin', `${c.admin(1)},${c.admin(2)}`], ENV);
    expect(s.code, s.err).toBe(0);
    expect(Object.keys(clusterStatusSchema.parse(JSON.parse(s.out)).nodes).sort()).toEqual(['s1', 's2']);
  }, 90_000);

  it('with slot 0 wiped and a quorum lost, status names both and exits 1', async () => {
    await c.wipe(0);
    c.spawn(0, { pristine: 's0-new' }); // slot 0 comes back empty, as a node whose data was lost
    await c.listening(0);
    await c.kill(1); // voters s1 and s2: one left
    const r = await conflux(['status'], ENV);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/leader:\s+none/);
    expect(r.out).toContain('s2');
    expect(r.out).toContain(`127.0.0.1:${BASE + 200} answers but holds no cluster`);
    expect(r.err).toMatch(/^error: QUORUM_LOST: quorum lost: 1 of 2 voters reachable, 2 needed/);

    const j = await conflux(['status', '--json'], ENV);
    expect(j.code).toBe(1);
    expect(clusterStatusSchema.parse(JSON.parse(j.out)).cluster_id).toBeTruthy();
    expect(JSON.parse(j.err)).toMatchObject({ error: { code: 'QUORUM_LOST' } });

    // A serializable read still answers, from the survivor: not from slot 0's empty state.
    const read = await conflux(['kv', 'get', 'w/1', '--serializable'], ENV);
    expect(read).toMatchObject({ code: 0, out: 'v1\n' });

    // A write is refused with the cluster's own error, not a hang or a success.
    const w = await conflux(['kv', 'put', 'after/loss', 'x'], ENV);
    expect(w.code).toBe(1);
    expect(w.err).toMatch(/^error: [A-Z_]+: /);
  }, 180_000);

  it('with no member answering, status says so and exits 1', async () => {
    await c.kill(0);
    await c.kill(2);
    const r = await conflux(['status'], ENV);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: cannot reach any member: 127\.0\.0\.1:\d+ \(/);
    expect(r.err).toContain('is the cluster running? npm start');
  }, 30_000);
});
