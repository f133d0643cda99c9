// Cluster services on the pod network, against the real control plane: kube-proxy (nftables) and
// CoreDNS as host processes, pod sandboxes resolving and connecting through Service ClusterIPs
// exactly as Conflux's pods will. The Node and the pod's status are written here the way the
// kubelet writes them, so this runs without a kubelet.

import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBinaries } from '../binaries.js';
import { type ControlPlane, startControlPlane } from '../control-plane.js';
import { until as untilDone } from '../proc.js';
import { type CoreDns, startCoreDns } from './coredns.js';
import { type KubeProxy, startKubeProxy } from './kube-proxy.js';
import { getJson, kubectl } from './kubectl.js';
import { checkHost, leftovers, type PodNetwork, type PodSandbox, preparePodNetwork } from './pod-network.js';
import { execIn, httpGetIn, nodeIn, serveIn } from './testing.js';

const run = promisify(execFile);
const NODE = 'cfx-node-1';
const NS = 'conflux-net';

interface Slice {
  endpoints?: { addresses: string[]; hostname?: string; conditions?: { ready?: boolean } }[];
  ports?: { port: number }[];
}

const until = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000) =>
  untilDone(what, fn, timeoutMs);

/**
 * The `kubernetes` Service's endpoint is the API server's advertised address. Until the control
 * plane binds the pod network's host address itself, relay that address to its loopback listener
 * (null when the endpoint already answers).
 */
