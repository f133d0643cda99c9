// Conflux's process kubelet: N Kubernetes Nodes for a real control plane (control-plane.ts), each
// running the pods the scheduler binds to it as processes in pod network sandboxes
// (network/pod-network.ts), plus the dynamic provisioner of the default StorageClass.
//
//   const cp = await startControlPlane();
//   const network = await preparePodNetwork({ stateDir, serviceCidr: cp.serviceCidr });
//   const kubelet = await startKubelet({
//     ...(await controlPlaneCredentials(cp)),
//     network, stateDir, images: { 'ghcr.io/conflux-io/conflux:0.1.0': confluxImage({...}) },
//   });
//   ...
//   await kubelet.stop(); await network.stop(); await cp.stop();
//
// Not here (yet): the kubelet's HTTPS server (so `kubectl logs/exec/port-forward` fail: read
// podLogPath() instead), resource limits (no cgroups), readOnlyRootFilesystem, sidecar (restartable
// init) containers, preStop/postStart hooks, ephemeral containers, image pull secrets.

import { appendFileSync, chmodSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { versions } from '../binaries.js';
import type { ControlPlane } from '../control-plane.js';
import { type BackoffOptions, KUBELET_BACKOFF } from './backoff.js';
import type { ImageSpec } from './images.js';
import { errText, isConflict, loadKubeConfig } from './kube.js';
import { defaultCapacity, NodeAgent, podLogFile } from './node-agent.js';
import type { PodNetworkApi } from './pod-worker.js';
import { type Provisioner, type StorageOptions, startProvisioner } from './provisioner.js';

export interface KubeletCredentials {
  /** Cluster-admin kubeconfig: installs the StorageClass and the provisioner's RBAC. */
  adminKubeconfig: string;
  /** A kubeconfig that authenticates as system:node:<name> in group system:nodes. */
  nodeKubeconfig(name: string): Promise<string>;
  /** The provisioner's own identity (default: the admin). */
  provisioner?: { kubeconfig: string; user: string };
}

export interface KubeletOptions extends KubeletCredentials {
  network: PodNetworkApi;
  /** Node names (default conflux-worker-1..3). */
  nodes?: string[];
  /** Pod volumes, PV directories, logs. Created if missing; made traversable (0755). */
  stateDir: string;
  /** Image name -> what it runs. The object is read at each container start (add images later). */
  images: Record<string, ImageSpec>;
  /** The provisioner and its StorageClass; false: none. */
  storage?: StorageOptions | false;
  /** Crash-loop back-off (default 10 s doubling to 5 min). */
  backoff?: BackoffOptions;
  /** Lease renewal period (default 10 s) and duration (default 40 s). */
  leaseMs?: number;
  leaseDurationSeconds?: number;
  /** Node status patch period (default 10 s). */
  statusMs?: number;
  /** How often Secret/ConfigMap/projected volumes are rewritten from the API (default 5 s). */
  volumeResyncMs?: number;
  /** Per-node capacity and allocatable (default: this machine's cores and memory, 110 pods). */
  capacity?: { cpu: string; memory: string; pods: string };
  /** Extra labels for each node (e.g. topology.kubernetes.io/zone). */
  labels?: (node: string) => Record<string, string>;
  /** How long a node waits for its podCIDR (default 60 s). */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface Kubelet {
  nodeNames: string[];
  /** The node's machine dies: heartbeats stop, its pods' processes are killed. */
  stopNode(name: string): Promise<void>;
  /** The node comes back: heartbeats resume, pods still bound to it start again. */
  startNode(name: string): Promise<void>;
  /** Stops every node (all processes killed, every sandbox removed) and the provisioner. */
  stop(): Promise<void>;
  /**
   * SIGKILLs a container of a running pod (default: its first), as a crash or the OOM killer
   * would; the kubelet restarts it by the pod's restartPolicy. Resolves once it has exited.
   */
  killContainer(namespace: string, name: string, container?: string): Promise<void>;
  /**
   * The log file of a pod's container (default: its first), on whichever node ran it; it outlives
   * the pod, and a re-created pod of the same name appends to it (after a `--- kubelet:` line).
   */
  podLogPath(namespace: string, name: string, container?: string): string;
  /** The directory that backs a provisioned PV. */
  volumePath(pvName: string): string;
  /** Milliseconds from admission to all containers ready, by `<ns>/<name>`, for pods that got there. */
  readyLatencies(): Map<string, number>;
  /** The kubelet's own log. */
  logPath: string;
}

export const DEFAULT_NODES = ['conflux-worker-1', 'conflux-worker-2', 'conflux-worker-3'];

const PROVISIONER_ROLE = 'conflux:local-provisioner';

/**
 * Credentials from a control plane started by control-plane.ts: a client certificate per node from
 * the cluster CA (CN system:node:<name>, O system:nodes), and one for the provisioner.
 */
export async function controlPlaneCredentials(cp: ControlPlane): Promise<KubeletCredentials> {
  const user = 'conflux-local-provisioner';
  return {
    adminKubeconfig: cp.kubeconfigPath,
    nodeKubeconfig: (name) => cp.issueKubeconfig(`kubelet-${name}`, `system:node:${name}`, ['system:nodes']),
    provisioner: { kubeconfig: await cp.issueKubeconfig('local-provisioner', user), user },
  };
}

/** What an external provisioner needs (as local-path-provisioner's ClusterRole). */
async function installProvisionerRbac(adminKubeconfig: string, user: string): Promise<void> {
  const rbac = loadKubeConfig(adminKubeconfig).makeApiClient(RbacAuthorizationV1Api);
  const create = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      if (!isConflict(err)) throw new Error(`provisioner RBAC: ${errText(err)}`);
    }
  };
  await create(() =>
    rbac.createClusterRole({
      body: {
        metadata: { name: PROVISIONER_ROLE },
        rules: [
          {
            apiGroups: [''],
            resources: ['persistentvolumes'],
            verbs: ['get', 'list', 'watch', 'create', 'delete'],
          },
          {
            apiGroups: [''],
            resources: ['persistentvolumeclaims'],
            verbs: ['get', 'list', 'watch', 'update'],
          },
          {
            apiGroups: ['storage.k8s.io'],
            resources: ['storageclasses'],
            verbs: ['get', 'list', 'watch', 'create'],
          },
          { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
          { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
        ],
      },
    }),
  );
  await create(() =>
    rbac.createClusterRoleBinding({
      body: {
        metadata: { name: PROVISIONER_ROLE },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: PROVISIONER_ROLE },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
      },
    }),
  );
}

export async function startKubelet(o: KubeletOptions): Promise<Kubelet> {
  const stateDir = resolve(o.stateDir);
  mkdirSync(join(stateDir, 'logs'), { recursive: true });
  chmodSync(stateDir, 0o755);
  const logPath = join(stateDir, 'kubelet.log');
  const log = (line: string) => {
    const text = `${new Date().toISOString()} ${line}`;
    appendFileSync(logPath, `${text}\n`);
    o.log?.(text);
  };
  const nodeNames = o.nodes ?? DEFAULT_NODES;
  const capacity = o.capacity ?? defaultCapacity();
  const logFile = (ns: string, pod: string, container: string) => podLogFile(stateDir, ns, pod, container);

  let provisioner: Provisioner | null = null;
  const agents = new Map<string, NodeAgent>();
  const stop = async () => {
    await Promise.all([...agents.values()].map((a) => a.stop()));
    await provisioner?.stop();
    provisioner = null;
  };
  try {
    if (o.storage !== false) {
      let kubeconfig = o.adminKubeconfig;
      if (o.provisioner) {
        await installProvisionerRbac(o.adminKubeconfig, o.provisioner.user);
        kubeconfig = o.provisioner.kubeconfig;
      }
      provisioner = await startProvisioner({
        kubeConfig: loadKubeConfig(kubeconfig),
        stateDir,
        ...(o.storage ? { storage: o.storage } : {}),
        log,
      });
    }
    const kubeletVersion = versions().K8S_VERSION;
    for (const name of nodeNames) {
      agents.set(
        name,
        new NodeAgent({
          name,
          kubeConfig: loadKubeConfig(await o.nodeKubeconfig(name)),
          network: o.network,
          stateDir,
          images: o.images,
          backoff: o.backoff ?? KUBELET_BACKOFF,
          volumeResyncMs: o.volumeResyncMs ?? 5000,
          leaseMs: o.leaseMs ?? 10_000,
          leaseDurationSeconds: o.leaseDurationSeconds ?? 40,
          statusMs: o.statusMs ?? 10_000,
          capacity,
          labels: o.labels?.(name) ?? {},
          kubeletVersion,
          logFile,
          log,
        }),
      );
    }
    await Promise.all([...agents.values()].map((a) => a.start(o.timeoutMs)));
  } catch (err) {
    await stop();
    throw err;
  }

  const agent = (name: string): NodeAgent => {
    const a = agents.get(name);
    if (!a) throw new Error(`no node ${name} (nodes: ${nodeNames.join(', ')})`);
    return a;
  };
  return {
    nodeNames,
    logPath,
    stopNode: (name) => agent(name).stop(),
    startNode: (name) => agent(name).start(o.timeoutMs),
    stop,
    killContainer(namespace, name, container) {
      for (const a of agents.values()) {
        const w = a.pods().find((p) => p.namespace === namespace && p.name === name && !p.finished());
        if (w) return w.killContainer(container);
      }
      return Promise.reject(new Error(`no running pod ${namespace}/${name} on these nodes`));
    },
    podLogPath(namespace, name, container) {
      if (container) return logFile(namespace, name, container);
      // The pod's first container, also after the pod is gone (its logs stay).
      for (const a of agents.values()) {
        const first = a.firstContainer(namespace, name);
        if (first) return logFile(namespace, name, first);
      }
      const dir = join(stateDir, 'logs', namespace, name);
      const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.log')) : [];
      return files.length === 1 ? join(dir, files[0]!) : logFile(namespace, name, 'main');
    },
    volumePath: (pv) => join(stateDir, 'volumes', pv),
    readyLatencies() {
      const out = new Map<string, number>();
      for (const a of agents.values()) {
        for (const w of a.pods()) if (w.readyAfterMs !== null) out.set(w.key, w.readyAfterMs);
      }
      return out;
    },
  };
}
