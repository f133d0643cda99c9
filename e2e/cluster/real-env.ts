// The operator's Kubernetes scenarios on a real cluster built from processes: the control plane
// (control-plane.ts), the routed pod network with kube-proxy and CoreDNS (network/), three process
// kubelets (kubelet/), s3rver for backups, and the operator installed IN the cluster with
// `kubectl apply -k config/default`: its Deployment runs as the conflux-operator ServiceAccount
// with the generated RBAC, reaching members by their DNS names over TLS. Nothing is dev-insecure
// and nothing is faked: a missing RBAC verb, a Pod Security refusal or a wrong certificate name
// fails here exactly as on a production cluster.
//
// The test process reaches members the way an in-cluster client would: by
// `<pod>.<cluster>-headless.<ns>.svc`, resolved through CoreDNS, over HTTPS trusting the
// cluster's CA (its `<cluster>-ca` Secret) and checking the certificate against that name.
//
// One per host at a time: the pod network is host-wide (its lock serialises users).

import { lookup as dnsLookup } from 'node:dns';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createConnection, createServer, type LookupFunction, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Agent, type Dispatcher, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { startS3rver } from '../../node/backup/test-s3rver.js';
import { type KubeEnv, runCommand } from '../scenarios/env.js';
import { binariesPresent, binaryPath, ensureBinaries, hasGo } from './binaries.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';
import { confluxImage, type ImageSpec } from './kubelet/images.js';
import { controlPlaneCredentials, type Kubelet, startKubelet } from './kubelet/kubelet.js';
import { type CoreDns, startCoreDns } from './network/coredns.js';
import { type KubeProxy, startKubeProxy } from './network/kube-proxy.js';
import { checkHost, type PodNetwork, preparePodNetwork } from './network/pod-network.js';

const REPO = resolve(import.meta.dirname, '../..');
/** The one Conflux image (node and operator), as config/default and the CRD default name it. */
export const CONFLUX_IMAGE = 'ghcr.io/conflux-io/conflux:0.1.0';
export const NAMESPACE = 'conflux-e2e';
export const OPERATOR_NAMESPACE = 'conflux-system';
export const OPERATOR_SELECTOR = 'app.kubernetes.io/name=conflux-operator';
const CLUSTER_DOMAIN = 'cluster.local';

export interface RealCluster extends KubeEnv {
  dir: string;
  cp: ControlPlane;
  network: PodNetwork;
  kubelet: Kubelet;
  proxy: KubeProxy;
  dns: CoreDns;
  /** S3 endpoint as pods reach it (the pod network's host address). */
  s3Endpoint: string;
  /** The log of a pod's first container, from whichever node ran it ('' if none). */
  podLog(namespace: string, pod: string): string;
  /** The last lines of every operator pod's log, for a failure report. */
  operatorLogs(lines?: number): string;
}

export interface RealClusterOptions {
  /**
   * PVs bound to the node they were made on, like local disks: a member whose node is drained
   * stays Pending until the node is back. Default false.
   */
  nodeLocalVolumes?: boolean;
  /** Install the operator with `kubectl apply -k config/default` (default true). */
  installOperator?: boolean;
  /** How many Nodes (process kubelets) to run (default 3). */
  nodes?: number;
  /** More image names the kubelets know, beside CONFLUX_IMAGE (for example one that cannot start). */
  extraImages?: Record<string, ImageSpec>;
  log?: (line: string) => void;
}

type Stoppable = { stop(): Promise<void> | void };

