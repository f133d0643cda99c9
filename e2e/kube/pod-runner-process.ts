// Pod processes of the pod runner's kubelet (pod-runner-kubelet.ts): one PodWorker per pod starts
// its process, restarts it with back-off, runs its readiness probe and writes its status.

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { V1Pod, V1PodCondition, V1PodStatus } from '@kubernetes/client-node';
import {
  ContainerConfigError,
  containerEnv,
  type EnvSources,
  expandVars,
  hostEnv,
} from './pod-runner-env.js';
import type { Kubelet, KubeletOptions, PodProcessInfo } from './pod-runner-kubelet.js';
import { podStatus, runProbe, type Terminated, type Waiting } from './pod-runner-status.js';
import { errText, isConflict, isNotFound, mountVolumes, readIfExists } from './pod-runner-volumes.js';

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

export function podLogFile(root: string, namespace: string, pod: string): string {
  return join(root, 'logs', namespace, `${pod}.log`);
}

/** One pod: its process, restarts, probe and status. */
export class PodWorker {
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
    const mounts = await mountVolumes(
      {
        core: this.o.core,
        root: this.o.root,
        namespace: this.namespace,
        name: this.name,
        pod: this.pod,
        claims: this.kubelet,
        mountedClaims: this.mountedClaims,
      },
      container,
    );
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

  private read<T>(get: () => Promise<T>): Promise<T | null> {
    return readIfExists(get);
  }

  private start(prepared: { args: string[]; env: Record<string, string> }) {
    const image = this.pod.spec?.containers?.[0]?.image;
    const command = (image !== undefined ? this.o.images?.[image] : undefined) ?? this.o.command;
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
    return podStatus(
      {
        pod: this.pod,
        ip: this.ip,
        child: this.child,
        startedAt: this.startedAt,
        podStartTime: this.podStartTime,
        restartCount: this.restartCount,
        ready: this.ready,
        waiting: this.waiting,
        lastTerminated: this.lastTerminated,
        finalPhase: this.finalPhase,
      },
      this.lastConditions,
    );
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

function signalNumber(signal: NodeJS.Signals | null): number {
  return (signal && constants.signals[signal]) || 0;
}
