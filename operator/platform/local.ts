// LocalPlatform: member slots are child `conflux-node` processes on 127.0.0.1, for `npm start`
// and tests. It behaves like a StatefulSet where the reconciler can tell: slot k of cluster `demo`
// is `demo-k` with a stable data dir (its volume) and stable ports across restarts, a slot whose
// process died is started again by the next ensureMembers (with a crash back-off), slots beyond
// the set size are stopped but keep their volumes.
//
// On disk, under `<root>/<namespace>/<name>/`:
//   slots.json            the set size and each slot's ports (and last pid, to reap orphans)
//   volumes/<name>-<k>/   the slot's --data-dir
//   logs/<name>-<k>.log   the slot's stdout and stderr, appended across restarts

import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { type Logger, pino } from 'pino';
import { z } from 'zod';
import type { AdminClientOptions } from '../../node/api/admin-client.js';
import type { ConfluxCluster } from '../api/cluster.js';
import type { MemberPod, Platform } from './platform.js';

/** How to run a node: `execPath ...args <flags>`, in `cwd`. */
export interface NodeCommand {
  execPath: string;
  args: string[];
  cwd?: string;
}

export interface LocalPlatformOptions {
  /** State directory, for example `.conflux`. */
  root: string;
  /**
   * Slot k of the first cluster gets Raft BASE+k, API BASE+100+k, admin BASE+200+k (the ports
   * `npm start` documents); other clusters, and every cluster without it, get free ports.
   */
  basePort?: number;
  /** How to run a node; default: from source with tsx, or dist/node/main.js (see `preferBuilt`). */
  command?: NodeCommand;
  /** Without `command`: run dist/node/main.js when it exists instead of the TypeScript source. */
  preferBuilt?: boolean;
  logger?: Logger;
  /** More flags for every node (for example `--log-level warn`). */
  extraArgs?: string[];
  /** Environment added to the nodes' (which inherit ours, minus every CONFLUX_* variable). */
  env?: Record<string, string>;
  /** SIGTERM, then SIGKILL after this long. Default 10 s. */
  stopGraceMs?: number;
  /** The readiness probe's timeout. Default 1 s. */
  readyTimeoutMs?: number;
  /**
   * Restart a slot whose process died on its own, after a back-off (at least 1 s), as the kubelet
   * does. Default true. ensureMembers restarts dead slots either way.
   */
  autoRestart?: boolean;
}

/** Whether this node accepts `--node-id-prefix` (it does; kept as a switch for older builds). */
export const PASS_NODE_ID_PREFIX = true;
/** The node's limit for `--node-id-prefix`. */
const NODE_ID_PREFIX_MAX = 54;
/** A slot that ran at least this long before it died restarts at once. */
const HEALTHY_RUN_MS = 10_000;
const BACKOFF_MS_MIN = 1_000;
const BACKOFF_MS_MAX = 30_000;

const HERE = import.meta.dirname;

const slotsFileSchema = z.object({
  size: z.int().min(0),
  /** Set when this cluster owns the base port range. */
  basePort: z.int().nullable().default(null),
  slots: z.record(
    z.string(),
    z.object({ raft: z.int(), api: z.int(), admin: z.int(), pid: z.int().nullable().default(null) }),
  ),
});
type SlotsFile = z.infer<typeof slotsFileSchema>;
type SlotPorts = SlotsFile['slots'][string];

interface SlotProcess {
  ordinal: number;
  child: ChildProcess;
  exited: Promise<void>;
  alive: boolean;
  /** We asked it to stop (scale-down, stopAll): its exit is not a crash. */
  stopping: boolean;
  startedAt: number;
  exitedAt: number | null;
  /** Restarts after crashes in a row, for the back-off. */
  crashes: number;
}

interface ClusterState {
  namespace: string;
  name: string;
  dir: string;
  doc: SlotsFile;
  procs: Map<number, SlotProcess>;
  /** The cluster as last given to ensureMembers: what a restart runs with. */
  cluster: ConfluxCluster | null;
  restartTimers: Map<number, NodeJS.Timeout>;
  lock: Promise<unknown>;
  log: Logger;
}

