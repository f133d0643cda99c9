// The pod runner: a stand-in for the StatefulSet controller and the kubelet, for tests that run
// the operator against a Kubernetes API stand-in. It talks to the API server only through
// @kubernetes/client-node with a kubeconfig, and runs each pod as one real `conflux-node`
// process on its own loopback IP:
//
//   const runner = await startPodRunner({ kubeconfigPath, root });
//   new KubernetesPlatform({ kubeConfig, logger, memberHost: runner.memberHost });
//
// - StatefulSet controller (pod-runner-statefulsets.ts): pods and PVCs from each apps/v1
//   StatefulSet, scale-down, PVC retention, rolling updates, status.
// - Kubelet (pod-runner-kubelet.ts): one process per pod, pod status, restarts, deletion.
// - Mapping (pod-runner-env.ts, pod-runner-addresses.ts): pod `<ns>/<name>` -> 127.0.0.<n>
//   (stable per pod name, unique per pod); env with fieldRef/secretKeyRef resolved and `$(VAR)`
//   expanded; PVC mounts -> <root>/pvc/<ns>/<claim>, Secret volumes ->
//   <root>/secrets/<ns>/<pod>/<volume>, env values under a mount path rewritten to the host path;
//   listen/advertise addresses and pod DNS names rewritten to the pods' IPs.
//   Logs: <root>/logs/<ns>/<pod>.log (the processes), <root>/logs/pod-runner.log (the runner).
//
// TLS: pod DNS names (`<pod>.<svc>.<ns>.svc`) do not resolve on this machine, so the nodes are
// told to advertise `127.0.0.<n>:<port>` instead. Certificates the operator issues name the DNS
// names, not these IPs, so TLS hostname verification between nodes (and from the operator) cannot
// succeed here: clusters run through the pod runner must carry the `conflux.io/dev-insecure:
// "true"` annotation (plain HTTP, which the node accepts on loopback addresses only).
//
// Level-triggered: watches on StatefulSets, pods and PVCs (all namespaces, or the `namespaces`
// given) only trigger a pass; every pass lists everything and converges. A periodic pass (resyncMs)
// covers a watch that broke.

import { appendFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1StatefulSet,
  Watch,
} from '@kubernetes/client-node';
import type { ConfluxCluster } from '../../operator/api/cluster.js';
import { defaultCommand, type NodeCommand } from '../../operator/platform/local.js';
import { LoopbackAddresses } from './pod-runner-addresses.js';
import { Kubelet, type PodProcessInfo, podLogFile, pvcDir } from './pod-runner-kubelet.js';
import { StatefulSetController } from './pod-runner-statefulsets.js';

export type { PodProcessInfo } from './pod-runner-kubelet.js';

export interface PodRunnerOptions {
  kubeconfigPath: string;
  /** Temp dir for the "PVCs", Secret files, logs and the address map. */
  root: string;
  /** How to run a pod's process (default: conflux-node from source with tsx); the container's args follow. */
  command?: NodeCommand;
  /**
   * Images the runner knows, each with the command that stands for it (a container of another
   * image runs `command`): how a test rolls out a new "image", or a broken one.
   */
  images?: Record<string, NodeCommand>;
  /** The node name pods are bound to (default `pod-runner`); pods bound elsewhere are left alone. */
  nodeName?: string;
  /** Only these namespaces (default: all, through the cluster-wide list and watch paths). */
  namespaces?: string[];
  /** Readiness probe period (default 500 ms). */
  probePeriodMs?: number;
  /** Cap on terminationGracePeriodSeconds (default 5 s). */
  maxGracePeriodMs?: number;
  /** Full pass at least this often (default 1 s). */
  resyncMs?: number;
  /** Where lock files claim loopback addresses across runners (default a dir in os.tmpdir()). */
  addressLockDir?: string;
  /** Also receives the runner's own log lines. */
  log?: (line: string) => void;
}

export interface PodRunner {
  /** Stops every process, the watches and the loop (pod objects are left as they are). */
  stop(): Promise<void>;
  /** SIGKILL the pod's process; resolves once it exited. The runner restarts it, as a kubelet. */
  kill(namespace: string, podName: string): Promise<void>;
  /** The pod's loopback IP, `127.0.0.<n>` (assigned on first use, stable per pod name). */
  addressOf(namespace: string, podName: string): string;
  /** For KubernetesPlatformOptions.memberHost: the pod's IP instead of its DNS name. */
  memberHost(cluster: ConfluxCluster, pod: V1Pod | undefined, podName: string): string;
  /** The host directory that stands in for a PVC. */
  pvcPath(namespace: string, claimName: string): string;
  /** The pod's log file. */
  logPath(namespace: string, podName: string): string;
  /** The pod's process as the runner sees it, if it runs one for the pod. */
  processOf(namespace: string, podName: string): PodProcessInfo | undefined;
  /** Resolves after the next full pass (lists and syncs) completed. */
  settle(): Promise<void>;
}

