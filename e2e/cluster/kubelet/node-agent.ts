// One Kubernetes Node: registration, readiness, heartbeats, and the pods bound to it. It talks to
// the API server with the node's own credentials (system:node:<name> in system:nodes), so the
// Node authorizer and NodeRestriction admission limit it exactly as they limit a kubelet.
//
//   start(): create (or adopt) the Node -> wait for spec.podCIDR (kube-controller-manager's
//            node IPAM) -> Ready=True -> Lease renewals every leaseMs in kube-node-lease and a
//            status patch every statusMs -> watch pods with spec.nodeName=<name>.
//   stop(): the machine dies: heartbeats stop, every pod process is SIGKILLed and its sandbox
//           removed, pod objects are left as they are (the node lifecycle controller marks the
//           Node NotReady/unreachable and evicts, as in a real cluster).

import { randomUUID } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  ListWatch,
  type V1Lease,
  V1MicroTime,
  type V1Node,
  type V1NodeCondition,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import type { BackoffOptions } from './backoff.js';
import type { EnvSources } from './env.js';
import type { ImageSpec } from './images.js';
import { errText, isConflict, isNotFound, readIfExists, STRATEGIC_MERGE, sleep } from './kube.js';
import { ObjectWatches, volumeRefs } from './object-watches.js';
import { type PodNetworkApi, PodWorker, type PodWorkerContext } from './pod-worker.js';
import type { VolumeApi } from './volumes.js';

export interface NodeAgentOptions {
  name: string;
  kubeConfig: KubeConfig;
  network: PodNetworkApi;
  stateDir: string;
  images: Readonly<Record<string, ImageSpec>>;
  backoff: BackoffOptions;
  volumeResyncMs: number;
  leaseMs: number;
  leaseDurationSeconds: number;
  statusMs: number;
  capacity: { cpu: string; memory: string; pods: string };
  labels: Record<string, string>;
  kubeletVersion: string;
  logFile(namespace: string, pod: string, container: string): string;
  log(line: string): void;
}

const LEASE_NS = 'kube-node-lease';

export function defaultCapacity(): { cpu: string; memory: string; pods: string } {
  return { cpu: String(cpus().length), memory: `${Math.floor(totalmem() / 1024)}Ki`, pods: '110' };
}

export class NodeAgent {
  readonly name: string;
  readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly workers = new Map<string, PodWorker>();
  /** uids whose object deletion (grace 0) this agent has sent or is about to. */
  private readonly deleting = new Set<string>();
  private informer: ListWatch<V1Pod> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private running = false;
  private podCidr = '';
  private lease: V1Lease | null = null;
  private readonly conditions = new Map<string, V1NodeCondition>();
  private readonly bootID = randomUUID();
  private lastEvent = new Map<string, string>();
  private objects: ObjectWatches | null = null;
  private readonly firstContainers = new Map<string, string>();

  constructor(private readonly o: NodeAgentOptions) {
    this.name = o.name;
    this.core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.coordination = o.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  /** The first container of the last pod of that name admitted here (for its log file). */
  firstContainer(namespace: string, name: string): string | undefined {
    return this.firstContainers.get(`${namespace}/${name}`);
  }

  isRunning(): boolean {
    return this.running;
  }

  /** Pods this agent runs, by uid. */
  pods(): PodWorker[] {
    return [...this.workers.values()];
  }

  async start(timeoutMs = 60_000): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.conditions.clear();
    this.lease = null;
    await this.register();
    this.podCidr = await this.waitForPodCidr(timeoutMs);
    await this.patchStatus(true);
    await this.renewLease();
    this.timers.push(
      setInterval(() => void this.renewLease(), this.o.leaseMs),
      setInterval(() => void this.patchStatus(true), this.o.statusMs),
    );
    for (const t of this.timers) t.unref();
    this.objects = new ObjectWatches(
      this.o.kubeConfig,
      this.core,
      (ref) => {
        for (const w of this.workers.values()) {
          if (
            volumeRefs(w.pod).some(
              (r) => r.kind === ref.kind && r.namespace === ref.namespace && r.name === ref.name,
            )
          ) {
            w.resyncNow();
          }
        }
      },
      this.o.log,
    );
    this.startInformer();
    this.o.log(`node ${this.name}: Ready (podCIDR ${this.podCidr})`);
  }

