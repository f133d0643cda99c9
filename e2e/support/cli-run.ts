// Test support: the `conflux` CLI and `conflux-node` as a user runs them, through their real entry
// points (operator/cli.ts, node/main.ts) in child processes; and nodes on npm start's port layout
// (slot k: Raft BASE+k, client API BASE+100+k, admin BASE+200+k), so the CLI's defaults find them.

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../..');

export interface CliRun {
  code: number | null;
  out: string;
  err: string;
}

/** The environment minus every CONFLUX_* variable, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CONFLUX_')) env[k] = v;
  return { ...env, ...extra };
}

/** A running `conflux ...` (for example `kv watch`): its output so far, and how it ended. */
export interface CliProcess {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  done: Promise<CliRun>;
}

export function startConflux(args: string[], env: Record<string, string> = {}): CliProcess {
  return startEntry('operator/cli.ts', args, env);
}

/** `conflux ARGS` to its end. */
export function conflux(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return startConflux(args, env).done;
}

/** `conflux-node ARGS` to its end. */
export function confluxNode(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return startEntry('node/main.ts', args, env).done;
}

function startEntry(entry: string, args: string[], env: Record<string, string>): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: REPO,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (err += d));
  const done = new Promise<CliRun>((ok) => child.once('close', (code) => ok({ code, out, err })));
  return { child, out: () => out, err: () => err, done };
}

/** Three (or more) `conflux-node` processes where `npm start` would put them, formed statically. */
export class SlotCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'conflux-cli-e2e-'));
  readonly procs = new Map<number, { child: ChildProcess; exit: Promise<void> }>();
  /** The node id each slot runs now (a wiped slot comes back under a new one). */
  readonly ids: string[];

  constructor(
    readonly base: number,
    readonly size = 3,
  ) {
    this.ids = Array.from({ length: size }, (_, k) => `s${k}`);
  }

  admin(k: number): string {
    return `http://127.0.0.1:${this.base + 200 + k}`;
  }

  api(k: number): string {
    return `http://127.0.0.1:${this.base + 100 + k}`;
  }

  private initialCluster(): string {
    return this.ids
      .map(
        (id, k) =>
          `${id}=127.0.0.1:${this.base + k}/127.0.0.1:${this.base + 100 + k}/127.0.0.1:${this.base + 200 + k}`,
      )
      .join(',');
  }

  /** Start slot k: a member of the initial cluster, or with `pristine` an empty node under `id`. */
  spawn(k: number, o: { pristine?: string } = {}): void {
    const id = o.pristine ?? (this.ids[k] as string);
    this.ids[k] = id;
    const args = [
      '--import',
      'tsx',
      'node/main.ts',
      '--dev-insecure',
      '--node-id',
      id,
      '--data-dir',
      join(this.dir, `slot-${k}`),
      '--raft-addr',
      `127.0.0.1:${this.base + k}`,
      '--api-addr',
      `127.0.0.1:${this.base + 100 + k}`,
      '--admin-addr',
      `127.0.0.1:${this.base + 200 + k}`,
      '--tick-ms',
      '20',
      ...(o.pristine ? [] : ['--initial-cluster', this.initialCluster()]),
    ];
    const child = spawn(process.execPath, args, {
      cwd: REPO,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const log = createWriteStream(join(this.dir, `slot-${k}.log`), { flags: 'a' });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    this.procs.set(k, { child, exit: new Promise((ok) => child.once('exit', () => ok())) });
  }

  async start(): Promise<void> {
    for (let k = 0; k < this.size; k++) this.spawn(k);
    await Promise.all(Array.from({ length: this.size }, (_, k) => this.ready(k)));
  }

  /** Until slot k answers /readyz with 200 (a member that knows a leader). A node started from
   *  source takes 20-30 s on a busy two-core machine. */
  async ready(k: number, ms = 60_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const ok = await fetch(`${this.api(k)}/readyz`, { signal: AbortSignal.timeout(1_000) }).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`slot ${k} not ready within ${ms} ms`);
  }

  /** Until slot k listens (ready or not). */
  async listening(k: number, ms = 60_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const ok = await fetch(`${this.admin(k)}/_internal/status`, {
        signal: AbortSignal.timeout(1_000),
      }).then(
        () => true,
        () => false,
      );
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`slot ${k} not listening within ${ms} ms`);
  }

  /** kill -9 of slot k. */
  async kill(k: number): Promise<void> {
    const p = this.procs.get(k);
    if (!p) return;
    p.child.kill('SIGKILL');
    await p.exit;
    this.procs.delete(k);
  }

  /** Slot k's data is lost: killed, its data dir deleted. */
  async wipe(k: number): Promise<void> {
    await this.kill(k);
    rmSync(join(this.dir, `slot-${k}`), { recursive: true, force: true });
  }

  async destroy(): Promise<void> {
    for (const k of [...this.procs.keys()]) await this.kill(k);
    if (!process.env.CONFLUX_KEEP_E2E) rmSync(this.dir, { recursive: true, force: true });
  }
}
