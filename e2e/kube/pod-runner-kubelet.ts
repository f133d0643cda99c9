// The kubelet half of the pod runner: every pod bound to this runner (spec.nodeName equal to its
// node name, or unset) runs as one real process of the first container, on the pod's own
// loopback IP (pod-runner-addresses.ts), with its environment and volumes mapped onto the host
// (pod-runner-env.ts). It reports the pod's status as a kubelet does (phase, podIP, Ready from
// the readiness probe, containerStatuses with restartCount), restarts the process when it exits,
// and on deletion stops it (SIGTERM, SIGKILL after the grace period, capped) and then removes the
// pod object.
//
// Volumes: persistentVolumeClaim -> <root>/pvc/<ns>/<claim> (kept across restarts and pod
// re-creation; wiped only once the PVC object is gone and no pod uses it); secret ->
// <root>/secrets/<ns>/<pod>/<volume> and configMap -> <root>/configmaps/<ns>/<pod>/<volume>
// (written afresh at every container start); emptyDir -> <root>/emptydir/<ns>/<pod>/<volume>
// (kept across container restarts, removed with the pod); hostPath -> the path itself. A pod waits
// (ContainerCreating) while its PVC is absent or being deleted. It also plays the pvc-protection
// controller: a PVC being deleted loses its `kubernetes.io/pvc-protection` finalizer once no pod
// refers to it and no process of the runner still uses its directory.
//
// Simplified: one container per pod (others, and init containers, are ignored); the image and
// `command` are ignored (the runner's command, conflux-node by default, is run with the
// container's `args`); only the readiness probe is run (no startup or liveness probes; exec
// probes count as passing); no resource limits, users or security contexts.

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import {
  ApiException,
  type CoreV1Api,
  type V1ConfigMap,
  type V1Container,
  type V1ContainerState,
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1PodCondition,
  type V1PodStatus,
  type V1Probe,
  type V1Secret,
} from '@kubernetes/client-node';
import type { NodeCommand } from '../../operator/platform/local.js';
import type { LoopbackAddresses } from './pod-runner-addresses.js';
import {
  ContainerConfigError,
  containerEnv,
  type EnvSources,
  expandVars,
  type HostMount,
  hostEnv,
} from './pod-runner-env.js';

export interface KubeletOptions {
  core: CoreV1Api;
  root: string;
  command: NodeCommand;
  nodeName: string;
  addresses: LoopbackAddresses;
  /** How often the readiness probe runs (the pod's periodSeconds is not honoured). */
  probePeriodMs: number;
  /** The longest grace period honoured between SIGTERM and SIGKILL. */
  maxGracePeriodMs: number;
  log: (message: string) => void;
  /** Something changed that the controllers may want to see (a pod finished, for example). */
  changed: () => void;
}

/** Processes of every runner in this process, killed if the process exits without stopping them. */
const LIVE = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of LIVE) c.kill('SIGKILL');
    });
  }
  LIVE.add(child);
  child.once('exit', () => LIVE.delete(child));
}

const PVC_PROTECTION = 'kubernetes.io/pvc-protection';

export const isNotFound = (err: unknown) => err instanceof ApiException && err.code === 404;
const isConflict = (err: unknown) => err instanceof ApiException && err.code === 409;
const errText = (err: unknown) =>
  err instanceof ApiException ? `HTTP ${err.code}: ${String(err.body).slice(0, 300)}` : String(err);

export function pvcDir(root: string, namespace: string, claim: string): string {
  return join(root, 'pvc', namespace, claim);
}

export function podLogFile(root: string, namespace: string, pod: string): string {
  return join(root, 'logs', namespace, `${pod}.log`);
}

export interface PodProcessInfo {
  ip: string;
  pid: number | undefined;
  restartCount: number;
  ready: boolean;
}

export class Kubelet {
  private readonly workers = new Map<string, PodWorker>();
  /** PVCs seen (namespace/name -> uid, and when), to notice when one is deleted. */
  private readonly knownClaims = new Map<string, { uid: string; seenAt: number }>();
  /** PVC directories whose claim is gone, waiting until no pod uses them. */
  private readonly wipes = new Set<string>();
  private stopped = false;

