// One container of a pod, over its whole life: "pull" (image lookup), create (environment,
// command, mounts, user), start, probe, and restart by the pod's restartPolicy with the crash-loop
// back-off. Its ContainerView is what the pod's status reports; every change calls onChange().

import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { type BackoffOptions, CrashBackoff } from './backoff.js';
import {
  type ContainerProcess,
  type ExitStatus,
  type Mount,
  type RunAs,
  startContainer,
} from './container.js';
import { ContainerConfigError } from './env.js';
import type { ImageSpec } from './images.js';
import { ContainerProbes, type ProbeState } from './probe-state.js';
import { type ProbeTarget, runProbe, type SandboxAgent } from './probes.js';
import type { ContainerView, Terminated } from './status.js';

/** What the pod worker prepares for each start of the container. */
export interface Prepared {
  argv: string[];
  env: Record<string, string>;
  mounts: Mount[];
  runAs: RunAs;
  readOnlyRoot: boolean;
  workingDir: string;
}

export interface RunnerContext {
  podKey: string;
  pod(): V1Pod;
  images: Readonly<Record<string, ImageSpec>>;
  execPrefix: string[];
  podIP: string;
  hostname: string;
  agent: SandboxAgent;
  logFile: string;
  backoff: BackoffOptions;
  /** Builds the environment, argv, mounts and user; throws ContainerConfigError to wait. */
  prepare(container: V1Container, image: ImageSpec): Promise<Prepared>;
  onChange(): void;
  event(type: 'Normal' | 'Warning', reason: string, message: string): void;
  log(line: string): void;
}

/** A sleep that stop() cuts short. */
class Sleeper {
  private wakers = new Set<() => void>();
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }
  wakeAll(): void {
    for (const w of [...this.wakers]) w();
  }
}

export class ContainerRunner {
  readonly view: ContainerView;
  private proc: ContainerProcess | null = null;
  private prepared: Prepared | null = null;
  private probes: ContainerProbes | null = null;
  private readonly crash: CrashBackoff;
  private readonly pull: CrashBackoff;
  private readonly sleeper = new Sleeper();
  private stopping = false;
  private killReason: string | null = null;
  private loop: Promise<void> | null = null;

  constructor(
    private container: V1Container,
    private readonly ctx: RunnerContext,
    /** Init containers run to completion: success ends them, whatever the restartPolicy. */
    private readonly init = false,
  ) {
    this.view = {
      name: container.name,
      image: container.image ?? '',
      state: { kind: 'waiting', reason: init ? 'PodInitializing' : 'ContainerCreating' },
      restartCount: 0,
      ready: false,
      started: false,
    };
    this.crash = new CrashBackoff(ctx.backoff);
    this.pull = new CrashBackoff(ctx.backoff);
  }

  /** Runs until the container is done for good (or stop()); resolves with the last exit. */
  run(): Promise<void> {
    this.loop ??= this.runLoop();
    return this.loop;
  }

  pid(): number | undefined {
    return this.proc?.pid;
  }

  /** SIGKILLs the running process, as a crash would (it restarts by the pod's restartPolicy). */
  async sigkill(): Promise<void> {
    const proc = this.proc;
    if (!proc) throw new Error(`container ${this.view.name} of ${this.ctx.podKey} is not running`);
    proc.signal('SIGKILL');
    await proc.exited;
  }

  /** Whether the container has finished for good (terminated and not restarting). */
  done(): boolean {
    return this.view.state.kind === 'terminated';
  }

  /** A new spec for the container (only the image may change on a live pod: restart on it). */
  update(container: V1Container): void {
    const imageChanged = container.image !== this.container.image;
    this.container = container;
    if (imageChanged && this.proc) {
      this.ctx.event(
        'Normal',
        'Killing',
        `Container ${container.name} definition changed, will be restarted`,
      );
      void this.killProcess('image changed', this.graceMs());
    }
  }