async function apiserverRelay(cp: ControlPlane): Promise<Server | null> {
  const slice = await until('the kubernetes EndpointSlice', async () => {
    const s = await getJson<Slice>(cp.kubeconfigPath, ['-n', 'default', 'endpointslice', 'kubernetes']);
    return s?.endpoints?.[0] ? s : undefined;
  });
  const address = slice.endpoints![0]!.addresses[0]!;
  const port = slice.ports![0]!.port;
  const answers = await new Promise<boolean>((resolve) => {
    const c = createConnection({ host: address, port, timeout: 1000 }, () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
    c.on('timeout', () => {
      c.destroy();
      resolve(false);
    });
  });
  if (answers) return null;
  const target = new URL(cp.apiserverUrl);
  const relay = createServer((down) => {
    const up = createConnection({ host: target.hostname, port: Number(target.port) });
    down.pipe(up).pipe(down);
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(port, address, resolve));
  console.log(`relaying the API server's advertised ${address}:${port} to ${cp.apiserverUrl}`);
  return relay;
}

describe('cluster services on the pod network', () => {
  const log = (line: string) => console.log(line);
  let work: string;
  let net: PodNetwork;
  let cp: ControlPlane;
  let proxy: KubeProxy;
  let dns: CoreDns;
  let relay: Server | null = null;
  let heartbeat: NodeJS.Timeout | undefined;
  let client: PodSandbox;
  let web: PodSandbox;
  let webServer: ChildProcess | undefined;
  let webSvcIp = '';
  let tablesBefore = '';

  beforeAll(async () => {
    // Fails (not skips) on a host without root, iproute2 or nftables, naming what to install.
    checkHost();
    await ensureBinaries(log);
    work = mkdtempSync(join(tmpdir(), 'conflux-cluster-net-'));
    net = await preparePodNetwork({ stateDir: join(work, 'podnet') });
    tablesBefore = (await run('nft', ['list', 'tables'])).stdout;
    cp = await startControlPlane({ serviceCidr: '10.96.0.0/16', clusterCidr: '10.244.0.0/16', log });
    const k = (args: string[], input?: string) => kubectl(cp.kubeconfigPath, args, { input });

    // The Node, registered as a kubelet would: addresses, Ready, and a heartbeat lease.
    const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await k(
      ['create', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE, 'kubernetes.io/os': 'linux' } },
        status: {
          addresses: [
            { type: 'InternalIP', address: net.hostAddress },
            { type: 'Hostname', address: NODE },
          ],
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'KubeletReady',
              message: 'ready',
              lastHeartbeatTime: now(),
              lastTransitionTime: now(),
            },
          ],
        },
      }),
    );
    const renew = async () => {
      await k(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: NODE, namespace: 'kube-node-lease' },
          spec: {
            holderIdentity: NODE,
            leaseDurationSeconds: 40,
            renewTime: new Date().toISOString().replace('Z', '000Z'),
          },
        }),
      ).catch(() => {});
    };
    await renew();
    heartbeat = setInterval(renew, 10_000);
    const podCidr = await until('the Node podCIDR', async () => {
      const n = await getJson<{ spec?: { podCIDR?: string } }>(cp.kubeconfigPath, ['node', NODE]);
      return n?.spec?.podCIDR;
    });
    log(`node ${NODE} has podCIDR ${podCidr}`);

    relay = await apiserverRelay(cp);
    proxy = await startKubeProxy({
      dir: join(work, 'kube-proxy'),
      kubeconfigPath: join(cp.dir, 'kube-proxy.kubeconfig'),
      adminKubeconfigPath: cp.kubeconfigPath,
      nodeName: NODE,
      clusterCidr: cp.clusterCidr,
      log,
    });
    dns = await startCoreDns({
      dir: join(work, 'coredns'),
      kubeconfigPath: cp.kubeconfigPath,
      listenAddress: net.hostAddress,
      dnsServiceIp: cp.dnsServiceIp,
      log,
    });

    // Two pods: a client, and web-0 of a StatefulSet-style headless Service `web`.
    await k(['create', 'namespace', NS]);
    const t0 = performance.now();
    client = await net.setupPod({
      namespace: NS,
      name: 'client',
      uid: 'uid-client',
      hostname: 'client',
      podCidr,
    });
    log(`sandbox setup ${(performance.now() - t0).toFixed(0)} ms`);
    web = await net.setupPod({
      namespace: NS,
      name: 'web-0',
      uid: 'uid-web-0',
      hostname: 'web-0',
      subdomain: 'web',
      podCidr,
    });
    webServer = await serveIn(web, 'web-0', 8080);

    await until('the default ServiceAccount', () => getJson(cp.kubeconfigPath, ['-n', NS, 'sa', 'default']));
    await k(
      ['-n', NS, 'apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'v1',
            kind: 'Service',
            metadata: { name: 'web' },
            spec: { clusterIP: 'None', selector: { app: 'web' }, ports: [{ name: 'http', port: 8080 }] },
          },
          {
            apiVersion: 'v1',
            kind: 'Service',
            metadata: { name: 'web-svc' },
            spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
          },
          {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: 'web-0', labels: { app: 'web' } },
            spec: {
              nodeName: NODE,
              hostname: 'web-0',
              subdomain: 'web',
              containers: [{ name: 'web', image: 'conflux/web:test', ports: [{ containerPort: 8080 }] }],
            },
          },
        ],
      }),
    );
    // The pod's status as the kubelet reports it once the sandbox and container run.
    const ready = ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({
      type,
      status: 'True',
      lastTransitionTime: now(),
    }));
    await k([
      '-n',
      NS,
      'patch',
      'pod',
      'web-0',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          phase: 'Running',
          hostIP: net.hostAddress,
          hostIPs: [{ ip: net.hostAddress }],
          podIP: web.ip,
          podIPs: [{ ip: web.ip }],
          startTime: now(),
          conditions: ready,
        },
      }),
    ]);
    webSvcIp = (await getJson<{ spec: { clusterIP: string } }>(cp.kubeconfigPath, [
      '-n',
      NS,
      'service',
      'web-svc',
    ]))!.spec.clusterIP;
    await until('web-0 in the web EndpointSlice with its hostname', async () => {
      const list = await getJson<{ items: Slice[] }>(cp.kubeconfigPath, [
        '-n',
        NS,
        'endpointslice',
        '-l',
        'kubernetes.io/service-name=web',
      ]);
      const ep = list?.items.flatMap((s) => s.endpoints ?? []).find((e) => e.addresses.includes(web.ip));
      return ep?.hostname === 'web-0' && ep.conditions?.ready ? true : undefined;
    });
    await proxy.waitForClusterIp(webSvcIp);
    await proxy.waitForClusterIp('10.96.0.1');
    await proxy.waitForClusterIp(cp.dnsServiceIp);
  }, 45 * 60_000);

  afterAll(async () => {
    if (heartbeat) clearInterval(heartbeat);
    webServer?.kill('SIGKILL');
    await dns?.stop();
    await proxy?.stop();
    relay?.close();
    await cp?.stop();
    await net?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('uses the cluster DNS Service address the pods are told about', () => {
    expect(cp.dnsServiceIp).toBe('10.96.0.10');
    expect(net.dnsServiceIp).toBe(cp.dnsServiceIp);
  });

  it('CoreDNS answers for Services, directly and through the kube-dns ClusterIP', async () => {
    expect(await dns.resolver().resolve4(`web-svc.${NS}.svc.cluster.local`)).toEqual([webSvcIp]);
    const viaService = new (await import('node:dns/promises')).Resolver({ timeout: 2000, tries: 1 });
    viaService.setServers([cp.dnsServiceIp]);
    expect(await viaService.resolve4('kubernetes.default.svc.cluster.local')).toEqual(['10.96.0.1']);
  });

  it('a pod resolves Services, the API server and headless pod names through its resolv.conf', async () => {
    const resolve = async (name: string) =>
      (await execIn(client, ['getent', 'ahostsv4', name])).split(/\s+/)[0];
    const t0 = performance.now();
    expect(await resolve('web-svc')).toBe(webSvcIp);
    console.log(`DNS answer in a pod (search path, getaddrinfo): ${(performance.now() - t0).toFixed(0)} ms`);
    expect(await resolve(`web-svc.${NS}`)).toBe(webSvcIp);
    expect(await resolve('kubernetes.default.svc')).toBe('10.96.0.1');
    expect(await resolve('kubernetes.default.svc.cluster.local')).toBe('10.96.0.1');
    expect(await resolve(`web-0.web.${NS}.svc.cluster.local`)).toBe(web.ip);
    expect(await resolve('web-0.web')).toBe(web.ip);
  });

  it('names outside the cluster are NXDOMAIN at once', async () => {
    const script =
      "const t=Date.now();require('dns').promises.resolve4('conflux.example.com').then(a=>console.log('found '+a),e=>console.log(e.code+' '+(Date.now()-t)))";
    const [code, ms] = (await nodeIn(client, script)).split(' ');
    expect(code).toBe('ENOTFOUND');
    expect(Number(ms)).toBeLessThan(1000);
  });

  it('a pod reaches a process in another pod through its ClusterIP, by name, keeping its own address', async () => {
    expect(await httpGetIn(client, 'http://web-svc/')).toBe(`200 hello from web-0 to ${client.ip}`);
    expect(await httpGetIn(client, `http://web-svc.${NS}.svc.cluster.local/`)).toBe(
      `200 hello from web-0 to ${client.ip}`,
    );
  });

  it('a pod reaches itself through its own Service (hairpin)', async () => {
    expect(await httpGetIn(web, 'http://web-svc/')).toMatch(/^200 hello from web-0 to /);
  });

  it('the host reaches a ClusterIP', async () => {
    const res = await fetch(`http://${webSvcIp}/`, { signal: AbortSignal.timeout(5000) });
    expect(await res.text()).toMatch(/^hello from web-0 to /);
  });

  it('a pod reaches the API server over TLS at kubernetes.default.svc', async () => {
    const ca = JSON.stringify(cp.caPem);
    const out = await httpGetIn(client, 'https://kubernetes.default.svc.cluster.local/version', `,ca:${ca}`);
    expect(out).toMatch(/^200 /);
    expect(JSON.parse(out.slice(4)).gitVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(await httpGetIn(client, 'https://kubernetes.default.svc/livez', `,ca:${ca}`)).toBe('200 ok');
  });

  it('kube-proxy stays up, and stopping everything leaves no tables, namespaces or links', async () => {
    expect(proxy.restarts()).toBe(0);
    webServer?.kill('SIGKILL');
    await dns.stop();
    await proxy.stop();
    await net.stop();
    expect((await run('nft', ['list', 'tables'])).stdout).toBe(tablesBefore);
    expect(leftovers()).toEqual({ netns: [], links: [], etcNetns: [] });
  });
});