/** Every live child of every LocalPlatform in this process, killed if the process exits. */
const LIVE = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of LIVE) child.kill('SIGKILL');
});

export class LocalPlatform implements Platform {
  readonly kind = 'local' as const;
  readonly root: string;
  private readonly command: NodeCommand;
  private readonly log: Logger;
  private readonly clusters = new Map<string, Promise<ClusterState>>();
  private readonly stopGraceMs: number;
  private readonly readyTimeoutMs: number;

  constructor(private readonly o: LocalPlatformOptions) {
    this.root = resolve(o.root);
    this.command = o.command ?? defaultCommand(o.preferBuilt ?? false);
    this.log = (o.logger ?? pino({ level: 'silent' })).child({ component: 'local-platform' });
    this.stopGraceMs = o.stopGraceMs ?? 10_000;
    this.readyTimeoutMs = o.readyTimeoutMs ?? 1_000;
  }

  async ensureMembers(cluster: ConfluxCluster, size: number): Promise<void> {
    if (!Number.isInteger(size) || size < 0) throw new Error(`invalid set size ${size}`);
    const state = await this.state(cluster);
    await this.locked(state, async () => {
      state.cluster = cluster;
      for (let k = 0; k < size; k++) await this.allocate(state, k);
      if (state.doc.size !== size) {
        state.log.info({ from: state.doc.size, to: size }, 'set size');
        state.doc.size = size;
        this.save(state);
      }
      for (let k = 0; k < size; k++) this.startIfNeeded(state, cluster, k);
      for (const p of state.procs.values()) {
        if (p.ordinal >= size && p.alive && !p.stopping) void this.stopSlot(state, p);
      }
    });
  }

  async setSize(cluster: ConfluxCluster): Promise<number> {
    return (await this.state(cluster)).doc.size;
  }

  async pods(cluster: ConfluxCluster): Promise<MemberPod[]> {
    const state = await this.state(cluster);
    const ordinals = new Set<number>();
    for (let k = 0; k < state.doc.size; k++) ordinals.add(k);
    for (const p of state.procs.values()) if (p.alive) ordinals.add(p.ordinal);
    const pods = [...ordinals]
      .sort((a, b) => a - b)
      .flatMap((ordinal) => {
        const ports = state.doc.slots[ordinal];
        if (!ports) return [];
        const running = state.procs.get(ordinal)?.alive ?? false;
        return [{ ordinal, name: slotName(state.name, ordinal), running, addresses: addressesOf(ports) }];
      });
    return Promise.all(
      pods.map(async (p) => ({ ...p, ready: p.running && (await this.probeReady(p.addresses.api)) })),
    );
  }

  async volumes(cluster: ConfluxCluster): Promise<number[]> {
    const dir = join(this.clusterDir(cluster), 'volumes');
    const prefix = `${cluster.metadata.name}-`;
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((f) => f.startsWith(prefix) && /^\d+$/.test(f.slice(prefix.length)))
      .map((f) => Number(f.slice(prefix.length)))
      .sort((a, b) => a - b);
  }

  async deleteVolume(cluster: ConfluxCluster, ordinal: number): Promise<void> {
    const state = await this.state(cluster);
    await this.locked(state, async () => {
      if (!Number.isInteger(ordinal) || ordinal < 0) throw new Error(`invalid ordinal ${ordinal}`);
      const name = slotName(state.name, ordinal);
      if (ordinal < state.doc.size) {
        throw new Error(
          `refusing to delete the volume of ${name}: it is in the set (size ${state.doc.size})`,
        );
      }
      if (state.procs.get(ordinal)?.alive) {
        throw new Error(`refusing to delete the volume of ${name}: its process still runs`);
      }
      rmSync(this.volumeDir(cluster, ordinal), { recursive: true, force: true });
      state.log.info({ slot: name }, 'volume deleted');
    });
  }

  async adminClient(_cluster: ConfluxCluster): Promise<AdminClientOptions> {
    return { timeoutMs: 5000 };
  }

