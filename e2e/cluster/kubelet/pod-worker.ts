// One pod on one node, from admission to teardown, in the kubelet's order: volumes (waiting in
// ContainerCreating while a PVC is unbound or a Secret missing), sandbox (network namespace and
// IP from the pod network, plus the sandbox agent that runs probes there), init containers one
// after another, then every container (container-runner.ts). Volumes are resynced while it runs.
// Status goes to pods/status as a strategic merge patch with the pod's uid as precondition.
//
// Ends in one of three ways:
// - terminate(grace): the pod is being deleted: SIGTERM, SIGKILL after the grace period, a last
//   status, sandbox and volumes removed (the node agent then deletes the object);
// - kill(): the machine "died" (stopNode) or the object is gone: SIGKILL, sandbox removed, no
//   more API calls;
// - every container finished for good (restartPolicy): sandbox removed, the object stays
//   Succeeded/Failed.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CoreV1Api, V1Container, V1Pod, V1PodCondition } from '@kubernetes/client-node';
import type { BackoffOptions } from './backoff.js';
import { ContainerRunner, type Prepared, type RunnerContext } from './container-runner.js';
import { ContainerConfigError, containerEnv, type EnvSources, type PodAddresses } from './env.js';
import { containerArgv, DEFAULT_PATH, type ImageSpec } from './images.js';
import { errText, isConflict, isNotFound, STRATEGIC_MERGE } from './kube.js';
import { SandboxAgent } from './probes.js';
import { type PodView, podPhase, podStatus } from './status.js';
import { PodVolumes, type VolumeApi, VolumeNotReady } from './volumes.js';

/** The part of the pod network (e2e/cluster/network/pod-network.ts) the kubelet uses. */
export interface PodNetworkApi {
  hostAddress: string;
  setupPod(pod: {
    namespace: string;
    name: string;
    uid: string;
    hostname: string;
    podCidr: string;
    subdomain?: string;
  }): Promise<{ ip: string; execPrefix: string[] }>;
  teardownPod(uid: string): Promise<void>;
}

export interface PodWorkerContext {
  nodeName: string;
  stateDir: string;
  network: PodNetworkApi;
  podCidr: string;
  images: Readonly<Record<string, ImageSpec>>;
  core: CoreV1Api;
  volumeApi: VolumeApi;
  envSources: EnvSources;
  allocatable: Record<string, string>;
  backoff: BackoffOptions;
  volumeResyncMs: number;
  logFile(namespace: string, pod: string, container: string): string;
  log(line: string): void;
  event(pod: V1Pod, type: 'Normal' | 'Warning', reason: string, message: string): void;
}

export function podHostname(pod: V1Pod): string {
  return (pod.spec?.hostname || pod.metadata?.name || 'pod').slice(0, 63);
}

export class PodWorker {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly key: string;
  pod: V1Pod;
  /** Milliseconds from the worker's start to every container running and ready (once). */
  readyAfterMs: number | null = null;

  private readonly createdAt = Date.now();
  private readonly startTime = new Date();
  private readonly volumes: PodVolumes;
  private readonly init: ContainerRunner[];
  private readonly containers: ContainerRunner[];
  private sandbox: { ip: string; execPrefix: string[] } | null = null;
  private agent: SandboxAgent | null = null;
  private initialized: boolean;
  private finalPhase: 'Succeeded' | 'Failed' | undefined;
  private stopped = false;
  /** No more API calls (the machine died, or the object is gone). */
  private silent = false;
  private ended: Promise<void> | null = null;
  private readonly done: Promise<void>;
  private resyncTimer: NodeJS.Timeout | null = null;
  private resyncing = false;
  private resyncAgain = false;
  private wake: (() => void) | null = null;
  private lastMountError = '';
  // Status writing: one patch at a time, the newest state wins.
  private readonly conditions = new Map<string, V1PodCondition>();
  private writing = false;
  private writeAgain = false;
  private writeTimer: NodeJS.Timeout | null = null;
  private lastWritten = '';
  private idle: Promise<void> = Promise.resolve();

