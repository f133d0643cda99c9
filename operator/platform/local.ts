// LocalPlatform: member slots are child `conflux-node` processes on 127.0.0.1, for `npm start`
// and tests. It behaves like a StatefulSet where the reconciler can tell: slot k of cluster `demo`
// is `demo-k` with a stable data dir (its volume) and stable ports across restarts, a slot whose
// process died is started again after a crash back-off, slots beyond the set size are stopped but
// keep their volumes. Like a kubelet after a reboot, the first time this platform looks at a
// cluster (an operator that starts over a `.conflux/` of an earlier run) it starts every slot of
// the set recorded in slots.json, so the members come back without any spec change.
//
// On disk, under `<root>/<namespace>/<name>/`:
//   slots.json            the set size and each slot's ports (and last pid, to reap orphans)
//   volumes/<name>-<k>/   the slot's --data-dir
//   logs/<name>-<k>.log   the slot's stdout and stderr, appended across restarts

import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Logger, pino } from 'pino';
import type { AdminClientOptions } from '../../node/api/admin-client.js';
import type { ConfluxCluster } from '../api/cluster.js';
import {
  BACKOFF_MS_MIN,
  defaultCommand,
  type NodeCommand,
  nodeFlags,
  reapOrphans,
  restartBackoff,
  type SlotProcess,
  spawnSlotProcess,
  stopSlotProcess,
} from './local-process.js';
import {
  addressesOf,
  clusterDirUnder,
  clusterKey,
  PortAllocator,
  readSlotsFile,
  type SlotsFile,
  slotName,
  volumeOrdinals,
  writeSlotsFile,
} from './local-slots.js';
import { commandFor, type ImageCommands, localRevision, specEnv } from './local-template.js';
import type { MemberPod, Platform } from './platform.js';

export { defaultCommand, type NodeCommand, nodeIdPrefix, PASS_NODE_ID_PREFIX } from './local-process.js';
export { freePort } from './local-slots.js';

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
  /**
   * How to run each `spec.image`. Without it the image is not part of a local node's template (a
   * process has no image) and every node runs `command`; with it, an image missing here is refused.
   */
  images?: ImageCommands;
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

interface ClusterState {
  namespace: string;
  name: string;
  dir: string;
  doc: SlotsFile;
  procs: Map<number, SlotProcess>;
  /** The cluster as last given to ensureMembers: what a slot without its own template runs. */
  cluster: ConfluxCluster | null;
  /** The cluster (the template) each slot was last started with: what its crash restarts run. */
  templates: Map<number, ConfluxCluster>;
  restartTimers: Map<number, NodeJS.Timeout>;
  lock: Promise<unknown>;
  log: Logger;
}

export class LocalPlatform implements Platform {
  readonly kind = 'local' as const;
  readonly root: string;
  private readonly command: NodeCommand;
  private readonly log: Logger;
  private readonly clusters = new Map<string, Promise<ClusterState>>();
  private readonly stopGraceMs: number;
  private readonly readyTimeoutMs: number;
  private readonly allocator: PortAllocator;

  constructor(private readonly o: LocalPlatformOptions) {
    this.root = resolve(o.root);
    this.command = o.command ?? defaultCommand(o.preferBuilt ?? false);
    this.log = (o.logger ?? pino({ level: 'silent' })).child({ component: 'local-platform' });
    this.stopGraceMs = o.stopGraceMs ?? 10_000;
    this.readyTimeoutMs = o.readyTimeoutMs ?? 1_000;
    this.allocator = new PortAllocator(this.root, o, this.loaded);
  }