  constructor(private readonly o: KubeletOptions) {}

  /** Makes the workers match the pods (called with the full list after every change). */
  syncPods(pods: V1Pod[]): void {
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const pod of pods) {
      const nodeName = pod.spec?.nodeName;
      if (nodeName && nodeName !== this.o.nodeName) continue;
      const namespace = pod.metadata?.namespace ?? 'default';
      const name = pod.metadata?.name;
      if (!name) continue;
      const key = `${namespace}/${name}`;
      seen.add(key);
      const worker = this.workers.get(key);
      if (worker && worker.uid !== pod.metadata?.uid) {
        // The pod of that name was replaced: finish the old one first, then start the new one.
        if (!worker.finishing) void this.finish(worker, false);
        continue;
      }
      if (pod.metadata?.deletionTimestamp) {
        if (worker) {
          worker.update(pod);
          if (!worker.finishing) void this.finish(worker, true);
        } else {
          void this.removePodObject(pod);
        }
        continue;
      }
      if (worker) {
        worker.update(pod);
        continue;
      }
      const phase = pod.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') continue;
      this.workers.set(key, new PodWorker(pod, this.o, this));
    }
    for (const worker of this.workers.values()) {
      if (!seen.has(worker.key) && !worker.finishing) void this.finish(worker, false);
    }
  }

  /**
   * Notices deleted PVCs and wipes their directories once no pod uses them. `listedAt`: when the
   * list was requested; a claim a pod found after that may be missing from it without being gone.
   */
  syncClaims(claims: V1PersistentVolumeClaim[], listedAt: number): void {
    const current = new Map<string, string>();
    for (const c of claims) {
      current.set(`${c.metadata?.namespace ?? 'default'}/${c.metadata?.name}`, c.metadata?.uid ?? '');
    }
    for (const [key, known] of this.knownClaims) {
      if (known.seenAt >= listedAt || current.get(key) === known.uid) continue;
      this.knownClaims.delete(key);
      this.wipes.add(key);
    }
    for (const [key, uid] of current) {
      if (!this.wipes.has(key) && !this.knownClaims.has(key))
        this.knownClaims.set(key, { uid, seenAt: listedAt });
    }
    for (const key of this.wipes) {
      const [namespace, claim] = key.split('/') as [string, string];
      const dir = pvcDir(this.o.root, namespace, claim);
      if ([...this.workers.values()].some((w) => w.uses(dir))) continue;
      rmSync(dir, { recursive: true, force: true });
      this.wipes.delete(key);
      this.o.log(`PVC ${key} is gone: removed ${dir}`);
    }
  }

  /**
   * The pvc-protection controller's part: a claim being deleted loses its
   * `kubernetes.io/pvc-protection` finalizer (so the API server can remove it) once no pod
   * object refers to it and no process of ours still has its directory.
   */
  async releaseClaims(claims: V1PersistentVolumeClaim[], pods: V1Pod[]): Promise<void> {
    for (const c of claims) {
      const finalizers = c.metadata?.finalizers ?? [];
      if (!c.metadata?.deletionTimestamp || !finalizers.includes(PVC_PROTECTION)) continue;
      const namespace = c.metadata.namespace ?? 'default';
      const name = c.metadata.name ?? '';
      const usedByPod = pods.some(
        (p) =>
          (p.metadata?.namespace ?? 'default') === namespace &&
          p.status?.phase !== 'Succeeded' &&
          p.status?.phase !== 'Failed' &&
          (p.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === name),
      );
      const dir = pvcDir(this.o.root, namespace, name);
      if (usedByPod || [...this.workers.values()].some((w) => w.uses(dir))) continue;
      try {
        await this.o.core.replaceNamespacedPersistentVolumeClaim({
          name,
          namespace,
          body: {
            ...c,
            metadata: { ...c.metadata, finalizers: finalizers.filter((f) => f !== PVC_PROTECTION) },
          },
        });
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err))
          this.o.log(`releasing PVC ${namespace}/${name}: ${errText(err)}`);
      }
    }
  }

  /** Called by a worker that found its PVC: remember it, to notice its deletion. */
  claimSeen(namespace: string, claim: string, uid: string): void {
    const key = `${namespace}/${claim}`;
    if (!this.wipes.has(key)) this.knownClaims.set(key, { uid, seenAt: Date.now() });
  }

  claimBeingWiped(namespace: string, claim: string): boolean {
    return this.wipes.has(`${namespace}/${claim}`);
  }

  /** SIGKILL the pod's process; resolves once it has exited (the worker then restarts it). */
  async kill(namespace: string, pod: string): Promise<void> {
    const worker = this.workers.get(`${namespace}/${pod}`);
    if (!worker) throw new Error(`pod ${namespace}/${pod} is not running here`);
    await worker.kill();
  }

  info(namespace: string, pod: string): PodProcessInfo | undefined {
    return this.workers.get(`${namespace}/${pod}`)?.info();
  }

  /** Stops every process (the pod objects are left as they are). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.workers.values()].map((w) => w.terminate(this.o.maxGracePeriodMs)));
    this.workers.clear();
  }

  private async finish(worker: PodWorker, removeObject: boolean): Promise<void> {
    worker.finishing = true;
    await worker.terminate(worker.gracePeriodMs());
    rmSync(join(this.o.root, 'secrets', worker.namespace, worker.name), { recursive: true, force: true });
    rmSync(join(this.o.root, 'configmaps', worker.namespace, worker.name), { recursive: true, force: true });
    rmSync(join(this.o.root, 'emptydir', worker.namespace, worker.name), { recursive: true, force: true });
    if (this.workers.get(worker.key) === worker) this.workers.delete(worker.key);
    this.o.log(`pod ${worker.key} (uid ${worker.uid}) stopped`);
    if (removeObject && !this.stopped) await this.removePodObject(worker.pod);
    this.o.changed();
  }

  /** Finalizes a deletion: the kubelet removes the object once its containers are stopped. */
  private async removePodObject(pod: V1Pod): Promise<void> {
    const name = pod.metadata?.name ?? '';
    const namespace = pod.metadata?.namespace ?? 'default';
    try {
      await this.o.core.deleteNamespacedPod({
        name,
        namespace,
        gracePeriodSeconds: 0,
        body: {
          gracePeriodSeconds: 0,
          ...(pod.metadata?.uid ? { preconditions: { uid: pod.metadata.uid } } : {}),
        },
      });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err))
        this.o.log(`deleting pod ${namespace}/${name}: ${errText(err)}`);
    }
  }
}