export async function startRealCluster(o: RealClusterOptions = {}): Promise<RealCluster> {
  const t0 = Date.now();
  const log = o.log ?? ((line: string) => console.log(`[real-cluster +${Date.now() - t0}ms] ${line}`));
  checkHost();
  await ensureBinaries(log);
  const dir = mkdtempSync(join(tmpdir(), 'conflux-real-'));
  // The kubelet's state (pod volumes, PVs) lives below: uid 10001 must traverse it.
  chmodSync(dir, 0o755);
  // Torn down in reverse order by stop(), also when the start fails half-way.
  const started: Stoppable[] = [];
  const teardown = async () => {
    for (const s of started.reverse()) {
      try {
        await s.stop();
      } catch (err) {
        log(`teardown: ${(err as Error).message}`);
      }
    }
    if (process.env.CONFLUX_KEEP_E2E) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  };
  try {
    const network = await preparePodNetwork({ stateDir: join(dir, 'net') });
    started.push(network);
    const cp = await startControlPlane({
      dir: join(dir, 'cp'),
      serviceCidr: network.serviceCidr,
      clusterCidr: '10.244.0.0/16',
      apiserverAddress: network.hostAddress,
      log,
    });
    started.push(cp);
    log(`control plane at ${cp.apiserverUrl}`);
    const kubelet = await startKubelet({
      ...(await controlPlaneCredentials(cp)),
      network,
      ...(o.nodes ? { nodes: Array.from({ length: o.nodes }, (_, i) => `conflux-worker-${i + 1}`) } : {}),
      stateDir: join(dir, 'kubelet'),
      images: { [CONFLUX_IMAGE]: confluxImage({ repoDir: REPO }), ...o.extraImages },
      // A crashed member comes back within seconds, as the scenarios expect of a kubelet.
      backoff: { initialMs: 1000, maxMs: 10_000 },
      // Volumes any node can mount (network block storage) unless asked otherwise: a member
      // evicted by a drain moves to another node with its data.
      storage: { nodeLocal: o.nodeLocalVolumes ?? false },
    });
    started.push(kubelet);
    log(`nodes ${kubelet.nodeNames.join(', ')} Ready`);
    const proxy = await startKubeProxy({
      dir: join(dir, 'kube-proxy'),
      kubeconfigPath: join(cp.dir, 'kube-proxy.kubeconfig'),
      adminKubeconfigPath: cp.kubeconfigPath,
      nodeName: kubelet.nodeNames[0]!,
      clusterCidr: cp.clusterCidr,
      log,
    });
    started.push(proxy);
    const dns = await startCoreDns({
      dir: join(dir, 'coredns'),
      kubeconfigPath: cp.kubeconfigPath,
      listenAddress: network.hostAddress,
      dnsServiceIp: cp.dnsServiceIp,
      clusterDomain: CLUSTER_DOMAIN,
      log,
    });
    started.push(dns);
    await proxy.waitForClusterIp('10.96.0.1');
    await proxy.waitForClusterIp(cp.dnsServiceIp);
    const s3 = await startS3rver('backups');
    started.push(s3);
    const relay = await relayTo(network.hostAddress, new URL(s3.endpoint));
    started.push(relay);
    const s3Endpoint = `http://${network.hostAddress}:${relay.port}`;

    const kubectl = (args: string[], stdin?: string) =>
      runCommand(binaryPath('kubectl'), ['--kubeconfig', cp.kubeconfigPath, ...args], stdin);
    const must = async (args: string[], stdin?: string) => {
      const r = await kubectl(args, stdin);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
      return r.stdout;
    };
    // Conflux's namespaces admit only pods that meet the `restricted` Pod Security Standard.
    await must(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: {
              name: NAMESPACE,
              labels: {
                'pod-security.kubernetes.io/enforce': 'restricted',
                'pod-security.kubernetes.io/enforce-version': 'latest',
              },
            },
          },
          {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: { name: 'backup-credentials', namespace: NAMESPACE },
            stringData: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
          },
        ],
      }),
    );
    if (o.installOperator !== false) {
      await must(['apply', '-k', join(REPO, 'config/default')]);
      const rollout = await kubectl([
        'rollout',
        'status',
        '-n',
        OPERATOR_NAMESPACE,
        'deployment/conflux-operator',
        '--timeout=120s',
      ]);
      if (rollout.code !== 0) {
        const events = await kubectl(['get', 'events', '-n', OPERATOR_NAMESPACE]);
        throw new Error(`the operator did not become available: ${rollout.stderr}\n${events.stdout}`);
      }
      log('operator installed from config/default and available');
    }

    const podLog = (namespace: string, pod: string) => {
      const path = kubelet.podLogPath(namespace, pod);
      return existsSync(path) ? readFileSync(path, 'utf8') : '';
    };
    const trust = new MemberTrust(dns, kubectl);
    const env: RealCluster = {
      dir,
      cp,
      network,
      kubelet,
      proxy,
      dns,
      s3Endpoint,
      namespace: NAMESPACE,
      kubectl,
      podLog,
      operatorLogs(lines = 60) {
        const logs = join(dir, 'kubelet', 'logs');
        const names = existsSync(logs) ? readdirSync(logs, { recursive: true }).map(String) : [];
        return names
          .filter((n) => n.includes('conflux-operator') && n.endsWith('.log'))
          .map((n) => {
            const text = readFileSync(join(logs, n), 'utf8').trimEnd().split('\n');
            return `--- ${n}\n${text.slice(-lines).join('\n')}`;
          })
          .join('\n');
      },
      // No dev-insecure annotation: TLS everywhere, as the operator ships.
      clusterMetadata: (name) => ({ name, namespace: NAMESPACE }),
      specDefaults: { image: CONFLUX_IMAGE, raft: { tickMs: 20 } },
      backupDestination: (prefix) => ({
        uri: `s3://backups/${prefix}`,
        endpoint: s3Endpoint,
        region: 'us-east-1',
        pathStyle: true,
        credentialsSecret: { name: 'backup-credentials' },
      }),
      async clientUrl(cluster, ordinal) {
        await trust.add(cluster);
        return `https://${cluster}-${ordinal}.${cluster}-headless.${NAMESPACE}.svc:8080`;
      },
      killPod: (pod) => kubelet.killContainer(NAMESPACE, pod),
      async restartOperator() {
        await must([
          'delete',
          'pod',
          '-n',
          OPERATOR_NAMESPACE,
          '-l',
          OPERATOR_SELECTOR,
          '--grace-period=0',
          '--force',
        ]);
      },
      async stop() {
        trust.close();
        await teardown();
        log('stopped');
      },
    };
    log(`ready in ${Date.now() - t0} ms`);
    return env;
  } catch (err) {
    await teardown();
    throw err;
  }
}

