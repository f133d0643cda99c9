// Real conflux-node processes, each in its own network namespace (netns.ts). A slot is a node
// position with a fixed namespace and address; the node id changes when a slot is removed from the
// cluster and added back as a fresh, empty node (`n2`, then `n2-r1`, ...).

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { type ChaosNetwork, PORTS } from './netns.js';

const REPO = resolve(import.meta.dirname, '../..');

export type SlotState = 'running' | 'paused' | 'stopped' | 'removed';

export interface Slot {
  slot: number;
  id: string;
  generation: number;
  state: SlotState;
  proc: ChildProcess | null;
  exit: Promise<NodeJS.Signals | number | null> | null;
}

const readySchema = z.object({ state: z.string(), leader: z.string().nullable(), term: z.number() });
const operationSchema = z.object({ state: z.string(), error: z.unknown().optional() });

export class ChaosCluster {
  readonly slots: Slot[];

  constructor(
    readonly net: ChaosNetwork,
    readonly dir: string,
    private readonly nodeArgs: string[] = [],
  ) {
    this.slots = Array.from({ length: net.slots }, (_, i) => ({
      slot: i + 1,
      id: `n${i + 1}`,
      generation: 0,
      state: 'stopped' as SlotState,
      proc: null,
      exit: null,
    }));
  }

  slot(n: number): Slot {
    const s = this.slots[n - 1];
    if (!s) throw new RangeError(`no slot ${n}`);
    return s;
  }

  bySlotId(id: string): Slot | undefined {
    return this.slots.find((s) => s.id === id);
  }

  apiUrl(n: number): string {
    return `http://${this.net.ip(n)}:${PORTS.api}`;
  }

  adminUrl(n: number): string {
    return `http://${this.net.ip(n)}:${PORTS.admin}`;
  }

  addresses(n: number): { api_address: string; raft_address: string; admin_address: string } {
    const ip = this.net.ip(n);
    return {
      api_address: `${ip}:${PORTS.api}`,
      raft_address: `${ip}:${PORTS.raft}`,
      admin_address: `${ip}:${PORTS.admin}`,
    };
  }

  /** Slots that are cluster members (whatever their process state). */
  members(): Slot[] {
    return this.slots.filter((s) => s.state !== 'removed');
  }

  logFile(s: Slot): string {
    return join(this.dir, `${s.id}.log`);
  }

  private dataDir(s: Slot): string {
    return join(this.dir, s.id);
  }

  /** Start every slot from a static initial cluster and wait until each one is ready. */
  async start(timeoutMs = 60_000): Promise<void> {
    const initial = this.slots
      .map((s) => {
        const a = this.addresses(s.slot);
        return `${s.id}=${a.raft_address}/${a.api_address}/${a.admin_address}`;
      })
      .join(',');
    for (const s of this.slots) this.spawn(s.slot, ['--initial-cluster', initial]);
    await Promise.all(this.slots.map((s) => this.waitReady(s.slot, timeoutMs)));
  }