type Waiting = { reason: string; message?: string };
type Terminated = { exitCode: number; signal?: number; reason: string; startedAt: Date; finishedAt: Date };

/** One pod: its process, restarts, probe and status. */
class PodWorker {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
  readonly ip: string;
  pod: V1Pod;
  finishing = false;

  private child: ChildProcess | null = null;
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;
  private startedAt: Date | null = null;
  private readonly podStartTime = new Date();
  private restartCount = 0;
  private ready = false;
  private probeFailures = 0;
  private probeTimer: NodeJS.Timeout | null = null;
  private probing = false;
  private waiting: Waiting | null = { reason: 'ContainerCreating' };
  private lastTerminated: Terminated | null = null;
  private finalPhase: 'Succeeded' | 'Failed' | null = null;
  private terminating = false;
  private wake: (() => void) | null = null;
  private readonly mountedClaims = new Set<string>();
  private readonly done: Promise<void>;
  private lastWritten = '';
  private lastConditions = new Map<string, V1PodCondition>();
  private writing: Promise<void> | null = null;
  private writeAgain = false;

  constructor(
    pod: V1Pod,
    private readonly o: KubeletOptions,
    private readonly kubelet: Kubelet,
  ) {
    this.pod = pod;
    this.namespace = pod.metadata?.namespace ?? 'default';
    this.name = pod.metadata?.name ?? '';
    this.key = `${this.namespace}/${this.name}`;
    this.uid = pod.metadata?.uid;
    this.ip = o.addresses.of(this.namespace, this.name);
    this.done = this.run().catch((err: unknown) =>
      this.o.log(`pod ${this.key}: worker failed: ${errText(err)}`),
    );
  }