  /** None: local nodes use the environment's credentials (AWS_* variables are inherited). */
  async backupCredentials(
    _cluster: ConfluxCluster,
  ): Promise<{ accessKeyId: string; secretAccessKey: string } | undefined> {
    return undefined;
  }

  /** Stop every process this platform started (SIGTERM, then SIGKILL after the grace period). */
  async stopAll(): Promise<void> {
    const stops: Promise<void>[] = [];
    for (const pending of this.clusters.values()) {
      const state = await pending.catch(() => null);
      if (!state) continue;
      for (const timer of state.restartTimers.values()) clearTimeout(timer);
      state.restartTimers.clear();
      for (const p of state.procs.values()) if (p.alive) stops.push(this.stopSlot(state, p));
    }
    await Promise.all(stops);
  }

  /** kill -9 one slot's process (crash tests); resolves once it is gone. */
  async kill(cluster: ConfluxCluster, ordinal: number): Promise<void> {
    const state = await this.state(cluster);
    const p = state.procs.get(ordinal);
    if (!p?.alive) return;
    p.child.kill('SIGKILL');
    await p.exited;
  }

  /** The slot's data directory (its "volume"). */
  volumeDir(cluster: ConfluxCluster, ordinal: number): string {
    return join(this.clusterDir(cluster), 'volumes', slotName(cluster.metadata.name, ordinal));
  }

  /** The slot's log file (stdout and stderr of every run, appended). */
  logFile(cluster: ConfluxCluster, ordinal: number): string {
    return join(this.clusterDir(cluster), 'logs', `${slotName(cluster.metadata.name, ordinal)}.log`);
  }

  /** The pid of the slot's process, while it runs. */
  pid(cluster: ConfluxCluster, ordinal: number): number | undefined {
    return this.loaded.get(clusterKey(cluster))?.procs.get(ordinal)?.child.pid;
  }

  // --- internals ---------------------------------------------------------------------------------

  private readonly loaded = new Map<string, ClusterState>();

  private clusterDir(cluster: ConfluxCluster): string {
    const { namespace, name } = cluster.metadata;
    if (!DNS_LABEL.test(namespace) || !DNS_LABEL.test(name)) {
      throw new Error(`invalid cluster name ${namespace}/${name}`);
    }
    return join(this.root, namespace, name);
  }

  private state(cluster: ConfluxCluster): Promise<ClusterState> {
    const key = clusterKey(cluster);
    let pending = this.clusters.get(key);
    if (!pending) {
      pending = this.load(cluster);
      this.clusters.set(key, pending);
      pending.catch(() => this.clusters.delete(key));
    }
    return pending;
  }

  private async load(cluster: ConfluxCluster): Promise<ClusterState> {
    const { namespace, name } = cluster.metadata;
    const dir = this.clusterDir(cluster);
    const file = join(dir, 'slots.json');
    let doc: SlotsFile = { size: 0, basePort: null, slots: {} };
    if (existsSync(file)) {
      const parsed = slotsFileSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
      if (!parsed.success) throw new Error(`${file} is not a slots file: ${parsed.error.issues[0]?.message}`);
      doc = parsed.data;
    }
    const state: ClusterState = {
      namespace,
      name,
      dir,
      doc,
      procs: new Map(),
      cluster: null,
      restartTimers: new Map(),
      lock: Promise.resolve(),
      log: this.log.child({ cluster: name, namespace }),
    };
    // A previous operator that died without stopping its children leaves them holding the
    // slots' ports and data dirs: end them before starting new ones.
    for (const [ordinal, slot] of Object.entries(doc.slots)) {
      if (slot.pid === null) continue;
      const volume = this.volumeDir(cluster, Number(ordinal));
      if (await reapOrphan(slot.pid, volume)) {
        state.log.warn(
          { slot: slotName(name, Number(ordinal)), pid: slot.pid },
          'killed an orphaned node process',
        );
      }
      slot.pid = null;
    }
    this.loaded.set(clusterKey(cluster), state);
    return state;
  }

