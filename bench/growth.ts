// The growth bench: how Conflux's costs grow with the amount of data, side by side with etcd. For
// each size and each system (alternating which goes first): bootstrap a fresh 3-node cluster, bulk
// load N keys, take each member's RSS, watch fan-out to WATCHERS streams, back up, leader transfer
// and leader kill windows (failover.ts), add a fourth member until it caught up; then restore the
// backup into a pristine single node. Every cluster is stopped and its data removed before the next.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type ConfluxCluster, startConflux } from './conflux.js';
import { type EtcdCluster, startEtcd } from './etcd.js';
import { median, runFailover } from './failover.js';
import {
  CATCH_UP_STABLE_MS,
  confluxAddNode,
  confluxBackup,
  confluxBatch,
  confluxRestore,
} from './growth-conflux.js';
import { BATCH, bulkLoad, IN_FLIGHT, rawBytes, VALUE_BYTES } from './growth-data.js';
import { etcdAddMember, etcdBackup, etcdBatch, etcdRestore } from './growth-etcd.js';
import { watchFanOut } from './growth-watch.js';
import type { Cluster, Member } from './load.js';
import { LoopDelay } from './loop-delay.js';
import { memoryKiB, type Proc, stopProcess } from './proc.js';
import type { System } from './report.js';

export interface GrowthOptions {
  root: string;
  dir: string;
  sizes: number[];
  systems: System[];
  /** Leader transfers and leader kills per size and system (0: none). */
  failoverTrials: number;
  watchers: number;
  signal: AbortSignal;
  onCrash: (p: Proc, why: string) => void;
  /** Throws if a process crashed. */
  check: () => void;
  log: (s: string) => void;
  /** V8 CPU profiles of every Conflux node, written when it stops. */
  cpuProfDir?: string;
}

/** One system at one size: every measured number (NaN where a step was not run). */
export interface GrowthRow {
  system: System;
  keys: number;
  rawBytes: number;
  bootstrapMs: number;
  loadMs: number;
  loadKeysPerSec: number;
  /** Largest and mean RSS of the three members after the load. */
  rssMaxKiB: number;
  rssMeanKiB: number;
  watch: { p50Ms: number; p99Ms: number; maxMs: number; missed: number; setupMs: number };
  backupMs: number;
  backupBytes: number;
  restoreMs: number;
  restoreTotalMs: number;
  restoreRssKiB: number;
  addNodeMs: number;
  catchUpMs: number;
  transferMs: number;
  killMs: number;
  /** Kill trials: restart of the killed leader until it is ready (absent in older reports). */
  readyMs?: number;
  /** Kill trials: restart of the killed leader until the 3 members are healthy again. */
  recoveryMs: number;
  /**
   * Conflux only: the worst node's event-loop delay p99.9 in ms during each step (bucket upper
   * bound of conflux_event_loop_delay_seconds; bench/loop-delay.ts).
   */
  loopDelayP999Ms?: Record<string, number>;
  /** Steps that failed (their numbers stay NaN); the run goes on with the next step. */
  errors: string[];
}

export interface GrowthReport {
  meta: Record<string, unknown>;
  rows: GrowthRow[];
}

const nan = Number.NaN;