  update(pod: V1Pod): void {
    this.pod = pod;
  }

  uses(dir: string): boolean {
    return this.mountedClaims.has(dir);
  }

  info(): PodProcessInfo {
    return { ip: this.ip, pid: this.child?.pid, restartCount: this.restartCount, ready: this.ready };
  }

  gracePeriodMs(): number {
    const seconds =
      this.pod.metadata?.deletionGracePeriodSeconds ?? this.pod.spec?.terminationGracePeriodSeconds ?? 30;
    return Math.min(Math.max(0, seconds * 1000), this.o.maxGracePeriodMs);
  }

  async kill(): Promise<void> {
    const { child, exited } = this;
    if (!child || !exited) throw new Error(`pod ${this.key} has no running process`);
    child.kill('SIGKILL');
    await exited;
  }

  /** Stops the process for good and waits for the worker to end. */
  async terminate(graceMs: number): Promise<void> {
    this.terminating = true;
    this.wake?.();
    const { child, exited } = this;
    if (child && exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
    await this.done;
  }

  private async run(): Promise<void> {
    await this.writeStatus();
    let backoffMs = 0;
    while (!this.terminating) {
      let prepared: { args: string[]; env: Record<string, string> };
      try {
        prepared = await this.prepare();
      } catch (err) {
        const reason = err instanceof ContainerConfigError ? err.reason : 'CreateContainerError';
        const message = err instanceof Error ? err.message : String(err);
        if (this.waiting?.message !== message) this.o.log(`pod ${this.key}: ${reason}: ${message}`);
        this.waiting = { reason, message };
        await this.writeStatus();
        await this.sleep(1000);
        continue;
      }
      if (this.terminating) break;
      const exited = this.start(prepared);
      await this.writeStatus();
      const { code, signal } = await exited;
      this.stopProbe();
      const startedAt = this.startedAt ?? new Date();
      const finishedAt = new Date();
      this.lastTerminated = {
        exitCode: code ?? 128 + signalNumber(signal),
        ...(signal ? { signal: signalNumber(signal) } : {}),
        reason: code === 0 ? 'Completed' : 'Error',
        startedAt,
        finishedAt,
      };
      this.child = null;
      this.exited = null;
      this.ready = false;
      this.o.log(`pod ${this.key}: process exited (code ${code}, signal ${signal})`);
      if (this.terminating) break;
      const policy = this.pod.spec?.restartPolicy ?? 'Always';
      if (policy === 'Never' || (policy === 'OnFailure' && code === 0)) {
        this.finalPhase = code === 0 ? 'Succeeded' : 'Failed';
        await this.writeStatus();
        return;
      }
      // The kubelet's crash-loop back-off, shortened: 0, 0.5, 1, 2, 4, 5, 5 ... s; reset after 10 s up.
      if (finishedAt.getTime() - startedAt.getTime() > 10_000) backoffMs = 0;
      const delay = backoffMs;
      backoffMs = Math.min(Math.max(backoffMs * 2, 500), 5_000);
      this.restartCount++;
      this.waiting = delay > 0 ? { reason: 'CrashLoopBackOff', message: `back-off ${delay} ms` } : null;
      await this.writeStatus();
      if (delay > 0) await this.sleep(delay);
    }
    this.stopProbe();
  }

  /** Volumes and environment for the next start (fresh each time, like the kubelet). */
  private async prepare(): Promise<{ args: string[]; env: Record<string, string> }> {
    const container = this.pod.spec?.containers?.[0];
    if (!container) throw new ContainerConfigError('the pod has no container');
    const mounts = await this.mountVolumes(container);
    const sources: EnvSources = {
      secret: (ns, name) => this.read(() => this.o.core.readNamespacedSecret({ name, namespace: ns })),
      configMap: (ns, name) => this.read(() => this.o.core.readNamespacedConfigMap({ name, namespace: ns })),
    };
    const raw = await containerEnv(this.pod, container, this.ip, sources);
    const env = hostEnv(raw, {
      ip: this.ip,
      mounts,
      ports: container.ports ?? [],
      hostOf: (ns, pod) => this.o.addresses.of(ns, pod),
    });
    const args = (container.args ?? []).map((a) => expandVars(a, (n) => raw.get(n)));
    return { args, env };
  }

  private async read<T>(get: () => Promise<T>): Promise<T | null> {
    try {
      return await get();
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  private async mountVolumes(container: V1Container): Promise<HostMount[]> {
    const root = this.o.root;
    const mounts: HostMount[] = [];
    const volumes = new Map((this.pod.spec?.volumes ?? []).map((v) => [v.name, v]));
    for (const m of container.volumeMounts ?? []) {
      const volume = volumes.get(m.name);
      if (!volume) throw new ContainerConfigError(`volume mount ${m.name} names no volume of the pod`);
      let dir: string;
      if (volume.persistentVolumeClaim) {
        const claim = volume.persistentVolumeClaim.claimName;
        const pvc = await this.read(() =>
          this.o.core.readNamespacedPersistentVolumeClaim({ name: claim, namespace: this.namespace }),
        );
        if (!pvc || pvc.metadata?.deletionTimestamp) {
          throw new ContainerConfigError(`persistentvolumeclaim "${claim}" not found`, 'ContainerCreating');
        }
        if (this.kubelet.claimBeingWiped(this.namespace, claim)) {
          throw new ContainerConfigError(
            `the volume of an earlier "${claim}" is being removed`,
            'ContainerCreating',
          );
        }
        this.kubelet.claimSeen(this.namespace, claim, pvc.metadata?.uid ?? '');
        dir = pvcDir(root, this.namespace, claim);
        this.mountedClaims.add(dir);
        mkdirSync(dir, { recursive: true });
      } else if (volume.secret) {
        const secretName = volume.secret.secretName ?? '';
        const secret = await this.read(() =>
          this.o.core.readNamespacedSecret({ name: secretName, namespace: this.namespace }),
        );
        if (!secret && !volume.secret.optional) {
          throw new ContainerConfigError(`secret "${secretName}" not found`, 'ContainerCreating');
        }
        dir = join(root, 'secrets', this.namespace, this.name, volume.name);
        writeFiles(dir, secretFiles(secret), volume.secret.items, volume.secret.defaultMode ?? 0o644);
      } else if (volume.configMap) {
        const cmName = volume.configMap.name ?? '';
        const cm = await this.read(() =>
          this.o.core.readNamespacedConfigMap({ name: cmName, namespace: this.namespace }),
        );
        if (!cm && !volume.configMap.optional) {
          throw new ContainerConfigError(`configmap "${cmName}" not found`, 'ContainerCreating');
        }
        dir = join(root, 'configmaps', this.namespace, this.name, volume.name);
        writeFiles(dir, configMapFiles(cm), volume.configMap.items, volume.configMap.defaultMode ?? 0o644);
      } else if (volume.emptyDir) {
        dir = join(root, 'emptydir', this.namespace, this.name, volume.name);
        mkdirSync(dir, { recursive: true });
      } else if (volume.hostPath) {
        dir = volume.hostPath.path;
      } else {
        throw new ContainerConfigError(
          `volume ${volume.name}: this volume type is not supported by the pod runner`,
        );
      }
      const hostPath = m.subPath ? join(dir, m.subPath) : dir;
      if (m.subPath) mkdirSync(hostPath, { recursive: true });
      mounts.push({ mountPath: m.mountPath, hostPath });
    }
    return mounts;
  }

  private start(prepared: { args: string[]; env: Record<string, string> }) {
    const { command } = this.o;
    const logFile = podLogFile(this.o.root, this.namespace, this.name);
    mkdirSync(join(this.o.root, 'logs', this.namespace), { recursive: true });
    const env: Record<string, string> = {
      // What a container would have without the image's own: a PATH, a HOME, its hostname.
      ...pick(process.env, ['PATH', 'HOME', 'LANG', 'TZ', 'TMPDIR']),
      HOSTNAME: this.pod.spec?.hostname ?? this.name,
      ...prepared.env,
    };
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      writeSync(
        fd,
        `--- ${new Date().toISOString()} pod-runner: starting ${this.key} on ${this.ip} ` +
          `(restart ${this.restartCount})\n`,
      );
      child = spawn(command.execPath, [...command.args, ...prepared.args], {
        cwd: command.cwd ?? process.cwd(),
        env,
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    track(child);
    this.o.addresses.setProcess(this.ip, child.pid);
    child.once('exit', () => this.o.addresses.setProcess(this.ip, undefined));
    this.child = child;
    this.startedAt = new Date();
    this.waiting = null;
    this.ready = false;
    this.probeFailures = 0;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (err) => {
        this.o.log(`pod ${this.key}: spawn failed: ${err.message}`);
        if (child.pid === undefined) resolve({ code: 127, signal: null });
      });
    });
    this.exited = exited;
    this.o.log(`pod ${this.key}: started pid ${child.pid} on ${this.ip} (restart ${this.restartCount})`);
    this.startProbe();
    return exited;
  }

  private startProbe(): void {
    const container = this.pod.spec?.containers?.[0];
    const probe = container?.readinessProbe;
    if (!probe) {
      // No readiness probe: ready as soon as it runs.
      this.ready = true;
      return;
    }
    const tick = async () => {
      if (this.probing || !this.child) return;
      this.probing = true;
      try {
        const ok = await runProbe(probe, this.ip, container);
        if (!this.child) return;
        const threshold = probe.failureThreshold ?? 3;
        this.probeFailures = ok ? 0 : this.probeFailures + 1;
        const ready = ok ? true : this.ready && this.probeFailures < threshold;
        if (ready !== this.ready) {
          this.ready = ready;
          this.o.log(`pod ${this.key}: ${ready ? 'ready' : 'not ready'}`);
          await this.writeStatus();
        }
      } finally {
        this.probing = false;
      }
    };
    this.probeTimer = setInterval(() => void tick(), this.o.probePeriodMs);
    this.probeTimer.unref();
  }

  private stopProbe(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private status(): V1PodStatus {
    const running = this.child !== null && this.finalPhase === null;
    const phase = this.finalPhase ?? (running || this.restartCount > 0 ? 'Running' : 'Pending');
    const condition = (type: string, ok: boolean): V1PodCondition => {
      const status = ok ? 'True' : 'False';
      const previous = this.lastConditions.get(type);
      const c: V1PodCondition =
        previous?.status === status ? previous : { type, status, lastTransitionTime: new Date() };
      this.lastConditions.set(type, c);
      return c;
    };
    const container = this.pod.spec?.containers?.[0];
    let state: V1ContainerState;
    if (running && this.startedAt) state = { running: { startedAt: this.startedAt } };
    else if (this.finalPhase && this.lastTerminated) state = { terminated: this.lastTerminated };
    else state = { waiting: this.waiting ?? { reason: 'ContainerCreating' } };
    return {
      phase,
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      podIP: this.ip,
      podIPs: [{ ip: this.ip }],
      startTime: this.podStartTime,
      qosClass: 'BestEffort',
      conditions: [
        condition('PodScheduled', true),
        condition('Initialized', true),
        condition('ContainersReady', running && this.ready),
        condition('Ready', running && this.ready),
      ],
      containerStatuses: container
        ? [
            {
              name: container.name,
              image: container.image ?? '',
              imageID: '',
              ...(this.child?.pid ? { containerID: `pod-runner://${this.child.pid}` } : {}),
              ready: running && this.ready,
              started: running,
              restartCount: this.restartCount,
              state,
              ...(this.lastTerminated && !this.finalPhase
                ? { lastState: { terminated: this.lastTerminated } }
                : {}),
            },
          ]
        : [],
    };
  }

  /** Writes the status when it changed (one write at a time; the newest status wins). */
  private writeStatus(): Promise<void> {
    if (this.writing) {
      this.writeAgain = true;
      return this.writing;
    }
    this.writing = (async () => {
      do {
        this.writeAgain = false;
        await this.writeStatusOnce();
      } while (this.writeAgain);
    })().finally(() => {
      this.writing = null;
    });
    return this.writing;
  }

  private async writeStatusOnce(): Promise<void> {
    if (this.finishing && this.terminating && !this.child) return;
    const status = this.status();
    const text = JSON.stringify(status);
    if (text === this.lastWritten) return;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const current = await this.o.core.readNamespacedPod({ name: this.name, namespace: this.namespace });
        if (this.uid && current.metadata?.uid !== this.uid) return;
        await this.o.core.replaceNamespacedPodStatus({
          name: this.name,
          namespace: this.namespace,
          body: { ...current, status },
        });
        this.lastWritten = text;
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (isConflict(err)) continue;
        this.o.log(`pod ${this.key}: status update failed: ${errText(err)}`);
        return;
      }
    }
  }
}

function pick(env: NodeJS.ProcessEnv, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const v = env[n];
    if (v !== undefined) out[n] = v;
  }
  return out;
}