  /** Start the slot's node process (its data directory is kept across restarts). */
  spawn(n: number, formation: string[] = []): Slot {
    const s = this.slot(n);
    if (s.proc) throw new Error(`${s.id} is already running`);
    mkdirSync(this.dir, { recursive: true });
    const a = this.addresses(n);
    const args = [
      'netns',
      'exec',
      this.net.ns(n),
      process.execPath,
      '--import',
      'tsx',
      'node/main.ts',
      '--dev-insecure',
      // The namespaces' private network (netns.ts): isolated, so plain text may cross it.
      '--dev-insecure-networks',
      '10.77.0.0/16',
      '--node-id',
      s.id,
      '--data-dir',
      this.dataDir(s),
      '--api-addr',
      `127.0.0.1:${PORTS.api}`,
      '--raft-addr',
      `127.0.0.1:${PORTS.raft}`,
      '--admin-addr',
      `127.0.0.1:${PORTS.admin}`,
      '--advertise-api-addr',
      a.api_address,
      '--advertise-raft-addr',
      a.raft_address,
      '--advertise-admin-addr',
      a.admin_address,
      ...formation,
      ...this.nodeArgs,
    ];
    // `ip netns exec` execs the node in place: the child's pid is the node's pid.
    const proc = spawn('ip', args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(this.logFile(s), { flags: 'a' });
    proc.stdout?.pipe(log);
    proc.stderr?.pipe(log);
    s.proc = proc;
    s.state = 'running';
    s.exit = new Promise((ok) => proc.once('exit', (code, signal) => ok(signal ?? code)));
    return s;
  }

  async waitReady(n: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.slot(n).proc) throw new Error(`${this.slot(n).id} exited while starting`);
      const r = await this.ready(n);
      if (r?.ok) return;
      await sleep(100);
    }
    throw new Error(
      `${this.slot(n).id} not ready within ${timeoutMs} ms (log: ${this.logFile(this.slot(n))})`,
    );
  }

  /** One node's /readyz, or null when it does not answer in time. */
  async ready(n: number): Promise<(z.infer<typeof readySchema> & { ok: boolean }) | null> {
    try {
      const res = await fetch(`${this.apiUrl(n)}/readyz`, { signal: AbortSignal.timeout(1_000) });
      return { ...readySchema.parse(await res.json()), ok: res.status === 200 };
    } catch {
      return null;
    }
  }

  /** The slot of the leader with the highest term any running member reports, if any. */
  async leader(): Promise<number | null> {
    const views = await Promise.all(
      this.members()
        .filter((s) => s.state === 'running')
        .map((s) => this.ready(s.slot)),
    );
    let best: { leader: string; term: number } | null = null;
    for (const v of views) {
      if (v?.leader && (!best || v.term > best.term)) best = { leader: v.leader, term: v.term };
    }
    const s = best ? this.bySlotId(best.leader) : undefined;
    return s && s.state !== 'removed' ? s.slot : null;
  }

  async waitLeader(timeoutMs = 20_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = await this.leader();
      if (l !== null) return l;
      if (Date.now() > deadline) throw new Error(`no leader within ${timeoutMs} ms`);
      await sleep(200);
    }
  }

  /** kill -9; resolves with the signal the process died of. */
  async kill(n: number): Promise<NodeJS.Signals | number | null> {
    const s = this.slot(n);
    if (!s.proc) return null;
    s.proc.kill('SIGKILL');
    const how = await s.exit;
    s.proc = null;
    s.exit = null;
    if (s.state !== 'removed') s.state = 'stopped';
    return how;
  }

  pause(n: number): void {
    const s = this.slot(n);
    s.proc?.kill('SIGSTOP');
    s.state = 'paused';
  }

  resume(n: number): void {
    const s = this.slot(n);
    s.proc?.kill('SIGCONT');
    s.state = 'running';
  }

  /** The process state letter from /proc (T = stopped), or null without a process. */
  procState(n: number): string | null {
    const pid = this.slot(n).proc?.pid;
    if (!pid) return null;
    try {
      return /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? null;
    } catch {
      return null;
    }
  }

  /** Remove a member through the admin API of `via`, then destroy its process and data. */
  async remove(n: number, via: number): Promise<void> {
    const s = this.slot(n);
    // Conflux refuses a removal that would leave no reachable quorum (QUORUM_AT_RISK): right after
    // a healed fault the leader may not have heard from every member yet, so wait for it.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await fetch(`${this.adminUrl(via)}/_cluster/nodes/${s.id}`, {
        method: 'DELETE',
        signal: AbortSignal.timeout(15_000),
      });
      if (res.status === 409 && Date.now() < deadline) {
        const text = await res.text();
        if (!text.includes('"QUORUM_AT_RISK"')) throw new Error(`remove ${s.id}: answered 409 ${text}`);
        await sleep(500);
        continue;
      }
      await this.awaitOperation(via, res, `remove ${s.id}`);
      break;
    }
    await this.kill(n);
    rmSync(this.dataDir(s), { recursive: true, force: true });
    s.state = 'removed';
  }

  /** Add a removed slot back as a fresh, empty node with a new id, through `via`'s admin API. */
  async addFresh(n: number, via: number): Promise<string> {
    const s = this.slot(n);
    if (s.state !== 'removed') throw new Error(`${s.id} is still a member`);
    s.generation += 1;
    s.id = `n${n}-r${s.generation}`;
    this.spawn(n);
    await sleep(500);
    const res = await fetch(`${this.adminUrl(via)}/_cluster/nodes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ node_id: s.id, ...this.addresses(n) }),
      signal: AbortSignal.timeout(15_000),
    });
    await this.awaitOperation(via, res, `add ${s.id}`);
    return s.id;
  }

  private async awaitOperation(via: number, res: Response, what: string): Promise<void> {
    const location = res.headers.get('location');
    if (res.status !== 202 || !location)
      throw new Error(`${what}: answered ${res.status} ${await res.text()}`);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      try {
        const r = await fetch(`${this.adminUrl(via)}${location}`, { signal: AbortSignal.timeout(5_000) });
        const op = operationSchema.parse(await r.json());
        if (op.state === 'succeeded') return;
        if (op.state === 'failed') throw new Error(`${what} failed: ${JSON.stringify(op.error)}`);
      } catch (err) {
        if ((err as Error).message.includes('failed:')) throw err;
      }
      await sleep(200);
    }
    throw new Error(`${what} did not finish within 60 s`);
  }

  /** Resume paused nodes and restart stopped members (same id, same data). */
  async healProcesses(): Promise<void> {
    for (const s of this.slots) {
      if (s.state === 'paused') this.resume(s.slot);
      if (s.state === 'stopped') this.spawn(s.slot);
    }
  }

  async stop(): Promise<void> {
    for (const s of this.slots) {
      s.proc?.kill('SIGCONT');
      s.proc?.kill('SIGKILL');
    }
    await Promise.all(this.slots.map((s) => s.exit));
    for (const s of this.slots) s.proc = null;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