  /** The machine dies: no more heartbeats, every pod process killed, sandboxes removed. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const informer = this.informer;
    this.informer = null;
    await informer?.stop();
    await this.objects?.stop();
    this.objects = null;
    await Promise.all([...this.workers.values()].map((w) => w.kill()));
    this.workers.clear();
    this.deleting.clear();
    this.o.log(`node ${this.name}: stopped`);
  }

  // --- Node object ---------------------------------------------------------------------------

  private async register(): Promise<void> {
    const body: V1Node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: this.name,
        labels: {
          'kubernetes.io/hostname': this.name,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': process.arch === 'arm64' ? 'arm64' : 'amd64',
          'beta.kubernetes.io/os': 'linux',
          'beta.kubernetes.io/arch': process.arch === 'arm64' ? 'arm64' : 'amd64',
          ...this.o.labels,
        },
        annotations: {
          'node.alpha.kubernetes.io/ttl': '0',
          'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
        },
      },
      spec: {},
    };
    try {
      await this.core.createNode({ body });
      this.o.log(`node ${this.name}: registered`);
    } catch (err) {
      if (!isConflict(err)) throw new Error(`registering node ${this.name}: ${errText(err)}`);
      // Re-registration after a restart: the object (and its podCIDR) stays.
      await this.core.patchNode(
        { name: this.name, body: { metadata: { labels: body.metadata!.labels } } },
        STRATEGIC_MERGE,
      );
      this.o.log(`node ${this.name}: re-registered`);
    }
    await this.patchStatus(false, 'container runtime network not ready: no podCIDR assigned yet');
  }

  private async waitForPodCidr(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const node = await this.core.readNode({ name: this.name });
      if (node.spec?.podCIDR) return node.spec.podCIDR;
      if (Date.now() > deadline) {
        throw new Error(
          `node ${this.name} got no spec.podCIDR in ${timeoutMs} ms: is kube-controller-manager running with --allocate-node-cidrs?`,
        );
      }
      await sleep(200);
    }
  }

  private condition(type: string, status: boolean, reason: string, message: string): V1NodeCondition {
    const now = new Date();
    const s = status ? 'True' : 'False';
    const before = this.conditions.get(type);
    const c: V1NodeCondition = {
      type,
      status: s,
      reason,
      message,
      lastHeartbeatTime: now,
      lastTransitionTime: before?.status === s ? before.lastTransitionTime! : now,
    };
    this.conditions.set(type, c);
    return c;
  }

  private async patchStatus(ready: boolean, notReadyMessage = ''): Promise<void> {
    const cap = this.o.capacity;
    const status = {
      capacity: { ...cap, 'ephemeral-storage': '100Gi' },
      allocatable: { ...cap, 'ephemeral-storage': '100Gi' },
      conditions: [
        this.condition(
          'MemoryPressure',
          false,
          'KubeletHasSufficientMemory',
          'kubelet has sufficient memory available',
        ),
        this.condition('DiskPressure', false, 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        this.condition(
          'PIDPressure',
          false,
          'KubeletHasSufficientPID',
          'kubelet has sufficient PID available',
        ),
        this.condition(
          'Ready',
          ready,
          ready ? 'KubeletReady' : 'KubeletNotReady',
          ready ? 'kubelet is posting ready status' : notReadyMessage,
        ),
      ],
      addresses: [
        { type: 'InternalIP', address: this.o.network.hostAddress },
        { type: 'Hostname', address: this.name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: this.bootID.replace(/-/g, ''),
        systemUUID: this.bootID,
        bootID: this.bootID,
        kernelVersion: process.platform,
        osImage: 'Conflux process node',
        containerRuntimeVersion: 'conflux-process://0.1.0',
        kubeletVersion: this.o.kubeletVersion,
        kubeProxyVersion: '',
        operatingSystem: 'linux',
        architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
      },
    };
    try {
      await this.core.patchNodeStatus({ name: this.name, body: { status } }, STRATEGIC_MERGE);
    } catch (err) {
      this.o.log(`node ${this.name}: status update failed: ${errText(err)}`);
    }
  }

  private async renewLease(): Promise<void> {
    if (!this.running) return;
    const renewTime = new V1MicroTime();
    try {
      if (!this.lease) {
        this.lease = await readIfExists(() =>
          this.coordination.readNamespacedLease({ name: this.name, namespace: LEASE_NS }),
        );
      }
      if (!this.lease) {
        const node = await this.core.readNode({ name: this.name });
        this.lease = await this.coordination.createNamespacedLease({
          namespace: LEASE_NS,
          body: {
            metadata: {
              name: this.name,
              namespace: LEASE_NS,
              ownerReferences: [
                { apiVersion: 'v1', kind: 'Node', name: this.name, uid: node.metadata!.uid! },
              ],
            },
            spec: { holderIdentity: this.name, leaseDurationSeconds: this.o.leaseDurationSeconds, renewTime },
          },
        });
        return;
      }
      this.lease = await this.coordination.replaceNamespacedLease({
        name: this.name,
        namespace: LEASE_NS,
        body: {
          ...this.lease,
          spec: {
            ...this.lease.spec,
            holderIdentity: this.name,
            leaseDurationSeconds: this.o.leaseDurationSeconds,
            renewTime,
          },
        },
      });
    } catch (err) {
      // A conflict or a vanished lease: read it afresh next time.
      this.lease = null;
      if (!isConflict(err) && !isNotFound(err))
        this.o.log(`node ${this.name}: lease renewal failed: ${errText(err)}`);
    }
  }

  // --- Pods ----------------------------------------------------------------------------------

  private startInformer(): void {
    const fieldSelector = `spec.nodeName=${this.name}`;
    const informer = new ListWatch<V1Pod>(
      '/api/v1/pods',
      new Watch(this.o.kubeConfig),
      () => this.core.listPodForAllNamespaces({ fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    informer.on('add', (p) => this.onPod(p));
    informer.on('update', (p) => this.onPod(p));
    informer.on('delete', (p) => this.onPodGone(p));
    informer.on('error', (err) => {
      if (this.informer !== informer) return;
      this.o.log(`node ${this.name}: pod watch failed (${errText(err)}): restarting`);
      setTimeout(() => {
        if (this.informer === informer) void informer.start().catch(() => {});
      }, 1000).unref();
    });
    this.informer = informer;
    void informer.start().catch((err) => this.o.log(`node ${this.name}: pod list failed: ${errText(err)}`));
  }

  private workerContext(): PodWorkerContext {
    return {
      nodeName: this.name,
      stateDir: this.o.stateDir,
      network: this.o.network,
      podCidr: this.podCidr,
      images: this.o.images,
      core: this.core,
      volumeApi: this.volumeApi(),
      envSources: this.envSources(),
      allocatable: this.o.capacity,
      backoff: this.o.backoff,
      volumeResyncMs: this.o.volumeResyncMs,
      logFile: this.o.logFile,
      log: this.o.log,
      event: (pod, type, reason, message) => this.event(pod, type, reason, message),
    };
  }

  private onPod(pod: V1Pod): void {
    if (!this.running) return;
    const uid = pod.metadata?.uid ?? '';
    const worker = this.workers.get(uid);
    if (pod.metadata?.deletionTimestamp) {
      if (this.deleting.has(uid)) return;
      this.deleting.add(uid);
      void this.finishDeletion(pod, worker);
      return;
    }
    if (worker) {
      worker.update(pod);
      return;
    }
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    this.o.log(
      `node ${this.name}: pod ${pod.metadata?.namespace}/${pod.metadata?.name} (uid ${uid}) admitted`,
    );
    this.workers.set(uid, new PodWorker(pod, this.workerContext()));
    const first = pod.spec?.containers?.[0]?.name;
    if (first) this.firstContainers.set(`${pod.metadata?.namespace}/${pod.metadata?.name}`, first);
    this.objects?.retain(volumeRefs(pod));
  }

  /** Graceful deletion: stop the containers, then remove the object (grace 0), as the kubelet. */
  private async finishDeletion(pod: V1Pod, worker: PodWorker | undefined): Promise<void> {
    const uid = pod.metadata!.uid!;
    const seconds = pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
    if (worker) {
      worker.update(pod);
      this.event(
        pod,
        'Normal',
        'Killing',
        `Stopping container ${pod.spec?.containers?.map((c) => c.name).join(', ')}`,
      );
      await worker.terminate(seconds * 1000);
    }
    if (!this.running) return;
    try {
      await this.core.deleteNamespacedPod({
        name: pod.metadata!.name!,
        namespace: pod.metadata!.namespace!,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid } },
      });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err))
        this.o.log(`deleting pod ${pod.metadata?.name}: ${errText(err)}`);
    }
    if (worker && this.workers.get(uid) === worker) this.forget(uid, worker);
  }

  private forget(uid: string, worker: PodWorker): void {
    this.workers.delete(uid);
    this.objects?.release(volumeRefs(worker.pod));
  }

  private onPodGone(pod: V1Pod): void {
    const uid = pod.metadata?.uid ?? '';
    const worker = this.workers.get(uid);
    if (worker) this.forget(uid, worker);
    this.deleting.delete(uid);
    // Removed without a graceful stop (force deletion, or our own final delete): kill what's left.
    if (worker) void worker.kill();
  }

  // --- API access the pods need, with the node's credentials ---------------------------------

  private volumeApi(): VolumeApi {
    return podVolumeApi(this.core);
  }

  private envSources(): EnvSources {
    return podEnvSources(this.core);
  }

  /** A core/v1 Event about the pod, as the kubelet records them (repeats of the last one skipped). */
  private event(pod: V1Pod, type: 'Normal' | 'Warning', reason: string, message: string): void {
    if (!this.running) return;
    const uid = pod.metadata?.uid ?? '';
    const key = `${reason}\0${message}`;
    if (this.lastEvent.get(uid) === key) return;
    this.lastEvent.set(uid, key);
    if (this.lastEvent.size > 1000) this.lastEvent = new Map([...this.lastEvent].slice(-500));
    const namespace = pod.metadata?.namespace ?? 'default';
    const now = new Date();
    void this.core
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${pod.metadata?.name}.`, namespace },
          involvedObject: { apiVersion: 'v1', kind: 'Pod', namespace, name: pod.metadata?.name, uid },
          type,
          reason,
          message,
          source: { component: 'kubelet', host: this.name },
          reportingComponent: 'kubelet',
          reportingInstance: this.name,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      })
      .catch(() => {});
  }
}

export function podLogFile(stateDir: string, namespace: string, pod: string, container: string): string {
  return join(stateDir, 'logs', namespace, pod, `${container}.log`);
}

/** What a pod's volumes read from the API server, with `core`'s credentials (the node's). */
export function podVolumeApi(core: CoreV1Api): VolumeApi {
  return {
    secret: (namespace, name) => readIfExists(() => core.readNamespacedSecret({ name, namespace })),
    configMap: (namespace, name) => readIfExists(() => core.readNamespacedConfigMap({ name, namespace })),
    claim: (namespace, name) =>
      readIfExists(() => core.readNamespacedPersistentVolumeClaim({ name, namespace })),
    volume: (name) => readIfExists(() => core.readPersistentVolume({ name })),
    requestToken: async (spec) => {
      const res = await core.createNamespacedServiceAccountToken({
        name: spec.serviceAccount,
        namespace: spec.namespace,
        body: {
          spec: {
            audiences: spec.audience ? [spec.audience] : [],
            expirationSeconds: spec.expirationSeconds,
            boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: spec.pod.name, uid: spec.pod.uid },
          },
        },
      });
      const token = res.status?.token;
      if (!token) throw new Error('TokenRequest returned no token');
      return { token, expiresAt: new Date(res.status!.expirationTimestamp as unknown as string) };
    },
  };
}

/** What a pod's environment reads from the API server: Secrets, ConfigMaps and Services. */
export function podEnvSources(core: CoreV1Api): EnvSources {
  const api = podVolumeApi(core);
  return {
    secret: api.secret,
    configMap: api.configMap,
    services: async (namespace) => {
      const [own, master] = await Promise.all([
        core.listNamespacedService({ namespace }),
        readIfExists(() => core.readNamespacedService({ name: 'kubernetes', namespace: 'default' })),
      ]);
      return [...own.items, ...(master && namespace !== 'default' ? [master] : [])];
    },
  };
}
