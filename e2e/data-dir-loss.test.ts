// A member's data lost, seen from the outside: a node whose data directory is deleted while it runs
// says so in /readyz (not ready, `dataDir`) and in its log within seconds instead of only at its
// next start; a node that came back empty answers serializable reads with NOT_INITIALIZED instead
// of an empty store that looks like a cluster without the keys.

import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlotCluster } from './support/cli-run.js';
import { until } from './support/local-operator.js';

// Ports BASE .. BASE+202: below the ephemeral range and away from the other suites' ranges (cli
// 12000-17802, local-restart 20000+, npm-start 28400+, readme-walk 10000-11604).
const BASE = 18_000 + 300 * Math.floor(Math.random() * 6);

describe('a data directory lost under a member', () => {
  const cluster = new SlotCluster(BASE);
  beforeAll(() => cluster.start(), 120_000);
  afterAll(() => cluster.destroy());

  it('a node restarted empty answers a serializable read with NOT_INITIALIZED', async () => {
    const put = await fetch(`${cluster.api(0)}/v1/kv/app/greeting`, { method: 'PUT', body: 'hello' });
    expect(put.status).toBe(200);
    await cluster.wipe(2);
    cluster.spawn(2, { pristine: 's2-new' });
    await cluster.listening(2);
    const res = await fetch(`${cluster.api(2)}/v1/kv/app/greeting?consistency=serializable`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('NOT_INITIALIZED');
    const member = await fetch(`${cluster.api(1)}/v1/kv/app/greeting?consistency=serializable&raw=1`);
    expect(await member.text()).toBe('hello');
  }, 60_000);

  it('a data directory deleted while its node runs shows in /readyz and the log', async () => {
    expect((await fetch(`${cluster.api(1)}/readyz`)).status).toBe(200);
    rmSync(join(cluster.dir, 'slot-1'), { recursive: true, force: true });
    const body = await until(
      'slot 1 to report its data directory',
      async () => {
        const r = await fetch(`${cluster.api(1)}/readyz`);
        const doc = (await r.json()) as { ready: boolean; dataDir?: string };
        return r.status === 503 ? doc : undefined;
      },
      20_000,
    );
    expect(body.ready).toBe(false);
    expect(body.dataDir).toBe(`data directory ${join(cluster.dir, 'slot-1')} was deleted while the node ran`);
    const line = await until(
      'the log line',
      () =>
        readFileSync(join(cluster.dir, 'slot-1.log'), 'utf8')
          .split('\n')
          .find((l) => l.includes('"code":"DATA_DIR_LOST"')),
      10_000,
    );
    expect(JSON.parse(line)).toMatchObject({ level: 50, dataDir: join(cluster.dir, 'slot-1') });
    // The other member still serves.
    expect((await fetch(`${cluster.api(0)}/readyz`)).status).toBe(200);
  }, 40_000);
});