  async ensureMembers(cluster: ConfluxCluster, size: number): Promise<void> {
    if (!Number.isInteger(size) || size < 0) throw new Error(`invalid set size ${size}`);
    const state = await this.state(cluster);
    await this.locked(state, async () => {
      state.cluster = cluster;
      for (let k = 0; k < size; k++) await this.allocator.allocate(state, k);
      if (state.doc.size !== size) {
        state.log.info({ from: state.doc.size, to: size }, 'set size');
        state.doc.size = size;
        this.save(state);
      }
      for (let k = 0; k < size; k++) this.startIfNeeded(state, state.templates.get(k) ?? cluster, k);
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
    const current = localRevision(cluster, this.o.images);
    const pods = [...ordinals]
      .sort((a, b) => a - b)
      .flatMap((ordinal) => {
        const ports = state.doc.slots[ordinal];
        if (!ports) return [];
        const running = state.procs.get(ordinal)?.alive ?? false;
        const revision = ports.revision ?? undefined;
        return [
          {
            ordinal,
            name: slotName(state.name, ordinal),
            running,
            addresses: addressesOf(ports),
            ...(revision === undefined ? {} : { revision }),
            outdated: revision !== undefined && revision !== current,
          },
        ];
      });
    return Promise.all(
      pods.map(async (p) => ({ ...p, ready: p.running && (await this.probeReady(p.addresses.api)) })),
    );
  }

  async volumes(cluster: ConfluxCluster): Promise<number[]> {
    return volumeOrdinals(this.clusterDir(cluster), cluster.metadata.name);
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

  async templateRevision(cluster: ConfluxCluster): Promise<string> {
    return localRevision(cluster, this.o.images);
  }

  /** Stop the slot's process and start it with `cluster`'s template, on the same data dir and ports. */
  async restartMember(cluster: ConfluxCluster, ordinal: number): Promise<void> {
    const state = await this.state(cluster);
    await this.locked(state, async () => {
      if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= state.doc.size) {
        throw new Error(`slot ${ordinal} is not in the set (size ${state.doc.size})`);
      }
      commandFor(cluster, this.o.images, this.command); // refuse an unknown image before stopping
      clearTimeout(state.restartTimers.get(ordinal));
      state.restartTimers.delete(ordinal);
      const p = state.procs.get(ordinal);
      if (p?.alive) await this.stopSlot(state, p);
      state.templates.set(ordinal, cluster);
      this.spawnSlot(state, cluster, ordinal, 0);
      state.log.info(
        { slot: slotName(state.name, ordinal), revision: localRevision(cluster, this.o.images) },
        'node restarted on the current template',
      );
    });
  }

  /** Stop the slot's process, delete its data dir and start it again empty (same ports and template). */
  async recreateMember(cluster: ConfluxCluster, ordinal: number): Promise<void> {
    const state = await this.state(cluster);
    await this.locked(state, async () => {
      if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= state.doc.size) {
        throw new Error(`slot ${ordinal} is not in the set (size ${state.doc.size})`);
      }
      clearTimeout(state.restartTimers.get(ordinal));
      state.restartTimers.delete(ordinal);
      const p = state.procs.get(ordinal);
      if (p?.alive) await this.stopSlot(state, p);
      rmSync(this.volumeDir(cluster, ordinal), { recursive: true, force: true });
      this.spawnSlot(state, state.templates.get(ordinal) ?? cluster, ordinal, 0);
      state.log.info({ slot: slotName(state.name, ordinal) }, 'volume wiped, node started empty');
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
    return clusterDirUnder(this.root, cluster.metadata);
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
    const doc = readSlotsFile(dir);
    const state: ClusterState = {
      namespace,
      name,
      dir,
      doc,
      procs: new Map(),
      cluster: null,
      templates: new Map(),
      restartTimers: new Map(),
      lock: Promise.resolve(),
      log: this.log.child({ cluster: name, namespace }),
    };
    // A previous operator that died without stopping its children leaves them holding the
    // slots' ports and data dirs: end them before starting new ones.
    await reapOrphans(doc, name, (ordinal) => this.volumeDir(cluster, ordinal), state.log);
    this.loaded.set(clusterKey(cluster), state);
    if (doc.size > 0 && this.o.autoRestart !== false) {
      state.cluster = cluster;
      state.log.info({ size: doc.size }, 'starting the recorded set');
      for (let k = 0; k < doc.size; k++) {
        if (!doc.slots[k]) continue;
        try {
          this.spawnSlot(state, cluster, k, 0);
        } catch (err) {
          // An image this machine cannot run: the reconciler reports it when it acts on the slot.
          state.log.error({ err, slot: slotName(name, k) }, 'cannot start the recorded slot');
        }
      }
    }
    return state;
  }

  private locked<T>(state: ClusterState, fn: () => Promise<T>): Promise<T> {
    const run = state.lock.then(fn, fn);
    state.lock = run.catch(() => undefined);
    return run;
  }

  private save(state: ClusterState): void {
    writeSlotsFile(state.dir, state.doc);
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
        const cluster = state.templates.get(p.ordinal) ?? state.cluster;
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
    const command = commandFor(cluster, this.o.images, this.command);
    state.templates.set(ordinal, cluster);
    ports.revision = localRevision(cluster, this.o.images);
    const proc = spawnSlotProcess({
      ordinal,
      crashes,
      name,
      command,
      flags: nodeFlags(cluster, state.name, ordinal, volume, a, this.o.extraArgs),
      logFile,
      env: { ...this.o.env, ...specEnv(cluster) },
      onExit: (p, code, signal, error) => {
        const slot = state.doc.slots[ordinal];
        if (slot && slot.pid === p.child.pid) {
          slot.pid = null;
          this.save(state);
        }
        const fields = { slot: name, code, signal, log: logFile, ...(error ? { err: error.message } : {}) };
        if (p.stopping) state.log.info(fields, 'node stopped');
        else {
          state.log.warn(fields, 'node exited');
          this.scheduleRestart(state, p);
        }
      },
    });
    state.procs.set(ordinal, proc);
    if (proc.child.pid !== undefined) ports.pid = proc.child.pid;
    this.save(state);
    state.log.info({ slot: name, pid: proc.child.pid, api: a.api, admin: a.admin }, 'node started');
  }

  private stopSlot(state: ClusterState, p: SlotProcess): Promise<void> {
    return stopSlotProcess(p, state.name, this.stopGraceMs, state.log);
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