  constructor(
    pod: V1Pod,
    private readonly ctx: PodWorkerContext,
  ) {
    this.pod = pod;
    this.uid = pod.metadata?.uid ?? '';
    this.namespace = pod.metadata?.namespace ?? 'default';
    this.name = pod.metadata?.name ?? '';
    this.key = `${this.namespace}/${this.name}`;
    this.volumes = new PodVolumes(
      { stateDir: ctx.stateDir, api: ctx.volumeApi, allocatable: ctx.allocatable },
      pod,
      this.addresses(),
    );
    const spec = pod.spec;
    this.init = (spec?.initContainers ?? []).map((c) => new ContainerRunner(c, this.runnerContext(c), true));
    this.containers = (spec?.containers ?? []).map((c) => new ContainerRunner(c, this.runnerContext(c)));
    this.initialized = this.init.length === 0;
    if (!this.initialized)
      for (const r of this.containers) r.view.state = { kind: 'waiting', reason: 'PodInitializing' };
    this.done = this.run().catch((err: unknown) =>
      ctx.log(`${this.key}: pod worker failed: ${errText(err)}`),
    );
  }

  /** A newer version of the pod object. */
  update(pod: V1Pod): void {
    if (pod.metadata?.uid !== this.uid) return;
    this.pod = pod;
    this.volumes.update(pod);
    for (const c of pod.spec?.containers ?? [])
      this.containers.find((r) => r.view.name === c.name)?.update(c);
    this.wake?.();
    if (this.resyncTimer) void this.resync();
  }

  /** SIGKILLs a container (default: the first), which then restarts by the restartPolicy. */
  killContainer(name?: string): Promise<void> {
    const r = name ? this.containers.find((c) => c.view.name === name) : this.containers[0];
    if (!r) throw new Error(`${this.key} has no container ${name}`);
    return r.sigkill();
  }

  /** A Secret or ConfigMap it mounts changed: rewrite its volumes now. */
  resyncNow(): void {
    if (this.resyncTimer) void this.resync();
  }

  podIP(): string | undefined {
    return this.sandbox?.ip;
  }

  /** Whether the worker has nothing left to run. */
  finished(): boolean {
    return this.ended !== null || this.finalPhase !== undefined;
  }

  /** The pod is being deleted: stop its containers within `graceMs`, then clean up. */
  terminate(graceMs: number): Promise<void> {
    this.ended ??= this.end(graceMs, false);
    return this.ended;
  }

  /** SIGKILL everything, remove the sandbox, never call the API again. */
  kill(): Promise<void> {
    this.silent = true;
    // Already stopping gracefully: the grace period is over now.
    if (this.ended) for (const r of [...this.init, ...this.containers]) void r.stop(0);
    this.ended ??= this.end(0, true);
    return this.ended;
  }

  private addresses(): PodAddresses {
    return { podIP: this.sandbox?.ip ?? '', hostIP: this.ctx.network.hostAddress };
  }

  private async run(): Promise<void> {
    this.scheduleWrite();
    // 1. Volumes.
    while (!this.stopped) {
      try {
        await this.volumes.setup();
        break;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (message !== this.lastMountError) {
          this.lastMountError = message;
          this.ctx.log(`${this.key}: waiting for volumes: ${message}`);
          this.ctx.event(this.pod, 'Warning', 'FailedMount', `MountVolume.SetUp failed: ${message}`);
          if (!(err instanceof VolumeNotReady)) this.ctx.log(`${this.key}: ${errText(err)}`);
        }
        await this.sleep(1000);
      }
    }
    if (this.stopped) return;
    // 2. Sandbox (retried, as the kubelet retries FailedCreatePodSandBox).
    while (!this.stopped) {
      try {
        await this.createSandbox();
        break;
      } catch (err) {
        this.ctx.log(`${this.key}: creating the sandbox failed: ${errText(err)}`);
        this.ctx.event(
          this.pod,
          'Warning',
          'FailedCreatePodSandBox',
          `Failed to create pod sandbox: ${errText(err)}`,
        );
        await this.teardownSandbox();
        this.sandbox = null;
        await this.sleep(2000);
      }
    }
    if (this.stopped || !this.sandbox) {
      await this.teardownSandbox();
      return;
    }
    this.volumes.update(this.pod, this.addresses());
    this.ctx.log(`${this.key}: sandbox ready, IP ${this.sandbox.ip}`);
    this.scheduleWrite();
    this.resyncTimer = setInterval(() => void this.resync(), this.ctx.volumeResyncMs);
    this.resyncTimer.unref();
    // 3. Init containers, one after another.
    for (const r of this.init) {
      await r.run();
      if (this.stopped) return;
      const s = r.view.state;
      if (s.kind === 'terminated' && s.exitCode !== 0) {
        this.finalPhase = 'Failed';
        this.scheduleWrite();
        await this.finishAll();
        return;
      }
    }
    this.initialized = true;
    for (const r of this.containers) {
      if (r.view.state.kind === 'waiting' && r.view.state.reason === 'PodInitializing') {
        r.view.state = { kind: 'waiting', reason: 'ContainerCreating' };
      }
    }
    this.scheduleWrite();
    // 4. Containers, until every one is done for good.
    await Promise.all(this.containers.map((r) => r.run()));
    if (this.stopped) return;
    const phase = podPhase(this.view());
    this.finalPhase = phase === 'Failed' ? 'Failed' : 'Succeeded';
    this.ctx.log(`${this.key}: all containers finished: ${this.finalPhase}`);
    await this.finishAll();
  }

