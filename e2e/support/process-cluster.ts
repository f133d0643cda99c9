// Test support: a cluster of real `conflux-node` processes on 127.0.0.1, each with its own data
// directory and free ports. Formed from a static initial cluster, or the seed's way: the first
// member with --bootstrap-expect N and the others with --join (self-bootstrap). Members added
// later start empty and join through the first member, or wait to be added by the admin API.

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../../operator/platform/local.js';

const REPO = resolve(import.meta.dirname, '../..');

/** A port that was free a moment ago. */
export { freePort };

export interface Member {
  id: string;
  apiPort: number;
  raftPort: number;
  adminPort: number;
  /** The flags that form or join the cluster. */
  formation: string[];
  dataDir: string;
  logFile: string;
  proc: ChildProcess | null;
  exit: Promise<number | null> | null;
}

export class ProcessCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'conflux-e2e-'));
  readonly members: Member[] = [];

  private constructor(private readonly extraArgs: string[]) {}

  /** `static`: --initial-cluster; `self-bootstrap`: n1 --bootstrap-expect N, the others --join n1. */
  static async create(
    size: number,
    extraArgs: string[] = [],
    formation: 'static' | 'self-bootstrap' = 'static',
  ): Promise<ProcessCluster> {
    const c = new ProcessCluster(extraArgs);
    for (let i = 1; i <= size; i++) await c.addMember(`n${i}`, []);
    for (const m of c.members) {
      if (formation === 'static') m.formation = ['--initial-cluster', c.initialCluster()];
      else if (m === c.members[0]) m.formation = ['--bootstrap-expect', String(size)];
      else m.formation = c.joinArgs();
    }
    return c;
  }

  /** A new member (not started): `formation` defaults to joining through the first member. */
  async addMember(id: string, formation: string[] = this.joinArgs()): Promise<Member> {
    const m: Member = {
      id,
      apiPort: await freePort(),
      raftPort: await freePort(),
      adminPort: await freePort(),
      formation,
      dataDir: join(this.dir, id),
      logFile: join(this.dir, `${id}.log`),
      proc: null,
      exit: null,
    };
    this.members.push(m);
    return m;
  }

  private joinArgs(): string[] {
    const first = this.members[0];
    return first ? ['--join', `127.0.0.1:${first.adminPort}`] : [];
  }

  adminUrl(id: string): string {
    return `http://127.0.0.1:${this.member(id).adminPort}`;
  }

  /** A member's advertised addresses, as the admin API takes them. */
  addresses(id: string): { api_address: string; raft_address: string; admin_address: string } {
    const m = this.member(id);
    return {
      api_address: `127.0.0.1:${m.apiPort}`,
      raft_address: `127.0.0.1:${m.raftPort}`,
      admin_address: `127.0.0.1:${m.adminPort}`,
    };
  }

  member(id: string): Member {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  url(id: string): string {
    return `http://127.0.0.1:${this.member(id).apiPort}`;
  }

  private initialCluster(): string {
    return this.members
      .map((m) => `${m.id}=127.0.0.1:${m.raftPort}/127.0.0.1:${m.apiPort}/127.0.0.1:${m.adminPort}`)
      .join(',');
  }

  /** Start one member's process (again); resolves once it listens (not necessarily ready). */
  spawn(id: string): Member {
    const m = this.member(id);
    const args = [
      '--import',
      'tsx',
      'node/main.ts',
      '--dev-insecure',
      '--node-id',
      m.id,
      '--data-dir',
      m.dataDir,
      '--api-addr',
      `127.0.0.1:${m.apiPort}`,
      '--raft-addr',
      `127.0.0.1:${m.raftPort}`,
      '--admin-addr',
      `127.0.0.1:${m.adminPort}`,
      ...m.formation,
      '--tick-ms',
      '20',
      ...this.extraArgs,
    ];
    const proc = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(m.logFile, { flags: 'a' });
    proc.stdout?.pipe(log);
    proc.stderr?.pipe(log);
    m.proc = proc;
    m.exit = new Promise((ok) => proc.once('exit', (code) => ok(code)));
    return m;
  }

  async start(): Promise<void> {
    for (const m of this.members) this.spawn(m.id);
    await Promise.all(this.members.map((m) => this.waitReady(m.id)));
  }

  async waitReady(id: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`${this.url(id)}/readyz`);
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`${id} not ready within ${timeoutMs} ms`);
  }

  /** The leader as the members report it (the majority view), once one is known. */
  async leader(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const m of this.members) {
        if (!m.proc) continue;
        try {
          const body = (await (await fetch(`${this.url(m.id)}/readyz`)).json()) as { state: string };
          if (body.state === 'leader') return m.id;
        } catch {
          // down or starting
        }
      }
      await sleep(50);
    }
    throw new Error('no leader');
  }

  /** kill -9. */
  async kill(id: string): Promise<void> {
    const m = this.member(id);
    m.proc?.kill('SIGKILL');
    await m.exit;
    m.proc = null;
  }

  /** Stop one member and delete its data: the node is gone for good. */
  async destroyMember(id: string): Promise<void> {
    const m = this.member(id);
    m.proc?.kill('SIGTERM');
    await m.exit;
    m.proc = null;
    rmSync(m.dataDir, { recursive: true, force: true });
  }

  async stop(): Promise<void> {
    for (const m of this.members) m.proc?.kill('SIGTERM');
    await Promise.all(this.members.map((m) => m.exit));
    for (const m of this.members) m.proc = null;
  }

  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    if (!process.env.CONFLUX_KEEP_E2E) rmSync(this.dir, { recursive: true, force: true });
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a value; a throw counts as not yet and is named if time runs out. */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (${(last as Error).message})` : ''}`);
}

/** One HTTP call to a member: the status, the JSON body ({} for a raw value) and any Location. */
export async function call(url: string, method = 'GET', body?: string) {
  const res = await fetch(url, {
    method,
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {
    // a raw value
  }
  return { status: res.status, body: json, location: res.headers.get('location') };
}