  private locked<T>(state: ClusterState, fn: () => Promise<T>): Promise<T> {
    const run = state.lock.then(fn, fn);
    state.lock = run.catch(() => undefined);
    return run;
  }

  private save(state: ClusterState): void {
    mkdirSync(state.dir, { recursive: true });
    const file = join(state.dir, 'slots.json');
    writeFileSync(`${file}.tmp`, `${JSON.stringify(state.doc, null, 2)}\n`);
    renameSync(`${file}.tmp`, file);
  }

  /** The slot's ports, chosen once and kept in slots.json. */
  private async allocate(state: ClusterState, ordinal: number): Promise<SlotPorts> {
    const known = state.doc.slots[ordinal];
    if (known) return known;
    let ports: SlotPorts;
    const base = this.o.basePort;
    if (base !== undefined && this.ownsBasePorts(state)) {
      if (ordinal >= 100) throw new Error(`slot ${ordinal} does not fit the base port layout`);
      state.doc.basePort = base;
      ports = { raft: base + ordinal, api: base + 100 + ordinal, admin: base + 200 + ordinal, pid: null };
    } else {
      const taken = this.reservedPorts();
      const pick = async () => {
        for (;;) {
          const port = await freePort();
          if (!taken.has(port)) {
            taken.add(port);
            return port;
          }
        }
      };
      ports = { raft: await pick(), api: await pick(), admin: await pick(), pid: null };
    }
    state.doc.slots[ordinal] = ports;
    this.save(state);
    return ports;
  }

  /** The first cluster to ask owns the base port range, for good (recorded in its slots.json). */
  private ownsBasePorts(state: ClusterState): boolean {
    if (state.doc.basePort !== null) return state.doc.basePort === this.o.basePort;
    return !this.allSlotFiles().some(({ doc }) => doc.basePort === this.o.basePort);
  }

  /** Ports any cluster under root holds, and the whole base range. */
  private reservedPorts(): Set<number> {
    const taken = new Set<number>();
    for (const { doc } of this.allSlotFiles()) {
      for (const s of Object.values(doc.slots)) for (const p of [s.raft, s.api, s.admin]) taken.add(p);
    }
    for (const state of this.loaded.values()) {
      for (const s of Object.values(state.doc.slots)) for (const p of [s.raft, s.api, s.admin]) taken.add(p);
    }
    if (this.o.basePort !== undefined) for (let i = 0; i < 300; i++) taken.add(this.o.basePort + i);
    return taken;
  }

