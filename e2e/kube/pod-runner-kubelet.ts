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
// Simplified: one container per pod (others, and init containers, are ignored); the container's
// `command` is ignored and its image only selects a command from the runner's `images` map (any
// other image runs the runner's command, conflux-node by default), run with the container's
// `args`; only the readiness probe is run (no startup or liveness probes; exec
// probes count as passing); no resource limits, users or security contexts.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreV1Api, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import type { NodeCommand } from '../../operator/platform/local.js';
import type { LoopbackAddresses } from './pod-runner-addresses.js';
import { PodWorker } from './pod-runner-process.js';
import { errText, isConflict, isNotFound, pvcDir } from './pod-runner-volumes.js';

export { podLogFile } from './pod-runner-process.js';
export { runProbe } from './pod-runner-status.js';
export { isNotFound, pvcDir } from './pod-runner-volumes.js';

export interface KubeletOptions {
  core: CoreV1Api;
  root: string;
  command: NodeCommand;
  /** The command that stands for each of these images (others run `command`). */
  images?: Readonly<Record<string, NodeCommand>>;
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

const PVC_PROTECTION = 'kubernetes.io/pvc-protection';

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