function secretFiles(secret: V1Secret | null): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(secret?.data ?? {})) files.set(k, Buffer.from(v, 'base64'));
  for (const [k, v] of Object.entries(secret?.stringData ?? {})) files.set(k, Buffer.from(v, 'utf8'));
  return files;
}

function configMapFiles(cm: V1ConfigMap | null): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(cm?.data ?? {})) files.set(k, Buffer.from(v, 'utf8'));
  for (const [k, v] of Object.entries(cm?.binaryData ?? {})) files.set(k, Buffer.from(v, 'base64'));
  return files;
}

/** The volume's files, written afresh (all keys, or only `items` at their paths). */
function writeFiles(
  dir: string,
  files: Map<string, Buffer>,
  items: { key: string; path: string; mode?: number }[] | undefined,
  defaultMode: number,
): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const entries = items
    ? items.flatMap((i) => {
        const data = files.get(i.key);
        if (!data)
          throw new ContainerConfigError(`key ${i.key} not found for volume ${dir}`, 'ContainerCreating');
        return [{ path: i.path, data, mode: i.mode ?? defaultMode }];
      })
    : [...files].map(([path, data]) => ({ path, data, mode: defaultMode }));
  for (const e of entries) {
    const file = join(dir, e.path);
    mkdirSync(join(file, '..'), { recursive: true });
    // The owner (this user) must be able to read it; the group/other bits are kept.
    writeFileSync(file, e.data, { mode: e.mode | 0o400 });
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return (signal && constants.signals[signal]) || 0;
}

