// `npm start` as a user runs it, twice: the embedded default (operator/local.ts) as a real process
// over one data directory. Stopped with Ctrl-C (SIGINT) or killed with its whole process group,
// the next start brings the same cluster back with its data; a second start while the first runs
// stops at the data's lock (or, on other data, the busy control port) with a one-line message and
// leaves the running cluster alone.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { until } from './support/local-operator.js';

const REPO = resolve(import.meta.dirname, '..');
// Ports BASE-1 .. BASE+202 must be free: a range away from the other suites' defaults.
const BASE = 20_000 + 400 * Math.floor(Math.random() * 20);

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function start(root: string, base = BASE): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', 'operator/local.ts', '--root', root], {
    cwd: REPO,
    env: { ...process.env, CONFLUX_BASE_PORT: String(base) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, as a terminal gives `npm start`
  });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  return { child, output: () => out, exited };
}

const api = (slot: number) => `http://127.0.0.1:${BASE + 100 + slot}`;

async function running(run: Run): Promise<void> {
  await until('Conflux is running', async () => run.output().includes('Conflux is running'), 90_000);
}

async function writeKey(value: string): Promise<void> {
  await until('a write to succeed', async () => {
    const res = await fetch(`${api(0)}/v1/kv/app/greeting`, {
      method: 'PUT',
      body: value,
      signal: AbortSignal.timeout(2000),
    });
    return res.ok;
  });
}

async function readKey(slot: number): Promise<string | undefined> {
  const res = await fetch(`${api(slot)}/v1/kv/app/greeting?raw=1`, { signal: AbortSignal.timeout(2000) });
  return res.ok ? res.text() : undefined;
}

describe('npm start over the same data, again and again', () => {
  const root = mkdtempSync(join(tmpdir(), 'conflux-start-'));
  const runs: Run[] = [];
  const launch = (base = BASE) => {
    const run = start(root, base);
    runs.push(run);
    return run;
  };
  afterAll(async () => {
    for (const run of runs) {
      if (run.child.exitCode === null && run.child.signalCode === null && run.child.pid) {
        process.kill(-run.child.pid, 'SIGINT');
      }
      await run.exited;
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('comes back with its data after Ctrl-C, refuses a second start while it runs, and survives kill -9', async () => {
    const first = launch();
    await running(first);
    await writeKey('hello');

    // A second start on the same data (on the same ports or others) stops at once with one line
    // naming the running one, and touches nothing of the first.
    for (const base of [BASE, BASE + 300]) {
      const second = launch(base);
      expect(await second.exited).toBe(1);
      expect(second.output().trim()).toMatch(
        new RegExp(`^Conflux is already running on ${root} \\(pid ${first.child.pid}\\); [^\n]+$`),
      );
      expect(await readKey(1)).toBe('hello');
    }
    // Other data on the same ports stops at the busy control port.
    const other = mkdtempSync(join(tmpdir(), 'conflux-start-other-'));
    const elsewhere = start(other);
    runs.push(elsewhere);
    expect(await elsewhere.exited).toBe(1);
    expect(elsewhere.output()).toContain(
      `port ${BASE - 1} (the control endpoint, CONFLUX_BASE_PORT - 1) is in use`,
    );
    expect(elsewhere.output()).not.toContain('    at '); // a message, not a stack
    rmSync(other, { recursive: true, force: true });
    expect(await readKey(1)).toBe('hello');

    process.kill(-(first.child.pid as number), 'SIGINT');
    expect(await first.exited).toBe(0);

    const third = launch();
    await running(third);
    await until(
      'the data to be back',
      async () => (await readKey(2).catch(() => undefined)) === 'hello',
      30_000,
    );
    await writeKey('again');

    // kill -9 of the whole group leaves nothing to clean up by hand: the next start takes over.
    process.kill(-(third.child.pid as number), 'SIGKILL');
    await third.exited;
    const fourth = launch();
    await running(fourth);
    await until(
      'the data to be back',
      async () => (await readKey(1).catch(() => undefined)) === 'again',
      30_000,
    );
  }, 300_000);
});