async function oneSystem(system: System, n: number, opts: GrowthOptions): Promise<GrowthRow> {
  const dir = join(opts.dir, `${system}-${n}`);
  mkdirSync(dir, { recursive: true });
  const row: GrowthRow = {
    system,
    keys: n,
    rawBytes: rawBytes(n),
    bootstrapMs: nan,
    loadMs: nan,
    loadKeysPerSec: nan,
    rssMaxKiB: nan,
    rssMeanKiB: nan,
    watch: { p50Ms: nan, p99Ms: nan, maxMs: nan, missed: 0, setupMs: nan },
    backupMs: nan,
    backupBytes: nan,
    restoreMs: nan,
    restoreTotalMs: nan,
    restoreRssKiB: nan,
    addNodeMs: nan,
    catchUpMs: nan,
    transferMs: nan,
    killMs: nan,
    readyMs: nan,
    recoveryMs: nan,
    loopDelayP999Ms: {},
    errors: [],
  };
  const prof = opts.cpuProfDir ? join(opts.cpuProfDir, String(n)) : undefined;
  const say = (s: string) => opts.log(`growth ${system} ${n.toLocaleString('en-US')} keys: ${s}`);
  const t0 = performance.now();
  const cluster: ConfluxCluster | EtcdCluster =
    system === 'conflux'
      ? await startConflux({
          root: opts.root,
          dir: join(dir, 'cluster'),
          onCrash: opts.onCrash,
          extraArgs: ['--catch-up-stable-ms', String(CATCH_UP_STABLE_MS)],
          ...(opts.cpuProfDir ? { cpuProfDir: join(opts.cpuProfDir, String(n)) } : {}),
        })
      : await startEtcd({ dir: join(dir, 'cluster'), onCrash: opts.onCrash });
  const extra: Member[] = [];
  /** Run one step; a failure is recorded in the row and the next step runs (a crash still stops all). */
  const delays = system === 'conflux' ? new LoopDelay(() => [...cluster.members, ...extra]) : null;
  const step = async (what: string, fn: () => Promise<void>): Promise<boolean> => {
    try {
      await fn();
      await recordDelay(what);
      return true;
    } catch (err) {
      opts.check();
      if (opts.signal.aborted) throw err;
      const msg = ((err as Error).message ?? String(err)).split('\n')[0]?.slice(0, 300) ?? '';
      row.errors.push(`${what}: ${msg}`);
      say(`ERROR in ${what}: ${msg}`);
      return false;
    }
  };
  const recordDelay = async (what: string) => {
    if (!delays) return;
    const { worstMs, byNode } = await delays.step();
    row.loopDelayP999Ms = { ...row.loopDelayP999Ms, [what]: worstMs };
    const nodes = Object.entries(byNode).map(
      ([id, ms]) => `${id} ${ms >= 1000 ? ms / 1000 : ms}${ms >= 1000 ? ' s' : ' ms'}`,
    );
    say(`event-loop delay p99.9 during ${what}: ≤ ${nodes.join(', ')}`);
  };
  try {
    row.bootstrapMs = performance.now() - t0;
    await delays?.reset();
    say(`bootstrap ${Math.round(row.bootstrapMs)} ms`);
    const leader = await cluster.findLeader();
    const load = await bulkLoad(leader, n, system === 'conflux' ? confluxBatch : etcdBatch, opts.signal);
    row.loadMs = load.ms;
    row.loadKeysPerSec = load.keysPerSec;
    say(
      `loaded in ${Math.round(load.ms)} ms (${Math.round(load.keysPerSec)} keys/s, ${load.retries} retried batches` +
        `${load.retries ? `: ${JSON.stringify(load.retryReasons)}` : ''})`,
    );
    opts.check();
    await recordDelay('bulk load');
    const rss = cluster.members.map((m) => memoryKiB(m.proc.pid)?.rssKiB ?? nan);
    row.rssMaxKiB = Math.max(...rss);
    row.rssMeanKiB = rss.reduce((a, b) => a + b, 0) / rss.length;
    say(`RSS ${rss.map((k) => `${Math.round(k / 1024)} MiB`).join(', ')}`);

    await step('watch fan-out', async () => {
      row.watch = await watchFanOut(cluster, opts.watchers);
      say(
        `watch fan-out to ${opts.watchers}: p50 ${row.watch.p50Ms.toFixed(1)} ms p99 ${row.watch.p99Ms.toFixed(1)} ms max ${row.watch.maxMs.toFixed(1)} ms (${row.watch.missed} missed)`,
      );
    });

    const backupDir = join(dir, 'backups');
    mkdirSync(backupDir, { recursive: true });
    let backupUri: string | undefined;
    await step('backup', async () => {
      const backupLeader = await cluster.findLeader();
      const backup =
        system === 'conflux'
          ? await confluxBackup(cluster as ConfluxCluster, backupLeader, backupDir)
          : await etcdBackup(cluster as EtcdCluster, backupLeader, backupDir);
      row.backupMs = backup.ms;
      row.backupBytes = backup.bytes;
      backupUri = backup.uri;
      say(`backup ${Math.round(backup.ms)} ms, ${(backup.bytes / 2 ** 20).toFixed(1)} MiB`);
    });

    await step('failover', async () => {
      if (opts.failoverTrials === 0) return;
      const f = await runFailover([cluster], {
        trials: opts.failoverTrials,
        signal: opts.signal,
        check: opts.check,
        log: say,
      });
      const s = f.systems[system];
      if (s) {
        row.transferMs = s.transfer.medianMs;
        row.killMs = s.kill.medianMs;
        row.readyMs = median(s.kill.trials.map((t) => t.readyMs ?? nan));
        row.recoveryMs = median(s.kill.trials.map((t) => t.recoveryMs ?? nan));
      }
    });

    await step('add node', async () => {
      const added =
        system === 'conflux'
          ? await confluxAddNode(cluster as ConfluxCluster, opts.root, dir, opts.onCrash, extra, prof)
          : await etcdAddMember(cluster as EtcdCluster, dir, opts.onCrash, extra);
      row.addNodeMs = added.ms;
      row.catchUpMs = added.catchUpMs;
      say(`add node ${Math.round(row.addNodeMs)} ms (catch-up ${Math.round(row.catchUpMs)} ms)`);
    });
    await stopAll(cluster, extra.splice(0));

    const uri = backupUri;
    if (uri === undefined) return row;
    await step('restore', async () => {
      const restored =
        system === 'conflux'
          ? await confluxRestore(opts.root, dir, uri, n, opts.onCrash, extra, prof)
          : await etcdRestore(cluster as EtcdCluster, dir, uri, n, opts.onCrash, extra);
      row.restoreMs = restored.ms;
      row.restoreTotalMs = restored.totalMs;
      row.restoreRssKiB = restored.rssKiB;
      say(
        `restore ${Math.round(row.restoreMs)} ms (${Math.round(row.restoreTotalMs)} ms from start to serving the last key)`,
      );
    });
  } finally {
    await stopAll(cluster, extra);
    rmSync(dir, { recursive: true, force: true });
  }
  return row;
}

async function stopAll(cluster: Cluster, extra: Member[]): Promise<void> {
  await cluster.stop();
  await Promise.all(extra.map((m) => stopProcess(m.proc)));
}

export async function runGrowth(opts: GrowthOptions): Promise<GrowthReport> {
  const rows: GrowthRow[] = [];
  for (const [i, n] of opts.sizes.entries()) {
    const order = i % 2 === 0 ? opts.systems : [...opts.systems].reverse();
    for (const system of order) {
      opts.check();
      rows.push(await oneSystem(system, n, opts));
    }
  }
  return {
    meta: {
      sizes: opts.sizes,
      valueBytes: VALUE_BYTES,
      loadBatch: BATCH,
      loadInFlight: IN_FLIGHT,
      watchers: opts.watchers,
      failoverTrials: opts.failoverTrials,
      confluxCatchUpStableMs: CATCH_UP_STABLE_MS,
    },
    rows,
  };
}