/** One probe run: true if it passed. HTTPS probes do not verify the certificate (as the kubelet). */
export function runProbe(probe: V1Probe, ip: string, container: V1Container | undefined): Promise<boolean> {
  const timeoutMs = Math.min((probe.timeoutSeconds ?? 1) * 1000, 1000);
  const portOf = (port: number | string | undefined): number | undefined => {
    if (typeof port === 'number') return port;
    if (port === undefined) return undefined;
    if (/^\d+$/.test(port)) return Number(port);
    return container?.ports?.find((p) => p.name === port)?.containerPort;
  };
  if (probe.httpGet) {
    const get = probe.httpGet;
    const port = portOf(get.port as number | string);
    if (!port) return Promise.resolve(false);
    const https = get.scheme?.toUpperCase() === 'HTTPS';
    return new Promise((resolve) => {
      const headers = Object.fromEntries((get.httpHeaders ?? []).map((h) => [h.name, h.value]));
      const req = (https ? httpsRequest : httpRequest)(
        {
          host: get.host ?? ip,
          port,
          path: get.path ?? '/',
          method: 'GET',
          headers,
          timeout: timeoutMs,
          agent: false,
          ...(https ? { rejectUnauthorized: false } : {}),
        },
        (res) => {
          res.resume();
          const code = res.statusCode ?? 0;
          resolve(code >= 200 && code < 400);
        },
      );
      req.on('timeout', () => req.destroy(new Error('probe timed out')));
      req.on('error', () => resolve(false));
      req.end();
    });
  }
  if (probe.tcpSocket) {
    const port = portOf(probe.tcpSocket.port as number | string);
    if (!port) return Promise.resolve(false);
    return new Promise((resolve) => {
      const socket = connect({ host: probe.tcpSocket?.host ?? ip, port, timeout: timeoutMs });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(false));
    });
  }
  // exec and gRPC probes are not run: they count as passing.
  return Promise.resolve(true);
}
