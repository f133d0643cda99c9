// kube-proxy for Conflux's process-based cluster: the real binary, as a host process, in nftables
// mode. It owns the host's `ip kube-proxy` and `ip6 kube-proxy` tables, which DNAT Service
// ClusterIPs (and NodePorts) to endpoint addresses: pod IPs on the pod network, or the host
// address for host processes behind a Service (the API server, CoreDNS).
//
// One kube-proxy per host: its table is host-wide, and every node of a cluster on this host shares
// the host namespace. It runs as one of the nodes (`nodeName`); only Services with
// internal/externalTrafficPolicy Local see a difference between nodes.
//
// kube-proxy exits (by design) when its Node's addresses or podCIDRs change or the Node is deleted;
// like its DaemonSet in a real cluster it is restarted, after a second, until stop().
//
// Conntrack settings are left as the host has them (maxPerCore 0 and zero timeouts mean "do not
// write the sysctl"), and oomScoreAdj is left alone, so nothing host-wide changes but the tables.

import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { binaryPath } from '../binaries.js';
import { freePort, logTail, type Proc, sleep, startProc, stopPid } from '../proc.js';
import { getJson } from './kubectl.js';

const run = promisify(execFile);

export interface KubeProxyOptions {
  /** Directory for the config file and log (the caller removes it). */
  dir: string;
  /** A kubeconfig whose user has system:node-proxier (e.g. `kube-proxy.kubeconfig`, user system:kube-proxy). */
  kubeconfigPath: string;
  /** The Node it runs as; waited for (with an address) before kube-proxy starts. */
  nodeName: string;
  /** Default 10.244.0.0/16: traffic from outside it to a ClusterIP is masqueraded. */
  clusterCidr?: string;
  /** Addresses (CIDRs) NodePorts answer on; default the Node's primary address. */
  nodePortAddresses?: string[];
  /** Masquerade all Service traffic (not needed on the routed pod network). */
  masqueradeAll?: boolean;
  /** How long to wait for the Node to exist with an address. Default 60 s. */
  nodeTimeoutMs?: number;
  /** How long to wait for the first full sync. Default 60 s. */
  timeoutMs?: number;
  /** A kubeconfig allowed to read Nodes, if `kubeconfigPath`'s user is not. Default: kubeconfigPath. */
  adminKubeconfigPath?: string;
  log?: (line: string) => void;
}

export interface KubeProxy {
  pid(): number;
  logFile: string;
  healthzUrl: string;
  /** Times kube-proxy exited on its own and was started again. */
  restarts(): number;
  /** Resolves once kube-proxy has programmed this ClusterIP (seen in its nftables map). */
  waitForClusterIp(ip: string, timeoutMs?: number): Promise<void>;
  /** Stops kube-proxy and deletes its nftables tables. */
  stop(): Promise<void>;
}

interface NodeJson {
  status?: { addresses?: { type: string; address: string }[] };
}

const TABLES = [
  ['ip', 'kube-proxy'],
  ['ip6', 'kube-proxy'],
] as const;

