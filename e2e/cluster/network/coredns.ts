// Cluster DNS for Conflux's process-based cluster: the real CoreDNS binary as a host process,
// serving the cluster domain from the API through its `kubernetes` plugin.
//
// It listens on the pod network's host address (udp+tcp 53). Pods reach it the way they do in
// any cluster: through the `kube-system/kube-dns` Service, whose ClusterIP (10.96.0.10) is what
// every pod's resolv.conf names. The Service has no selector; this module owns its one
// EndpointSlice, which points at the host address. kube-proxy DNATs the ClusterIP to it.
// Why a Service rather than 10.96.0.10 on a host interface: kube-proxy drops new connections to
// service-range addresses it has no Service for, so an address in the range must be a Service to
// be reliable; and DNS traffic then crosses conntrack exactly like every other Service's.
//
// Names outside the cluster domain get NXDOMAIN at once (the machines have no upstream DNS);
// pass `upstreams` to forward them instead.

import { Resolver } from 'node:dns/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binaryPath } from '../binaries.js';
import { freePort, logTail, type Proc, sleep, startProc, stopPid } from '../proc.js';
import { kubectl } from './kubectl.js';

export interface CoreDnsOptions {
  /** Directory for the Corefile and log (the caller removes it). */
  dir: string;
  /** A kubeconfig allowed to list/watch Services, EndpointSlices, Pods and Namespaces, and to
   * create the kube-dns Service (the admin kubeconfig). */
  kubeconfigPath: string;
  /** Where CoreDNS listens: the pod network's host address. */
  listenAddress: string;
  /** The kube-dns Service ClusterIP; default 10.96.0.10. */
  dnsServiceIp?: string;
  /** Default cluster.local. */
  clusterDomain?: string;
  /** Upstream resolvers for other names (`forward`); default none: NXDOMAIN. */
  upstreams?: string[];
  /** Record TTL in seconds; default 5 (short, so tests see changes quickly). */
  ttl?: number;
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface CoreDns {
  pid: number;
  logFile: string;
  /** host:53 CoreDNS listens on. */
  listenAddress: string;
  dnsServiceIp: string;
  /** A resolver querying CoreDNS directly (not through the Service). */
  resolver(): Resolver;
  /** Removes the kube-dns Service and its EndpointSlice (best effort) and stops CoreDNS. */
  stop(): Promise<void>;
}

const SLICE_NAME = 'kube-dns-conflux-host';
const MANAGED_BY = 'coredns.conflux.dev';

export function corefile(o: {
  listenAddress: string;
  kubeconfigPath: string;
  clusterDomain: string;
  readyPort: number;
  ttl: number;
  upstreams: string[];
}): string {
  const bind = `  bind ${o.listenAddress}`;
  return [
    // No fallthrough: an unknown name or address in these zones is NXDOMAIN, not a forward.
    `${o.clusterDomain}:53 in-addr.arpa:53 ip6.arpa:53 {`,
    bind,
    '  errors',
    `  ready 127.0.0.1:${o.readyPort}`,
    `  kubernetes ${o.clusterDomain} in-addr.arpa ip6.arpa {`,
    `    kubeconfig ${JSON.stringify(o.kubeconfigPath)}`,
    '    pods insecure',
    `    ttl ${o.ttl}`,
    '  }',
    '  loadbalance',
    '}',
    '.:53 {',
    bind,
    '  errors',
    o.upstreams.length > 0
      ? `  forward . ${o.upstreams.join(' ')}`
      : '  template ANY ANY {\n    rcode NXDOMAIN\n  }',
    '}',
    '',
  ].join('\n');
}

/** The kube-dns Service (no selector) and the EndpointSlice that sends it to `address`. */
export function kubeDnsObjects(dnsServiceIp: string, address: string): string {
  const ports = [
    { name: 'dns', protocol: 'UDP', port: 53 },
    { name: 'dns-tcp', protocol: 'TCP', port: 53 },
  ];
  const labels = {
    'k8s-app': 'kube-dns',
    'kubernetes.io/name': 'CoreDNS',
    'kubernetes.io/cluster-service': 'true',
  };
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'kube-dns', namespace: 'kube-system', labels },
        spec: {
          type: 'ClusterIP',
          clusterIP: dnsServiceIp,
          ports: ports.map((p) => ({ ...p, targetPort: 53 })),
        },
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: SLICE_NAME,
          namespace: 'kube-system',
          labels: {
            'kubernetes.io/service-name': 'kube-dns',
            'endpointslice.kubernetes.io/managed-by': MANAGED_BY,
          },
        },
        addressType: 'IPv4',
        endpoints: [{ addresses: [address], conditions: { ready: true, serving: true, terminating: false } }],
        ports,
      },
    ],
  });
}

export async function startCoreDns(opts: CoreDnsOptions): Promise<CoreDns> {
  const log = opts.log ?? (() => {});
  const t0 = Date.now();
  const clusterDomain = opts.clusterDomain ?? 'cluster.local';
  const dnsServiceIp = opts.dnsServiceIp ?? '10.96.0.10';
  mkdirSync(opts.dir, { recursive: true });
  const readyPort = await freePort();
  const path = join(opts.dir, 'Corefile');
  writeFileSync(
    path,
    corefile({
      listenAddress: opts.listenAddress,
      kubeconfigPath: opts.kubeconfigPath,
      clusterDomain,
      readyPort,
      ttl: opts.ttl ?? 5,
      upstreams: opts.upstreams ?? [],
    }),
  );
  const logFile = join(opts.dir, 'coredns.log');
  const proc: Proc = startProc('coredns', binaryPath('coredns'), ['-conf', path], logFile);
  const onExit = (): void => {
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // gone
    }
  };
  process.on('exit', onExit);

  const resolver = (): Resolver => {
    const r = new Resolver({ timeout: 1000, tries: 2 });
    r.setServers([opts.listenAddress]);
    return r;
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all([
      kubectl(
        opts.kubeconfigPath,
        [
          '-n',
          'kube-system',
          'delete',
          'service/kube-dns',
          `endpointslice/${SLICE_NAME}`,
          '--ignore-not-found',
          '--wait=false',
        ],
        { timeoutMs: 3000 },
      ).catch(() => {}),
      stopPid(proc.pid),
    ]);
    process.off('exit', onExit);
  };

  try {
    await kubectl(opts.kubeconfigPath, ['apply', '-f', '-'], {
      input: kubeDnsObjects(dnsServiceIp, opts.listenAddress),
    });
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    // Ready once the kubernetes plugin has synced and the kubernetes Service resolves.
    for (;;) {
      if (proc.hasExited()) throw new Error(`coredns exited:\n${logTail(logFile)}`);
      const ready = await fetch(`http://127.0.0.1:${readyPort}/ready`, { signal: AbortSignal.timeout(2000) })
        .then((r) => r.status === 200)
        .catch(() => false);
      if (ready) {
        const a = await resolver()
          .resolve4(`kubernetes.default.svc.${clusterDomain}`)
          .catch(() => []);
        if (a.length > 0) break;
      }
      if (Date.now() > deadline)
        throw new Error(`coredns not ready after ${opts.timeoutMs ?? 60_000} ms:\n${logTail(logFile)}`);
      await sleep(100);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  log(`coredns ready on ${opts.listenAddress}:53 (Service ${dnsServiceIp}) in ${Date.now() - t0} ms`);
  return { pid: proc.pid, logFile, listenAddress: opts.listenAddress, dnsServiceIp, resolver, stop };
}