  /**
   * Stops the container for good: SIGTERM, SIGKILL after graceMs (0: at once). Resolves once
   * the process has exited and the loop has ended.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.sleeper.wakeAll();
    if (this.proc) await this.killProcess('stopping', graceMs);
    await this.loop;
  }

  private graceMs(): number {
    return (this.ctx.pod().spec?.terminationGracePeriodSeconds ?? 30) * 1000;
  }

  private async killProcess(reason: string, graceMs: number): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.killReason ??= reason;
    if (graceMs <= 0) proc.signal('SIGKILL');
    else {
      proc.signal('SIGTERM');
      const timer = setTimeout(() => proc.signal('SIGKILL'), graceMs);
      await proc.exited;
      clearTimeout(timer);
    }
    await proc.exited;
  }

  private set(state: ContainerView['state']): void {
    this.view.state = state;
    this.ctx.onChange();
  }

  private async runLoop(): Promise<void> {
    const name = this.container.name;
    while (!this.stopping) {
      // "Pull": the image must be known to this kubelet.
      const imageName = this.container.image ?? '';
      const image = this.ctx.images[imageName];
      if (!image) {
        const now = Date.now();
        const delay = this.pull.delayAfterExit(now) || this.ctx.backoff.initialMs;
        this.pull.restarted(now, now);
        this.set({
          kind: 'waiting',
          reason: 'ErrImagePull',
          message: `failed to pull and unpack image "${imageName}": not found`,
        });
        this.ctx.event('Warning', 'Failed', `Failed to pull image "${imageName}": not found`);
        await this.sleeper.sleep(Math.min(1000, delay));
        if (this.stopping) break;
        this.set({
          kind: 'waiting',
          reason: 'ImagePullBackOff',
          message: `Back-off pulling image "${imageName}"`,
        });
        await this.sleeper.sleep(Math.max(0, delay - 1000));
        continue;
      }
      let prepared: Prepared;
      try {
        prepared = await this.ctx.prepare(this.container, image);
      } catch (err) {
        const reason = err instanceof ContainerConfigError ? err.reason : 'CreateContainerError';
        const message = err instanceof Error ? err.message : String(err);
        const s = this.view.state;
        if (!(s.kind === 'waiting' && s.message === message)) {
          this.ctx.event('Warning', 'Failed', `Error: ${message}`);
          this.set({ kind: 'waiting', reason, message });
        }
        await this.sleeper.sleep(1000);
        continue;
      }
      if (this.stopping) break;
      let exit: ExitStatus;
      try {
        exit = await this.runOnce(prepared);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.ctx.event('Warning', 'Failed', `Error: ${message}`);
        this.set({ kind: 'waiting', reason: 'RunContainerError', message });
        await this.sleeper.sleep(this.ctx.backoff.initialMs);
        continue;
      }
      if (this.stopping) break;
      // Restart by policy (init containers: only after a failure, unless the pod never restarts).
      const policy = this.ctx.pod().spec?.restartPolicy ?? 'Always';
      const restart = this.init
        ? exit.exitCode !== 0 && policy !== 'Never'
        : policy === 'Always' || (policy === 'OnFailure' && exit.exitCode !== 0);
      if (!restart && this.killReason !== 'image changed') {
        this.set({ kind: 'terminated', ...this.view.lastTerminated! });
        return;
      }
      const finished = exit.finishedAt.getTime();
      const delay = this.killReason === 'image changed' ? 0 : this.crash.delayAfterExit(finished);
      this.killReason = null;
      const wait = finished + delay - Date.now();
      if (wait > 0) {
        const msg = `back-off ${Math.round(delay / 1000)}s restarting failed container=${name} pod=${this.ctx.podKey}`;
        this.ctx.event('Warning', 'BackOff', `Back-off restarting failed container ${name}`);
        this.set({ kind: 'waiting', reason: 'CrashLoopBackOff', message: msg });
        await this.sleeper.sleep(wait);
      }
      if (this.stopping) break;
      this.crash.restarted(finished, Date.now());
      this.view.restartCount++;
    }
  }

  /** One process: start, probe until it exits, record its termination. */
  private async runOnce(prepared: Prepared): Promise<ExitStatus> {
    const c = this.container;
    this.prepared = prepared;
    const banner =
      `--- ${new Date().toISOString()} kubelet: starting container ${c.name} of ${this.ctx.podKey}` +
      ` (restart ${this.view.restartCount}): ${prepared.argv.join(' ')}`;
    const proc = startContainer({
      execPrefix: this.ctx.execPrefix,
      hostname: this.ctx.hostname,
      mounts: prepared.mounts,
      runAs: prepared.runAs,
      readOnlyRoot: prepared.readOnlyRoot,
      workingDir: prepared.workingDir,
      argv: prepared.argv,
      env: prepared.env,
      logFile: this.ctx.logFile,
      banner,
    });
    this.proc = proc;
    const containerID = `conflux://${this.ctx.podKey}/${c.name}/${proc.pid}`;
    this.view.containerID = containerID;
    this.view.ready = false;
    this.view.started = false;
    this.probes = new ContainerProbes(
      {
        ...(c.startupProbe ? { startup: c.startupProbe } : {}),
        ...(c.readinessProbe ? { readiness: c.readinessProbe } : {}),
        ...(c.livenessProbe ? { liveness: c.livenessProbe } : {}),
      },
      proc.startedAt.getTime(),
    );
    this.applyVerdict();
    this.set({ kind: 'running', startedAt: proc.startedAt });
    this.ctx.event('Normal', 'Started', `Started container ${c.name}`);
    this.ctx.log(`${this.ctx.podKey}/${c.name}: started pid ${proc.pid}`);
    const probing = this.probeLoop(proc);
    const exit = await proc.exited;
    this.proc = null;
    await probing;
    const reason = exit.exitCode === 0 ? 'Completed' : 'Error';
    const t: Terminated = {
      exitCode: exit.exitCode,
      ...(exit.signal ? { signal: signalNumber(exit.signal) } : {}),
      reason,
      startedAt: proc.startedAt,
      finishedAt: exit.finishedAt,
      containerID,
    };
    this.view.lastTerminated = t;
    this.view.ready = false;
    this.view.started = false;
    this.ctx.log(
      `${this.ctx.podKey}/${c.name}: exited with ${exit.exitCode}${exit.signal ? ` (${exit.signal})` : ''}`,
    );
    this.ctx.onChange();
    return exit;
  }

