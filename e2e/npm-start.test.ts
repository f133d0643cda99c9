// `npm start` (operator/local.ts) with a node port another program holds: the terminal names the
// slot, the port and its log file instead of waiting in silence, and the cluster comes up once the
// port is free. A second `npm start` on the same data stops at once, naming the first. Then
// `conflux scale` finds its control endpoint from --admin or --api alone, without CONFLUX_BASE_PORT.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanEnv, conflux, REPO } from './support/cli-run.js';
import { until } from './support/local-operator.js';

// Ports BASE-1 .. BASE+202: below the ephemeral range (free ports of other suites) and away from
// the other suites' ranges (cli 12000+, local-restart 20000+).
const BASE = 28_400 + 400 * Math.floor(Math.random() * 10);

describe('npm start with a node port taken', () => {
  const root = mkdtempSync(join(tmpdir(), 'conflux-npm-start-'));
  let child: ChildProcess | undefined;
  let blocker: Server | undefined;
  let out = '';
  afterAll(async () => {
    blocker?.close();
    if (child?.pid && child.exitCode === null) {
      process.kill(-child.pid, 'SIGINT');
      await new Promise((ok) => child?.once('exit', ok));
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('names the crash-looping slot, its port and log, then runs once the port is free', async () => {
    const port = BASE + 101; // slot 1's client API
    blocker = createServer((socket) => socket.destroy()); // another program on the port
    await new Promise<void>((ok) => blocker?.listen(port, '127.0.0.1', ok));
    child = spawn(process.execPath, ['--import', 'tsx', 'operator/local.ts', '--root', root], {
      cwd: REPO,
      env: cleanEnv({ CONFLUX_BASE_PORT: String(BASE) }),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (out += d));
    const line = await until(
      'the slot to be named',
      async () => out.split('\n').find((l) => l.startsWith('local-1 cannot start')),
      90_000,
    );
    expect(line).toMatch(
      new RegExp(
        `^local-1 cannot start: port ${port} is in use by another program \\(log: .*logs/local-1\\.log\\)`,
      ),
    );
    expect(out).not.toContain('Conflux is running');
    await new Promise<void>((ok) => blocker?.close(() => ok()));
    await until('Conflux is running', async () => out.includes('Conflux is running'), 90_000);
  }, 200_000);

  it('a second `npm start` on the same data names the running one before it builds anything', async () => {
    const second = spawnSync(process.execPath, ['scripts/start.mjs', '--root', root], {
      cwd: REPO,
      env: cleanEnv({ CONFLUX_BASE_PORT: String(BASE + 300) }),
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(second.status).toBe(1);
    expect(second.stdout).not.toContain('Building');
    expect(second.stderr.trim()).toBe(
      `Conflux is already running on ${root} (pid ${child?.pid}); stop it first (Ctrl-C in its terminal, or kill ${child?.pid}), or give another --root.`,
    );
  });

  it('conflux scale finds npm start from --admin or --api, without CONFLUX_BASE_PORT', async () => {
    const spec = async () => {
      const res = await fetch(
        `http://127.0.0.1:${BASE - 1}/apis/conflux.io/v1alpha1/namespaces/default/confluxclusters/local`,
      );
      return ((await res.json()) as { spec: { replicas: number } }).spec.replicas;
    };
    const viaAdmin = await conflux(['scale', '4', '--admin', `http://127.0.0.1:${BASE + 201}`]);
    expect(viaAdmin.code, viaAdmin.err).toBe(0);
    expect(viaAdmin.out).toMatch(/^local: \d → 4 replicas requested/);
    expect(await spec()).toBe(4);
    const viaApi = await conflux(['scale', '3', '--api', `127.0.0.1:${BASE + 102}`, '--json']);
    expect(viaApi.code, viaApi.err).toBe(0);
    expect(JSON.parse(viaApi.out)).toMatchObject({ kind: 'Scale', spec: { replicas: 3 } });
    expect(await spec()).toBe(3);
  }, 60_000);
});