  private async createSandbox(): Promise<void> {
    if (this.pod.spec?.hostNetwork) this.sandbox = { ip: this.ctx.network.hostAddress, execPrefix: [] };
    else {
      const sb = await this.ctx.network.setupPod({
        namespace: this.namespace,
        name: this.name,
        uid: this.uid,
        hostname: podHostname(this.pod),
        podCidr: this.ctx.podCidr,
        ...(this.pod.spec?.subdomain ? { subdomain: this.pod.spec.subdomain } : {}),
      });
      this.sandbox = { ip: sb.ip, execPrefix: sb.execPrefix };
    }
    this.agent = new SandboxAgent(this.sandbox.execPrefix, (l) => this.ctx.log(`${this.key}: ${l}`));
    // Not awaited: containers start meanwhile, and the first probe waits for the agent.
    void this.agent
      .start()
      .catch((err: unknown) => this.ctx.log(`${this.key}: sandbox agent: ${errText(err)}`));
  }

  /** Containers are done for good: the sandbox goes, the object stays with its final status. */
  private async finishAll(): Promise<void> {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.resyncTimer = null;
    await this.teardownSandbox();
    this.scheduleWrite();
  }

  private async end(graceMs: number, hard: boolean): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.resyncTimer = null;
    const runners = [...this.init, ...this.containers];
    await Promise.all(runners.map((r) => r.stop(hard ? 0 : graceMs)));
    await this.done;
    await this.teardownSandbox();
    if (!hard) {
      // The last status: every container terminated, and the phase they leave.
      for (const r of runners) {
        if (r.view.state.kind !== 'terminated' && r.view.lastTerminated) {
          r.view.state = { kind: 'terminated', ...r.view.lastTerminated };
        }
      }
      const failed = this.containers.some(
        (r) => r.view.state.kind !== 'terminated' || r.view.state.exitCode !== 0,
      );
      this.finalPhase ??= failed ? 'Failed' : 'Succeeded';
      this.scheduleWrite(0);
      await this.flush();
      this.volumes.cleanup();
    }
    this.silent = true;
    this.ctx.log(`${this.key}: stopped${hard ? ' (killed)' : ''}`);
  }

  private async teardownSandbox(): Promise<void> {
    this.agent?.stop();
    this.agent = null;
    if (this.sandbox && !this.pod.spec?.hostNetwork) {
      try {
        await this.ctx.network.teardownPod(this.uid);
      } catch (err) {
        this.ctx.log(`${this.key}: sandbox teardown: ${errText(err)}`);
      }
    }
  }

  /** One resync at a time (an older read must never be written over a newer one). */
  private async resync(): Promise<void> {
    if (this.stopped) return;
    if (this.resyncing) {
      this.resyncAgain = true;
      return;
    }
    this.resyncing = true;
    try {
      do {
        this.resyncAgain = false;
        const errors = await this.volumes.resync();
        for (const e of errors) this.ctx.log(`${this.key}: volume resync: ${e}`);
      } while (this.resyncAgain && !this.stopped);
    } finally {
      this.resyncing = false;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        if (self.wake === done) self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }

  private runnerContext(c: V1Container): RunnerContext {
    // Sandbox-dependent fields are read when the container starts (after the sandbox exists).
    const self = this;
    return {
      podKey: this.key,
      pod: () => this.pod,
      images: this.ctx.images,
      get execPrefix() {
        return self.sandbox?.execPrefix ?? [];
      },
      get podIP() {
        return self.sandbox?.ip ?? '';
      },
      hostname: podHostname(this.pod),
      get agent() {
        return self.agent!;
      },
      logFile: this.ctx.logFile(this.namespace, this.name, c.name),
      backoff: this.ctx.backoff,
      prepare: (container, image) => this.prepare(container, image),
      onChange: () => this.scheduleWrite(),
      event: (type, reason, message) => this.ctx.event(this.pod, type, reason, message),
      log: this.ctx.log,
    };
  }

  private async prepare(container: V1Container, image: ImageSpec): Promise<Prepared> {
    const pod = this.pod;
    const env = await containerEnv({
      pod,
      container,
      addresses: this.addresses(),
      sources: this.ctx.envSources,
      allocatable: this.ctx.allocatable,
    });
    const argv = containerArgv(image, container, env);
    const psc = pod.spec?.securityContext ?? {};
    const sc = container.securityContext ?? {};
    const uid = sc.runAsUser ?? psc.runAsUser ?? image.user?.uid ?? 0;
    const gid = sc.runAsGroup ?? psc.runAsGroup ?? image.user?.gid ?? 0;
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) && uid === 0) {
      throw new ContainerConfigError(
        `container has runAsNonRoot and image will run as root (pod: "${this.name}_${this.namespace}(${this.uid})", container: ${container.name})`,
      );
    }
    const groups = [
      ...(psc.fsGroup !== undefined && psc.fsGroup !== null ? [psc.fsGroup] : []),
      ...(psc.supplementalGroups ?? []),
    ];
    let mounts: Prepared['mounts'];
    try {
      mounts = this.volumes.mountsFor(container);
    } catch (err) {
      throw new ContainerConfigError(
        err instanceof Error ? err.message : String(err),
        'CreateContainerError',
      );
    }
    const logFile = this.ctx.logFile(this.namespace, this.name, container.name);
    mkdirSync(dirname(logFile), { recursive: true });
    const processEnv: Record<string, string> = {
      PATH: image.env?.PATH ?? DEFAULT_PATH,
      HOSTNAME: podHostname(pod),
      HOME: uid === 0 ? '/root' : '/',
      ...(image.env ?? {}),
      ...Object.fromEntries(env),
    };
    return {
      argv,
      env: processEnv,
      // Image files first: containerScript keeps this order among mounts of equal depth, and opens
      // their sources before it mounts any volume.
      mounts: [...(image.files ?? []).map((f) => ({ ...f, readOnly: true })), ...mounts],
      runAs: {
        uid,
        gid,
        groups,
        noNewPrivs: sc.allowPrivilegeEscalation === false,
        dropAllCaps: (sc.capabilities?.drop ?? []).includes('ALL'),
      },
      readOnlyRoot: sc.readOnlyRootFilesystem === true,
      workingDir: container.workingDir ?? image.workingDir ?? '/',
    };
  }

  private view(): PodView {
    return {
      pod: this.pod,
      ...(this.sandbox ? { podIP: this.sandbox.ip } : {}),
      hostIP: this.ctx.network.hostAddress,
      startTime: this.startTime,
      sandboxReady: this.sandbox !== null && this.agent !== null,
      initialized: this.initialized,
      init: this.init.map((r) => r.view),
      containers: this.containers.map((r) => r.view),
      ...(this.finalPhase ? { finalPhase: this.finalPhase } : {}),
    };
  }

  /** Coalesces status writes (a burst of changes becomes one patch). */
  private scheduleWrite(delayMs = 50): void {
    if (this.silent) return;
    if (this.writeTimer) return;
    this.writeTimer = setTimeout(() => {
      this.writeTimer = null;
      this.idle = this.write();
    }, delayMs);
  }

  private async flush(): Promise<void> {
    if (this.writeTimer) {
      clearTimeout(this.writeTimer);
      this.writeTimer = null;
      this.idle = this.write();
    }
    await this.idle;
  }

  private async write(): Promise<void> {
    if (this.writing) {
      this.writeAgain = true;
      return;
    }
    this.writing = true;
    try {
      do {
        this.writeAgain = false;
        if (this.silent) return;
        const view = this.view();
        if (
          this.readyAfterMs === null &&
          view.containers.length > 0 &&
          view.containers.every((c) => c.ready && c.state.kind === 'running')
        ) {
          this.readyAfterMs = Date.now() - this.createdAt;
          this.ctx.log(`${this.key}: ready ${this.readyAfterMs} ms after the kubelet saw it`);
        }
        const status = podStatus(view, this.conditions);
        const text = JSON.stringify(status, (k, v) => (k === 'lastTransitionTime' ? undefined : v));
        if (text === this.lastWritten) continue;
        try {
          await this.ctx.core.patchNamespacedPodStatus(
            { name: this.name, namespace: this.namespace, body: { metadata: { uid: this.uid }, status } },
            STRATEGIC_MERGE,
          );
          this.lastWritten = text;
        } catch (err) {
          if (isNotFound(err) || isConflict(err)) return;
          this.ctx.log(`${this.key}: status update failed: ${errText(err)}`);
          // Try again shortly: the status must not stay behind.
          setTimeout(() => this.scheduleWrite(), 1000).unref();
        }
      } while (this.writeAgain);
    } finally {
      this.writing = false;
    }
  }
}