  private applyVerdict(): void {
    const v = this.probes?.verdict();
    if (!v) return;
    if (v.started !== this.view.started || v.ready !== this.view.ready) {
      this.view.started = v.started;
      this.view.ready = v.ready;
      this.ctx.onChange();
    }
  }

  private async probeLoop(proc: ContainerProcess): Promise<void> {
    const probes = this.probes!;
    const specOf = (p: ProbeState) =>
      p.kind === 'startup'
        ? this.container.startupProbe!
        : p.kind === 'readiness'
          ? this.container.readinessProbe!
          : this.container.livenessProbe!;
    let exited = false;
    void proc.exited.then(() => {
      exited = true;
      this.sleeper.wakeAll();
    });
    while (!exited && !this.stopping) {
      const active = probes.active();
      if (active.length === 0) {
        await proc.exited;
        return;
      }
      const next = active.reduce((a, b) => (a.nextRunAt() <= b.nextRunAt() ? a : b));
      const wait = next.nextRunAt() - Date.now();
      if (wait > 0) {
        await this.sleeper.sleep(wait);
        continue;
      }
      const target: ProbeTarget = {
        agent: this.ctx.agent,
        podIP: this.ctx.podIP,
        container: this.container,
        pid: proc.pid,
        runAs: this.prepared!.runAs,
        env: this.prepared!.env,
        workingDir: this.prepared!.workingDir,
      };
      const result = await runProbe(specOf(next), target, next.timing.timeoutMs).catch((err: unknown) => ({
        ok: false,
        message: err instanceof Error ? err.message : String(err),
      }));
      if (exited || this.stopping) return;
      const verdict = probes.observe(next, result.ok, Date.now());
      if (!result.ok) {
        const kind = next.kind[0]!.toUpperCase() + next.kind.slice(1);
        this.ctx.event('Warning', 'Unhealthy', `${kind} probe failed: ${result.message}`);
      }
      this.applyVerdict();
      if (verdict.kill) {
        this.ctx.event('Normal', 'Killing', `Container ${this.container.name} ${verdict.kill.slice(10)}`);
        this.ctx.log(`${this.ctx.podKey}/${this.container.name}: ${verdict.kill}`);
        const spec = specOf(next);
        const grace =
          (spec.terminationGracePeriodSeconds ?? this.ctx.pod().spec?.terminationGracePeriodSeconds ?? 30) *
          1000;
        await this.killProcess(verdict.kill, grace);
        return;
      }
    }
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  const table: Record<string, number> = {
    SIGKILL: 9,
    SIGTERM: 15,
    SIGINT: 2,
    SIGHUP: 1,
    SIGQUIT: 3,
    SIGABRT: 6,
  };
  return table[signal] ?? 0;
}
