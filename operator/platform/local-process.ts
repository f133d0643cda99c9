// One LocalPlatform slot's `conflux-node` process: the command and flags that run it, spawning it
// with its output appended to its log file, stopping it with a grace period, the back-off before
// restarting it after a crash, and ending the orphans a crashed operator left behind.

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { ConfluxCluster } from '../api/cluster.js';
import { type SlotsFile, slotName } from './local-slots.js';
import type { MemberPod } from './platform.js';

/** How to run a node: `execPath ...args <flags>`, in `cwd`. */
export interface NodeCommand {
  execPath: string;
  args: string[];
  cwd?: string;
}

/** Whether this node accepts `--node-id-prefix` (it does; kept as a switch for older builds). */
export const PASS_NODE_ID_PREFIX = true;
/** The node's limit for `--node-id-prefix`. */
const NODE_ID_PREFIX_MAX = 54;
/** A slot that ran at least this long before it died restarts at once. */
const HEALTHY_RUN_MS = 10_000;
export const BACKOFF_MS_MIN = 1_000;
const BACKOFF_MS_MAX = 30_000;

const HERE = import.meta.dirname;

export interface SlotProcess {
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

/** Every live child of every LocalPlatform in this process, killed if the process exits. */
const LIVE = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of LIVE) child.kill('SIGKILL');
});

/** The flags that run slot `ordinal` of `cluster` (named `name`) on `volume` and `a`. */
export function nodeFlags(
  cluster: ConfluxCluster,
  name: string,
  ordinal: number,
  volume: string,
  a: MemberPod['addresses'],
  extraArgs: string[] | undefined,
): string[] {
  const raft = cluster.spec.raft;
  return [
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
    ...(PASS_NODE_ID_PREFIX ? ['--node-id-prefix', nodeIdPrefix(name, ordinal)] : []),
    ...backupFlags(cluster),
    ...(extraArgs ?? []),
  ];
}

export interface SpawnSlotOptions {
  ordinal: number;
  /** Restarts after crashes in a row, for the back-off. */
  crashes: number;
  /** `<cluster>-<k>`, for the log file. */
  name: string;
  command: NodeCommand;
  flags: string[];
  /** Where stdout and stderr go, appended. */
  logFile: string;
  /** Environment added to the node's (see `childEnv`). */
  env: Record<string, string> | undefined;
  /** Once the process is gone: after it is marked dead, before `exited` resolves. */
  onExit: (proc: SlotProcess, code: number | null, signal: NodeJS.Signals | null, error?: Error) => void;
}

/** Start one slot's node; its `exited` resolves once the process is gone. */
export function spawnSlotProcess(o: SpawnSlotOptions): SlotProcess {
  const fd = openSync(o.logFile, 'a');
  let child: ChildProcess;
  try {
    writeSync(fd, `--- ${new Date().toISOString()} starting ${o.name}: ${o.flags.join(' ')}\n`);
    child = spawn(o.command.execPath, [...o.command.args, ...o.flags], {
      cwd: o.command.cwd ?? process.cwd(),
      stdio: ['ignore', fd, fd],
      env: childEnv(o.env),
    });
  } finally {
    closeSync(fd);
  }
  const proc: SlotProcess = {
    ordinal: o.ordinal,
    child,
    exited: Promise.resolve(),
    alive: true,
    stopping: false,
    startedAt: Date.now(),
    exitedAt: null,
    crashes: o.crashes,
  };
  LIVE.add(child);
  proc.exited = new Promise<void>((done) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
      if (!proc.alive) return;
      proc.alive = false;
      proc.exitedAt = Date.now();
      LIVE.delete(child);
      o.onExit(proc, code, signal, error);
      done();
    };
    child.once('exit', (code, signal) => finish(code, signal));
    child.once('error', (err) => {
      if (child.pid === undefined) finish(null, null, err);
    });
  });
  return proc;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export function stopSlotProcess(
  p: SlotProcess,
  cluster: string,
  graceMs: number,
  log: Logger,
): Promise<void> {
  if (!p.alive) return p.exited;
  if (!p.stopping) {
    p.stopping = true;
    log.info({ slot: slotName(cluster, p.ordinal), pid: p.child.pid }, 'stopping node');
    p.child.kill('SIGTERM');
    const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
    timer.unref();
    void p.exited.then(() => clearTimeout(timer));
  }
  return p.exited;
}

/** Ours, minus every CONFLUX_* variable, plus `extra`. */
function childEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CONFLUX_')) env[k] = v;
  return { ...env, ...extra };
}

/** After a crash: how many in a row, and how long to wait before starting the slot again. */
export function restartBackoff(prev: SlotProcess | undefined): { crashes: number; delayMs: number } {
  if (!prev || prev.stopping || prev.exitedAt === null) return { crashes: 0, delayMs: 0 };
  const crashes = prev.exitedAt - prev.startedAt >= HEALTHY_RUN_MS ? 1 : prev.crashes + 1;
  const delayMs = crashes <= 1 ? 0 : Math.min(BACKOFF_MS_MAX, BACKOFF_MS_MIN * 2 ** (crashes - 2));
  return { crashes, delayMs };
}

/**
 * End the processes slots.json still records (a previous operator's that died without stopping
 * them) when they run a node on the slot's volume, and forget every recorded pid.
 */
export async function reapOrphans(
  doc: SlotsFile,
  cluster: string,
  volumeDir: (ordinal: number) => string,
  log: Logger,
): Promise<void> {
  for (const [ordinal, slot] of Object.entries(doc.slots)) {
    if (slot.pid === null) continue;
    const volume = volumeDir(Number(ordinal));
    if (await reapOrphan(slot.pid, volume)) {
      log.warn(
        { slot: slotName(cluster, Number(ordinal)), pid: slot.pid },
        'killed an orphaned node process',
      );
    }
    slot.pid = null;
  }
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

/** `<name>-<k>`, shortened to what the node accepts (the node appends `-<hex>`). */
export function nodeIdPrefix(cluster: string, ordinal: number): string {
  const suffix = `-${ordinal}`;
  const head = cluster.slice(0, NODE_ID_PREFIX_MAX - suffix.length).replace(/-+$/, '');
  return `${head}${suffix}`;
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