export async function startKubeProxy(opts: KubeProxyOptions): Promise<KubeProxy> {
  const log = opts.log ?? (() => {});
  const t0 = Date.now();
  mkdirSync(opts.dir, { recursive: true });
  const readerKubeconfig = opts.adminKubeconfigPath ?? opts.kubeconfigPath;

  // kube-proxy takes the Node's addresses once, at start, and exits when they change: start it
  // only once the kubelet has registered the Node with its addresses.
  const nodeDeadline = Date.now() + (opts.nodeTimeoutMs ?? 60_000);
  for (;;) {
    const node = await getJson<NodeJson>(readerKubeconfig, ['node', opts.nodeName]).catch(() => undefined);
    if (node?.status?.addresses?.length) break;
    if (Date.now() > nodeDeadline)
      throw new Error(
        `kube-proxy: Node ${opts.nodeName} ${node ? 'has no status.addresses' : 'does not exist'} after ${opts.nodeTimeoutMs ?? 60_000} ms`,
      );
    await sleep(250);
  }

  await deleteTables(); // a crashed run's rules, replaced wholesale by the first sync anyway
  const healthzPort = await freePort();
  const metricsPort = await freePort();
  const config = join(opts.dir, 'kube-proxy.yaml');
  const nodePortAddresses = opts.nodePortAddresses ?? [];
  writeFileSync(
    config,
    [
      'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
      'kind: KubeProxyConfiguration',
      'mode: nftables',
      'clientConnection:',
      `  kubeconfig: ${JSON.stringify(opts.kubeconfigPath)}`,
      `hostnameOverride: ${JSON.stringify(opts.nodeName)}`,
      `clusterCIDR: ${JSON.stringify(opts.clusterCidr ?? '10.244.0.0/16')}`,
      'detectLocalMode: ClusterCIDR',
      `healthzBindAddress: 127.0.0.1:${healthzPort}`,
      `metricsBindAddress: 127.0.0.1:${metricsPort}`,
      nodePortAddresses.length > 0
        ? `nodePortAddresses: ${JSON.stringify(nodePortAddresses)}`
        : 'nodePortAddresses: ["primary"]',
      'oomScoreAdj: 0',
      'nftables:',
      `  masqueradeAll: ${opts.masqueradeAll ? 'true' : 'false'}`,
      '  syncPeriod: 30s',
      // Service changes reach the tables within a quarter second, without a sync per event.
      '  minSyncPeriod: 250ms',
      'conntrack:',
      '  maxPerCore: 0',
      '  min: 0',
      '  tcpEstablishedTimeout: 0s',
      '  tcpCloseWaitTimeout: 0s',
      '  udpTimeout: 0s',
      '  udpStreamTimeout: 0s',
      '',
    ].join('\n'),
  );

  const logFile = join(opts.dir, 'kube-proxy.log');
  const healthzUrl = `http://127.0.0.1:${healthzPort}/healthz`;
  let proc: Proc | undefined;
  let stopping = false;
  let restarts = 0;
  const onExit = (): void => {
    if (proc) {
      try {
        process.kill(-proc.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  };
  process.on('exit', onExit);

  const launch = (): void => {
    const p = startProc('kube-proxy', binaryPath('kube-proxy'), [`--config=${config}`, '--v=1'], logFile);
    proc = p;
    void p.exited.then(async (code) => {
      if (stopping || proc !== p) return;
      restarts++;
      log(`kube-proxy exited (${code}); restarting: ${logTail(logFile, 3).replaceAll('\n', ' | ')}`);
      await sleep(1000);
      if (!stopping) launch();
    });
  };
  launch();

  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    if (proc) await stopPid(proc.pid);
    process.off('exit', onExit);
    await deleteTables();
  };

  try {
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    for (;;) {
      if (restarts > 3) throw new Error(`kube-proxy keeps exiting:\n${logTail(logFile)}`);
      if ((await healthz(healthzUrl)) && (await tableExists('ip'))) break;
      if (Date.now() > deadline)
        throw new Error(`kube-proxy not healthy after ${opts.timeoutMs ?? 60_000} ms:\n${logTail(logFile)}`);
      await sleep(200);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  log(`kube-proxy (nftables) synced as node ${opts.nodeName} in ${Date.now() - t0} ms`);

  return {
    pid: () => proc?.pid ?? 0,
    logFile,
    healthzUrl,
    restarts: () => restarts,
    async waitForClusterIp(ip, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          const { stdout } = await run('nft', ['list', 'map', 'ip', 'kube-proxy', 'service-ips']);
          if (new RegExp(`\\b${ip.replaceAll('.', '\\.')}\\s*\\.`).test(stdout)) return;
        } catch {
          // not created yet
        }
        if (Date.now() > deadline)
          throw new Error(
            `kube-proxy has not programmed ClusterIP ${ip} after ${timeoutMs} ms:\n${logTail(logFile)}`,
          );
        await sleep(100);
      }
    },
    stop,
  };
}

async function healthz(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

async function tableExists(family: string): Promise<boolean> {
  try {
    await run('nft', ['list', 'table', family, 'kube-proxy']);
    return true;
  } catch {
    return false;
  }
}

/** Deletes kube-proxy's nftables tables (left by a stopped or crashed kube-proxy). */
export async function deleteTables(): Promise<void> {
  for (const [family, name] of TABLES) {
    try {
      await run('nft', ['delete', 'table', family, name]);
    } catch {
      // not there
    }
  }
}