/**
 * The global fetch's TLS trust for members: every CA seen so far (each cluster's `<cluster>-ca`
 * Secret), names under `.svc` resolved through CoreDNS, and the usual server identity check
 * against the name asked for. The dispatcher in place before is put back by close().
 */
class MemberTrust {
  private readonly cas = new Map<string, string>();
  private readonly previous: Dispatcher = getGlobalDispatcher();
  private agent: Agent | null = null;

  constructor(
    private readonly dns: CoreDns,
    private readonly kubectl: KubeEnv['kubectl'],
  ) {}

  async add(cluster: string): Promise<void> {
    const r = await this.kubectl([
      'get',
      'secret',
      `${cluster}-ca`,
      '-n',
      NAMESPACE,
      '-o',
      'jsonpath={.data.ca\\.crt}',
    ]);
    if (r.code !== 0 || !r.stdout) throw new Error(`no CA for ${cluster}: ${r.stderr.trim()}`);
    const pem = Buffer.from(r.stdout, 'base64').toString('utf8');
    if (this.cas.get(cluster) === pem) return;
    // A restored cluster of the same name has a new CA: the old one is no longer trusted.
    this.cas.set(cluster, pem);
    const old = this.agent;
    this.agent = new Agent({ connect: { ca: [...this.cas.values()], lookup: clusterLookup(this.dns) } });
    setGlobalDispatcher(this.agent);
    void old?.close();
  }

  close(): void {
    setGlobalDispatcher(this.previous);
    void this.agent?.close();
    this.agent = null;
  }
}

/** Cluster names (`*.svc`) through CoreDNS; anything else as the host resolves it. */
export function clusterLookup(dns: CoreDns): LookupFunction {
  return (hostname, options, callback) => {
    if (!/\.svc$/.test(hostname)) {
      dnsLookup(hostname, options, callback as never);
      return;
    }
    dns
      .resolver()
      .resolve4(`${hostname}.${CLUSTER_DOMAIN}`)
      .then(
        (addresses) => {
          const address = addresses[0]!;
          if (options.all) callback(null, [{ address, family: 4 }]);
          else callback(null, address, 4);
        },
        (err: NodeJS.ErrnoException) => callback(err, '', 4),
      );
  };
}

/** A TCP relay from `address`:<free port> to `target`, for host services bound to loopback. */
async function relayTo(address: string, target: URL): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((down) => {
    const up = createConnection({ host: target.hostname, port: Number(target.port) });
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    down.pipe(up).pipe(down);
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, address, ok);
  });
  return {
    port: (server.address() as AddressInfo).port,
    stop: () =>
      new Promise<void>((ok) => {
        for (const s of sockets) s.destroy();
        server.close(() => ok());
      }),
  };
}

/** Whether this host can run the real cluster: root, and the binaries (or Go to build them). */
export function canRunRealCluster(): boolean {
  return process.getuid?.() === 0 && (binariesPresent() || hasGo());
}