  private allSlotFiles(): { dir: string; doc: SlotsFile }[] {
    const found: { dir: string; doc: SlotsFile }[] = [];
    const dirs = (path: string) => {
      try {
        return readdirSync(path, { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => d.name);
      } catch {
        return [];
      }
    };
    for (const ns of dirs(this.root)) {
      for (const name of dirs(join(this.root, ns))) {
        const dir = join(this.root, ns, name);
        const loaded = this.loaded.get(`${ns}/${name}`);
        if (loaded) {
          found.push({ dir, doc: loaded.doc });
          continue;
        }
        try {
          const doc = slotsFileSchema.parse(JSON.parse(readFileSync(join(dir, 'slots.json'), 'utf8')));
          found.push({ dir, doc });
        } catch {
          // not a cluster directory
        }
      }
    }
    return found;
  }

  private startIfNeeded(state: ClusterState, cluster: ConfluxCluster, ordinal: number): void {
    const prev = state.procs.get(ordinal);
    if (prev?.alive) return;
    const { crashes, delayMs } = restartBackoff(prev);
    if (prev?.exitedAt != null && Date.now() - prev.exitedAt < delayMs) {
      state.log.debug({ slot: slotName(state.name, ordinal), crashes, delayMs }, 'restart backing off');
      return;
    }
    clearTimeout(state.restartTimers.get(ordinal));
    state.restartTimers.delete(ordinal);
    this.spawnSlot(state, cluster, ordinal, crashes);
  }

  /** The kubelet's part: a slot of the set whose process died comes back after a back-off. */
  private scheduleRestart(state: ClusterState, p: SlotProcess): void {
    if (this.o.autoRestart === false || p.ordinal >= state.doc.size) return;
    const delayMs = Math.max(BACKOFF_MS_MIN, restartBackoff(p).delayMs);
    clearTimeout(state.restartTimers.get(p.ordinal));
    const timer = setTimeout(() => {
      state.restartTimers.delete(p.ordinal);
      void this.locked(state, async () => {
        const cluster = state.cluster;
        if (cluster && p.ordinal < state.doc.size && state.procs.get(p.ordinal) === p) {
          this.startIfNeeded(state, cluster, p.ordinal);
        }
      }).catch((err: unknown) => state.log.error({ err }, 'restart failed'));
    }, delayMs);
    timer.unref();
    state.restartTimers.set(p.ordinal, timer);
  }

  private spawnSlot(state: ClusterState, cluster: ConfluxCluster, ordinal: number, crashes: number): void {
    const ports = state.doc.slots[ordinal];
    if (!ports) throw new Error(`slot ${ordinal} has no ports`);
    const name = slotName(state.name, ordinal);
    const volume = this.volumeDir(cluster, ordinal);
    const logFile = this.logFile(cluster, ordinal);
    mkdirSync(volume, { recursive: true });
    mkdirSync(join(state.dir, 'logs'), { recursive: true });
    const a = addressesOf(ports);
    const raft = cluster.spec.raft;
    const flags = [
      '--dev-insecure',
      '--data-dir',
      volume,
      '--api-addr',
      a.api,
      '--raft-addr',
      a.raft,
      '--admin-addr',
      a.admin,
      '--tick-ms',
      String(raft.tickMs),
      '--election-ticks',
      String(raft.electionTicks),
      '--snapshot-entries',
      String(raft.snapshotEntries),
      ...(PASS_NODE_ID_PREFIX ? ['--node-id-prefix', nodeIdPrefix(state.name, ordinal)] : []),
      ...backupFlags(cluster),
      ...(this.o.extraArgs ?? []),
    ];
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      writeSync(fd, `--- ${new Date().toISOString()} starting ${name}: ${flags.join(' ')}\n`);
      child = spawn(this.command.execPath, [...this.command.args, ...flags], {
        cwd: this.command.cwd ?? process.cwd(),
        stdio: ['ignore', fd, fd],
        env: this.childEnv(),
      });
    } finally {
      closeSync(fd);
    }
    const proc: SlotProcess = {
      ordinal,
      child,
      exited: Promise.resolve(),
      alive: true,
      stopping: false,
      startedAt: Date.now(),
      exitedAt: null,
      crashes,
    };
    LIVE.add(child);
    proc.exited = new Promise<void>((done) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        if (!proc.alive) return;
        proc.alive = false;
        proc.exitedAt = Date.now();
        LIVE.delete(child);
        const slot = state.doc.slots[ordinal];
        if (slot && slot.pid === child.pid) {
          slot.pid = null;
          this.save(state);
        }
        const fields = { slot: name, code, signal, log: logFile, ...(error ? { err: error.message } : {}) };
        if (proc.stopping) state.log.info(fields, 'node stopped');
        else {
          state.log.warn(fields, 'node exited');
          this.scheduleRestart(state, proc);
        }
        done();
      };
      child.once('exit', (code, signal) => finish(code, signal));
      child.once('error', (err) => {
        if (child.pid === undefined) finish(null, null, err);
      });
    });
    state.procs.set(ordinal, proc);
    if (child.pid !== undefined) {
      ports.pid = child.pid;
      this.save(state);
    }
    state.log.info({ slot: name, pid: child.pid, api: a.api, admin: a.admin }, 'node started');
  }

  private stopSlot(state: ClusterState, p: SlotProcess): Promise<void> {
    if (!p.alive) return p.exited;
    if (!p.stopping) {
      p.stopping = true;
      state.log.info({ slot: slotName(state.name, p.ordinal), pid: p.child.pid }, 'stopping node');
      p.child.kill('SIGTERM');
      const timer = setTimeout(() => p.child.kill('SIGKILL'), this.stopGraceMs);
      timer.unref();
      void p.exited.then(() => clearTimeout(timer));
    }
    return p.exited;
  }

  private childEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CONFLUX_')) env[k] = v;
    return { ...env, ...this.o.env };
  }

  private async probeReady(api: string): Promise<boolean> {
    try {
      const res = await fetch(`http://${api}/readyz`, { signal: AbortSignal.timeout(this.readyTimeoutMs) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  }
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function clusterKey(cluster: ConfluxCluster): string {
  return `${cluster.metadata.namespace}/${cluster.metadata.name}`;
}

function slotName(cluster: string, ordinal: number): string {
  return `${cluster}-${ordinal}`;
}

/** `<name>-<k>`, shortened to what the node accepts (the node appends `-<hex>`). */
export function nodeIdPrefix(cluster: string, ordinal: number): string {
  const suffix = `-${ordinal}`;
  const head = cluster.slice(0, NODE_ID_PREFIX_MAX - suffix.length).replace(/-+$/, '');
  return `${head}${suffix}`;
}

/** After a crash: how many in a row, and how long to wait before starting the slot again. */
function restartBackoff(prev: SlotProcess | undefined): { crashes: number; delayMs: number } {
  if (!prev || prev.stopping || prev.exitedAt === null) return { crashes: 0, delayMs: 0 };
  const crashes = prev.exitedAt - prev.startedAt >= HEALTHY_RUN_MS ? 1 : prev.crashes + 1;
  const delayMs = crashes <= 1 ? 0 : Math.min(BACKOFF_MS_MAX, BACKOFF_MS_MIN * 2 ** (crashes - 2));
  return { crashes, delayMs };
}

function addressesOf(p: SlotPorts): MemberPod['addresses'] {
  return { raft: `127.0.0.1:${p.raft}`, api: `127.0.0.1:${p.api}`, admin: `127.0.0.1:${p.admin}` };
}

/** From compiled code: the compiled node next to it; from source: tsx, or dist when preferred. */
export function defaultCommand(preferBuilt: boolean): NodeCommand {
  if (import.meta.url.endsWith('.js')) {
    const main = resolve(HERE, '../../node/main.js');
    return { execPath: process.execPath, args: [main], cwd: resolve(HERE, '../../..') };
  }
  const repo = resolve(HERE, '../..');
  const built = join(repo, 'dist/node/main.js');
  if (preferBuilt && existsSync(built)) return { execPath: process.execPath, args: [built], cwd: repo };
  return { execPath: process.execPath, args: ['--import', 'tsx', join(repo, 'node/main.ts')], cwd: repo };
}

export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => ok(port));
    });
  });
}

/** SIGKILL `pid` if it still runs a node on `volume` (checked through /proc); true if it did. */
async function reapOrphan(pid: number, volume: string): Promise<boolean> {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return false; // gone (or no /proc: leave it, the pid may belong to someone else by now)
  }
  if (!cmdline.split('\0').includes(volume)) return false;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return false;
  }
  for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 20));
  return true;
}

/** How a node reaches the cluster's backup destination (credentials come from the environment). */
function backupFlags(cluster: ConfluxCluster): string[] {
  const d = cluster.spec.backup?.destination;
  if (!d) return [];
  return [
    '--backup-destination',
    d.uri,
    ...(d.endpoint ? ['--s3-endpoint', d.endpoint] : []),
    ...(d.region ? ['--s3-region', d.region] : []),
    ...(d.pathStyle ? ['--s3-path-style'] : []),
    ...(cluster.spec.backup?.retention?.keepLast
      ? ['--backup-keep-last', String(cluster.spec.backup.retention.keepLast)]
      : []),
    ...(cluster.spec.backup?.retention?.maxAgeDays
      ? ['--backup-max-age-days', String(cluster.spec.backup.retention.maxAgeDays)]
      : []),
  ];
}