export async function startPodRunner(options: PodRunnerOptions): Promise<PodRunner> {
  const root = resolve(options.root);
  mkdirSync(join(root, 'logs'), { recursive: true });
  const runnerLog = join(root, 'logs', 'pod-runner.log');
  const log = (message: string) => {
    const line = `${new Date().toISOString()} ${message}`;
    appendFileSync(runnerLog, `${line}\n`);
    options.log?.(line);
  };

  const kc = new KubeConfig();
  kc.loadFromFile(options.kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const nodeName = options.nodeName ?? 'pod-runner';
  const addresses = new LoopbackAddresses(
    join(root, 'addresses.json'),
    ...(options.addressLockDir ? [options.addressLockDir] : []),
  );

  let stopped = false;
  let passing: Promise<void> | null = null;
  let again = false;
  let waiters: (() => void)[] = [];
  let timer: NodeJS.Timeout | null = null;

  const kubelet = new Kubelet({
    core,
    root,
    command: options.command ?? defaultCommand(false),
    ...(options.images ? { images: options.images } : {}),
    nodeName,
    addresses,
    probePeriodMs: options.probePeriodMs ?? 500,
    maxGracePeriodMs: options.maxGracePeriodMs ?? 5_000,
    log,
    changed: () => trigger(),
  });
  const controller = new StatefulSetController({ core, apps, nodeName, log });

  const namespaces = options.namespaces;
  const listSets = async (): Promise<V1StatefulSet[]> =>
    namespaces
      ? (
          await Promise.all(namespaces.map((namespace) => apps.listNamespacedStatefulSet({ namespace })))
        ).flatMap((l) => l.items)
      : (await apps.listStatefulSetForAllNamespaces()).items;
  const listPods = async (): Promise<V1Pod[]> =>
    namespaces
      ? (await Promise.all(namespaces.map((namespace) => core.listNamespacedPod({ namespace })))).flatMap(
          (l) => l.items,
        )
      : (await core.listPodForAllNamespaces()).items;
  const listClaims = async (): Promise<V1PersistentVolumeClaim[]> =>
    namespaces
      ? (
          await Promise.all(
            namespaces.map((namespace) => core.listNamespacedPersistentVolumeClaim({ namespace })),
          )
        ).flatMap((l) => l.items)
      : (await core.listPersistentVolumeClaimForAllNamespaces()).items;

  let lastError = '';
  const passOnce = async () => {
    try {
      const sets = await listSets();
      let [pods, claims] = await Promise.all([listPods(), listClaims()]);
      await controller.sync(sets, pods, claims);
      // The kubelet acts on what the controller just created or deleted.
      const listedAt = Date.now();
      [pods, claims] = await Promise.all([listPods(), listClaims()]);
      kubelet.syncPods(pods);
      kubelet.syncClaims(claims, listedAt);
      await kubelet.releaseClaims(claims, pods);
      lastError = '';
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      if (text !== lastError) log(`pass failed: ${text}`);
      lastError = text;
    }
  };

  /** Runs a pass now, or once more after the running one. */
  function trigger(): void {
    if (stopped) return;
    if (passing) {
      again = true;
      return;
    }
    passing = (async () => {
      do {
        again = false;
        const done = waiters;
        waiters = [];
        await passOnce();
        for (const w of done) w();
      } while (again && !stopped);
    })().finally(() => {
      passing = null;
      if (waiters.length > 0 && !stopped) trigger();
    });
  }

  // Watches only wake the loop; a broken one is restarted after a second.
  const watch = new Watch(kc);
  const watches = new Set<AbortController>();
  const paths = (plural: string, group: string) =>
    namespaces ? namespaces.map((ns) => `${group}/namespaces/${ns}/${plural}`) : [`${group}/${plural}`];
  const startWatch = async (path: string): Promise<void> => {
    if (stopped) return;
    let ended = false;
    const restart = () => {
      if (ended) return;
      ended = true;
      if (!stopped) setTimeout(() => void startWatch(path), 1_000).unref();
    };
    const ctrl = await watch
      .watch(path, {}, () => trigger(), restart)
      .catch(() => {
        restart();
        return null;
      });
    if (ctrl) {
      if (stopped) ctrl.abort();
      else watches.add(ctrl);
    }
  };
  for (const path of [
    ...paths('statefulsets', '/apis/apps/v1'),
    ...paths('pods', '/api/v1'),
    ...paths('persistentvolumeclaims', '/api/v1'),
  ]) {
    void startWatch(path);
  }
  timer = setInterval(trigger, options.resyncMs ?? 1_000);
  timer.unref();
  log(`pod runner started (node ${nodeName}, root ${root})`);
  trigger();

  const runner: PodRunner = {
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer) clearInterval(timer);
      for (const w of watches) w.abort();
      await passing;
      await kubelet.stop();
      addresses.release();
      for (const w of waiters) w();
      log('pod runner stopped');
    },
    async kill(namespace, podName) {
      log(`kill -9 ${namespace}/${podName}`);
      await kubelet.kill(namespace, podName);
    },
    addressOf: (namespace, podName) => addresses.of(namespace, podName),
    memberHost: (cluster, pod, podName) =>
      pod?.status?.podIP ?? addresses.of(pod?.metadata?.namespace ?? cluster.metadata.namespace, podName),
    pvcPath: (namespace, claimName) => pvcDir(root, namespace, claimName),
    logPath: (namespace, podName) => podLogFile(root, namespace, podName),
    processOf: (namespace, podName) => kubelet.info(namespace, podName),
    settle: () =>
      new Promise<void>((done) => {
        if (stopped) return done();
        waiters.push(done);
        if (!passing) trigger();
      }),
  };
  return runner;
}
