// Pod sandboxes without a control plane: addressing, pod-to-pod and host-to-pod traffic, the
// files `ip netns exec` shows a pod, IP allocation across restarts, and a clean teardown.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get, type Server } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkHost,
  HOST_STATE_FILE,
  leftovers,
  type PodNetwork,
  type PodSandbox,
  preparePodNetwork,
} from './pod-network.js';
import { execIn, httpGetIn, serveIn } from './testing.js';

const run = promisify(execFile);
const POD_CIDR = '10.244.7.0/24';

/** GET from inside a sandbox: the body only. */
async function getFrom(sb: PodSandbox, url: string): Promise<string> {
  return (await httpGetIn(sb, url)).replace(/^200 /, '');
}

function getFromHost(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

async function nftTables(): Promise<string> {
  return (await run('nft', ['list', 'tables'])).stdout;
}

describe('pod network', () => {
  let net: PodNetwork;
  let stateDir: string;
  let a: PodSandbox;
  let b: PodSandbox;
  const children: ChildProcess[] = [];
  let tablesBefore = '';
  let forwardBefore = '';

  beforeAll(async () => {
    // Fails (not skips) on a host without root, iproute2 or nftables, naming what to install.
    checkHost();
    stateDir = mkdtempSync(join(tmpdir(), 'conflux-podnet-'));
    net = await preparePodNetwork({ stateDir });
    // Read once this network holds the host (another test file's may have held it until now).
    tablesBefore = await nftTables();
    forwardBefore = `${(JSON.parse(readFileSync(HOST_STATE_FILE, 'utf8')) as { ipForward: string }).ipForward}\n`;
    const t0 = performance.now();
    a = await net.setupPod({
      namespace: 'default',
      name: 'a',
      uid: 'uid-a',
      hostname: 'a',
      podCidr: POD_CIDR,
    });
    const setupMs = performance.now() - t0;
    b = await net.setupPod({
      namespace: 'conflux',
      name: 'web-0',
      uid: 'uid-b',
      hostname: 'web-0',
      subdomain: 'web',
      podCidr: POD_CIDR,
    });
    console.log(`sandbox setup: ${setupMs.toFixed(0)} ms (first), host address ${net.hostAddress}`);
    // Long: another test file's pod network may hold the host (one per host) for minutes.
  }, 15 * 60_000);

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await net?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('gives each pod its own address from the pod CIDR', () => {
    expect(a.ip).toMatch(/^10\.244\.7\.\d+$/);
    expect(b.ip).toMatch(/^10\.244\.7\.\d+$/);
    expect(a.ip).not.toBe(b.ip);
    expect(a.execPrefix).toEqual(['ip', 'netns', 'exec', a.netns]);
  });

  it('setupPod is idempotent per uid', async () => {
    const again = await net.setupPod({
      namespace: 'default',
      name: 'a',
      uid: 'uid-a',
      hostname: 'a',
      podCidr: POD_CIDR,
    });
    expect(again).toEqual(a);
  });

  it('pods reach each other, and the host reaches pods from the host address', async () => {
    children.push(await serveIn(b, 'b', 8080));
    children.push(await serveIn(a, 'a', 8080));
    expect(await getFrom(a, `http://${b.ip}:8080/`)).toBe(`hello from b to ${a.ip}`);
    expect(await getFrom(b, `http://${a.ip}:8080/`)).toBe(`hello from a to ${b.ip}`);
    expect(await getFromHost(`http://${a.ip}:8080/`)).toBe(`hello from a to ${net.hostAddress}`);
  });

  it('pods reach host processes on the host address', async () => {
    const srv: Server = (await import('node:http')).createServer((req, res) =>
      res.end(`host saw ${req.socket.remoteAddress}`),
    );
    await new Promise<void>((r) => srv.listen(0, net.hostAddress, r));
    const port = (srv.address() as { port: number }).port;
    try {
      expect(await getFrom(a, `http://${net.hostAddress}:${port}/`)).toBe(`host saw ${a.ip}`);
    } finally {
      srv.close();
    }
  });

  it('shows each pod its resolv.conf, hosts and hostname', async () => {
    const cat = (sb: PodSandbox, file: string) => execIn(sb, ['cat', file]);
    expect(await cat(b, '/etc/resolv.conf')).toBe(
      'nameserver 10.96.0.10\nsearch conflux.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n',
    );
    expect(await cat(b, '/etc/hosts')).toContain(`${b.ip}\tweb-0.web.conflux.svc.cluster.local\tweb-0`);
    expect(await cat(a, '/etc/hosts')).toContain(`${a.ip}\ta\n`);
    const stdout = await execIn(a, ['getent', 'ahostsv4', 'a']);
    expect(stdout.split(/\s+/)[0]).toBe(a.ip);
  });

  it('a pod sees only eth0 and lo, with the default route through the host', async () => {
    const { stdout: links } = await run('ip', ['-n', a.netns, '-o', 'link', 'show']);
    expect(
      links
        .split('\n')
        .filter(Boolean)
        .map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1]),
    ).toEqual(['lo', 'eth0']);
    const { stdout: routes } = await run('ip', ['-n', a.netns, 'route', 'show', 'default']);
    expect(routes).toContain('default via 169.254.1.1 dev eth0 onlink');
  });

  it('a re-created pod gets a fresh IP; a restarted owner keeps live IPs', async () => {
    const c1 = await net.setupPod({
      namespace: 'default',
      name: 'c',
      uid: 'uid-c1',
      hostname: 'c',
      podCidr: POD_CIDR,
    });
    await net.teardownPod('uid-c1');
    await net.teardownPod('uid-c1'); // idempotent
    const c2 = await net.setupPod({
      namespace: 'default',
      name: 'c',
      uid: 'uid-c2',
      hostname: 'c',
      podCidr: POD_CIDR,
    });
    expect(c2.ip).not.toBe(c1.ip);

    // A second owner over the same state dir (a restarted kubelet) adopts the live sandboxes.
    const restarted = await preparePodNetwork({ stateDir });
    expect(restarted.sandbox('uid-a')).toEqual(a);
    expect(restarted.sandbox('uid-c2')).toEqual(c2);
    const d = await restarted.setupPod({
      namespace: 'default',
      name: 'd',
      uid: 'uid-d',
      hostname: 'd',
      podCidr: POD_CIDR,
    });
    expect([a.ip, b.ip, c1.ip, c2.ip]).not.toContain(d.ip);
    // Pods created before the restart still talk.
    expect(await getFrom(d, `http://${b.ip}:8080/`)).toBe(`hello from b to ${d.ip}`);
    net = restarted;
  });

  it('refuses pod CIDRs it cannot route and keeps no record of the attempt', async () => {
    await expect(
      net.setupPod({
        namespace: 'default',
        name: 'x',
        uid: 'uid-x',
        hostname: 'x',
        podCidr: '10.244.9.0/31',
      }),
    ).rejects.toThrow(/too small/);
    expect(net.sandbox('uid-x')).toBeUndefined();
    // Loopback addresses are not routable between namespaces: refused with the fix in the message.
    await expect(
      net.setupPod({
        namespace: 'default',
        name: 'x',
        uid: 'uid-x',
        hostname: 'x',
        podCidr: '127.244.0.0/24',
      }),
    ).rejects.toThrow(/loopback range.*clusterCidr '10\.244\.0\.0\/16'/);
    await expect(
      net.setupPod({ namespace: 'default', name: 'x', uid: 'uid-x', hostname: 'x', podCidr: '10.96.3.0/24' }),
    ).rejects.toThrow(/overlaps the service CIDR/);
    expect(net.sandbox('uid-x')).toBeUndefined();
    await expect(preparePodNetwork({ stateDir, serviceCidr: '127.96.0.0/16' })).rejects.toThrow(
      /loopback range/,
    );
  });

  it('stop() leaves nothing behind', async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    await net.stop();
    expect(leftovers()).toEqual({ netns: [], links: [], etcNetns: [] });
    const { stdout: netns } = await run('ip', ['netns', 'list']);
    expect(netns).not.toMatch(/cfx-/);
    const { stdout: links } = await run('ip', ['-o', 'link', 'show']);
    expect(links).not.toMatch(/cfx[vp-]/);
    const { stdout: routes } = await run('ip', ['route', 'show']);
    expect(routes).not.toContain('10.244.7.');
    expect(await nftTables()).toBe(tablesBefore);
    expect(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8')).toBe(forwardBefore);
    // The host address is gone too: nothing listens or routes there any more.
    await expect(
      new Promise((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(0, '10.245.0.1', () => s.close(resolve));
      }),
    ).rejects.toThrow(/EADDRNOTAVAIL/);
  });

  it('a crashed owner leaves leftovers that the next start sweeps', async () => {
    const crashDir = mkdtempSync(join(tmpdir(), 'conflux-podnet-crash-'));
    const script = [
      `import { preparePodNetwork } from ${JSON.stringify(join(import.meta.dirname, 'pod-network.ts'))};`,
      `const net = await preparePodNetwork({ stateDir: ${JSON.stringify(crashDir)} });`,
      `await net.setupPod({ namespace: 'default', name: 'z', uid: 'uid-z', hostname: 'z', podCidr: '${POD_CIDR}' });`,
      "console.log('ready');",
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`crash child exited with ${code}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(leftovers().netns).toHaveLength(1);
    const links = leftovers().links;
    expect(links).toContain('cfx-host');
    expect(links.filter((l) => l !== 'cfx-host')).toEqual([expect.stringMatching(/^cfxv[0-9a-f]{11}$/)]);

    const fresh = mkdtempSync(join(tmpdir(), 'conflux-podnet-'));
    const next = await preparePodNetwork({ stateDir: fresh });
    expect(leftovers().netns).toEqual([]);
    await next.stop();
    expect(leftovers()).toEqual({ netns: [], links: [], etcNetns: [] });
    rmSync(fresh, { recursive: true, force: true });
    rmSync(crashDir, { recursive: true, force: true });
  });
});
