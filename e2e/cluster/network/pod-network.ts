// Pod networking for Conflux's process-based Kubernetes nodes: one network namespace per pod,
// routed (no bridge), in the style of Calico. Every packet a pod sends leaves through its veth
// into the host namespace, so Service DNAT (kube-proxy) and its replies always pass the host's
// conntrack, whichever pod or host process is on either end.
//
//   pod netns cfx-<hash>:  eth0 <ip>/32, lo up, default via 169.254.1.1 (a static neighbour whose
//                          MAC is the host veth's, so no ARP is needed to leave the pod)
//   host:                  cfxv<hash> (proxy_arp), route <ip>/32 dev cfxv<hash> src <hostAddress>
//                          cfx-host (dummy, or an empty bridge on kernels without dummy) holding
//                          <hostAddress>, the address pods use to reach host processes.
//
// Names: netns /^cfx-[0-9a-f]{11}$/, links /^cfx[vp][0-9a-f]{11}$/ and `cfx-host`. They never
// match the chaos harness (`cfxc<n>-...`, 10.77.x.x, table conflux-chaos), which this module
// leaves alone. Only one pod network runs per host (routes, cfx-host and kube-proxy's nftables
// table are host-wide): a lock file serialises them.
//
// State (`stateDir/pods/<uid>.json`, written before anything is created) is the only record of
// which IPs are taken, so a restarted owner with the same stateDir adopts live sandboxes and never
// hands out their IPs; anything with our prefix that no record explains is a leftover and is swept.

import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PodSandbox {
  netns: string;
  ip: string;
  /** argv prefix running a command inside the sandbox: ['ip','netns','exec',netns] */
  execPrefix: string[];
  /** The host end of the pod's veth. */
  hostVeth: string;
  /** The pod CIDR the IP came from. */
  podCidr: string;
}

export interface PodSpecForNetwork {
  namespace: string;
  name: string;
  uid: string;
  hostname: string;
  /** The Node's spec.podCIDR (an IPv4 CIDR, /30 or larger). */
  podCidr: string;
  /** spec.subdomain: when set, /etc/hosts also names `<hostname>.<subdomain>.<ns>.svc.<domain>`. */
  subdomain?: string;
}

export interface PodNetwork {
  /** Host address every pod reaches (on `cfx-host`); the API server should bind and advertise it. */
  hostAddress: string;
  serviceCidr: string;
  /** Cluster DNS address written into every pod's resolv.conf (10th address of serviceCidr). */
  dnsServiceIp: string;
  clusterDomain: string;
  setupPod(pod: PodSpecForNetwork): Promise<PodSandbox>;
  teardownPod(uid: string): Promise<void>;
  /** The sandbox of a live pod, if any. */
  sandbox(uid: string): PodSandbox | undefined;
  /** Removes every namespace, veth, route, /etc/netns dir and state file it made. */
  stop(): Promise<void>;
}

export interface PodNetworkOptions {
  stateDir: string;
  /** Default 10.96.0.0/16. */
  serviceCidr?: string;
  /** Default 10.245.0.1. Must lie outside the cluster and service CIDRs. */
  hostAddress?: string;
  /** Default cluster.local. */
  clusterDomain?: string;
  /** How long to wait for another process's pod network on this host to stop. Default 10 min. */
  lockTimeoutMs?: number;
}

export const HOST_LINK = 'cfx-host';
/** Every host veth has this MAC, so a pod's static gateway neighbour never goes stale. */
const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';
const GATEWAY = '169.254.1.1';
const NETNS_RE = /^cfx-[0-9a-f]{11}$/;
const LINK_RE = /^cfx[vp][0-9a-f]{11}$/;
const LOCK_FILE = '/run/conflux-pod-network.lock';
/** The host's settings from before the first owner changed them: `{ ipForward }`. */
export const HOST_STATE_FILE = '/run/conflux-pod-network.host.json';

/** What pod networking needs from the host; the message says exactly what is missing. */
export function checkHost(): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (network namespaces and routes need CAP_NET_ADMIN)');
  for (const [cmd, pkg] of [
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
    ['unshare', 'util-linux'],
  ] as const) {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    } catch {
      missing.push(`the ${cmd} command (Debian package ${pkg}: apt-get install -y ${pkg})`);
    }
  }
  if (missing.length === 0) {
    for (const args of [
      ['netns', 'list'],
      ['-br', 'link'],
    ]) {
      try {
        execFileSync('ip', args, { stdio: 'pipe' });
      } catch (err) {
        missing.push(`a usable "ip ${args.join(' ')}" (${(err as Error).message.split('\n')[0]})`);
      }
    }
    try {
      execFileSync('nft', ['list', 'tables'], { stdio: 'pipe' });
    } catch (err) {
      missing.push(`a usable nftables kernel ("nft list tables": ${(err as Error).message.split('\n')[0]})`);
    }
  }
  if (missing.length > 0)
    throw new Error(`Conflux pod networking cannot run on this host; missing: ${missing.join('; ')}`);
}

/** 11 hex digits of sha256(uid): names fit the 15-character interface limit with a 4-char prefix. */
export function podHash(uid: string): string {
  return createHash('sha256').update(uid).digest('hex').slice(0, 11);
}

export function netnsName(uid: string): string {
  return `cfx-${podHash(uid)}`;
}

export function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new Error(`not an IPv4 address: ${ip}`);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function intToIp(v: number): string {
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
}

export function parseCidr(cidr: string): { base: number; bits: number; size: number } {
  const [addr, len] = cidr.split('/');
  const bits = Number(len);
  if (!addr || !Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const size = 2 ** (32 - bits);
  const base = bits === 0 ? 0 : (ipToInt(addr) & (~(size - 1) >>> 0)) >>> 0;
  return { base, bits, size };
}

export function cidrContains(cidr: string, ip: string): boolean {
  const { base, size } = parseCidr(cidr);
  const v = ipToInt(ip);
  return v >= base && v < base + size;
}

export function cidrsOverlap(a: string, b: string): boolean {
  const x = parseCidr(a);
  const y = parseCidr(b);
  return x.base < y.base + y.size && y.base < x.base + x.size;
}

/**
 * Every network namespace owns 127.0.0.0/8 as its loopback: a pod dialing another pod's (or a
 * ClusterIP's) 127.x address reaches itself, and the host cannot route to pods there at all.
 */
function rejectLoopback(what: string, cidr: string): void {
  if (cidrsOverlap(cidr, '127.0.0.0/8'))
    throw new Error(
      `${what} ${cidr} is in the loopback range 127.0.0.0/8, which every network namespace keeps for ` +
        'itself: a pod dialing another pod or a ClusterIP there would reach its own loopback. Start the ' +
        "control plane with clusterCidr '10.244.0.0/16' and serviceCidr '10.96.0.0/16'.",
    );
}

/** The n-th address of a CIDR (10 gives the cluster DNS address by convention). */
export function nthAddress(cidr: string, n: number): string {
  return intToIp((parseCidr(cidr).base + n) >>> 0);
}

interface PodRecord {
  uid: string;
  namespace: string;
  name: string;
  netns: string;
  hostVeth: string;
  ip: string;
  podCidr: string;
}

interface LockContent {
  pid: number;
  stateDir: string;
}

export async function preparePodNetwork(opts: PodNetworkOptions): Promise<PodNetwork> {
  checkHost();
  const serviceCidr = opts.serviceCidr ?? '10.96.0.0/16';
  const hostAddress = opts.hostAddress ?? '10.245.0.1';
  const clusterDomain = opts.clusterDomain ?? 'cluster.local';
  const dnsServiceIp = nthAddress(serviceCidr, 10);
  if (cidrContains(serviceCidr, hostAddress))
    throw new Error(`hostAddress ${hostAddress} lies inside the service CIDR ${serviceCidr}`);
  rejectLoopback('service CIDR', serviceCidr);
  const stateDir = opts.stateDir;
  const podsDir = join(stateDir, 'pods');
  const ipamDir = join(stateDir, 'ipam');
  mkdirSync(podsDir, { recursive: true });
  mkdirSync(ipamDir, { recursive: true });

  await acquireLock(stateDir, opts.lockTimeoutMs ?? 600_000);

  // Records whose namespace still exists are adopted; the rest were never finished or are gone.
  const records = new Map<string, PodRecord>();
  const liveNetns = new Set(listNetns());
  for (const file of readdirSync(podsDir)) {
    if (!file.endsWith('.json')) continue;
    let rec: PodRecord | undefined;
    try {
      rec = JSON.parse(readFileSync(join(podsDir, file), 'utf8')) as PodRecord;
    } catch {
      rec = undefined;
    }
    if (rec && liveNetns.has(rec.netns) && linkExists(rec.hostVeth)) records.set(rec.uid, rec);
    else rmSync(join(podsDir, file), { force: true });
  }
  sweep(new Set([...records.values()].map((r) => r.netns)));

  // The host's own ip_forward, remembered across owner restarts and crashes (in /run, like the
  // lock) so the stop() of whichever owner comes last puts it back.
  const hostFile = HOST_STATE_FILE;
  let forwardWas = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  try {
    forwardWas = (JSON.parse(readFileSync(hostFile, 'utf8')) as { ipForward: string }).ipForward;
  } catch {
    writeJsonAtomic(hostFile, { ipForward: forwardWas });
  }
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  await ensureHostLink(hostAddress);

  // Serialises allocation and namespace changes in this process; one setup per uid at a time.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => {});
    return next;
  };
  const inFlight = new Map<string, Promise<PodSandbox>>();
  let stopped = false;

  const toSandbox = (r: PodRecord): PodSandbox => ({
    netns: r.netns,
    ip: r.ip,
    execPrefix: ['ip', 'netns', 'exec', r.netns],
    hostVeth: r.hostVeth,
    podCidr: r.podCidr,
  });

  const allocate = (podCidr: string): string => {
    const { base, size, bits } = parseCidr(podCidr);
    if (bits > 30) throw new Error(`pod CIDR ${podCidr} is too small`);
    const taken = new Set([...records.values()].map((r) => r.ip));
    // Round-robin from the last address handed out, so a re-created pod gets a fresh IP even
    // when its predecessor's was just released. Offsets 0 (network), 1 (gateway by convention)
    // and size-1 (broadcast) are never used.
    const key = podCidr.replace('/', '_');
    const lastFile = join(ipamDir, `${key}.last`);
    let last = 1;
    try {
      last = Number(readFileSync(lastFile, 'utf8')) || 1;
    } catch {
      // first allocation in this CIDR
    }
    const usable = size - 3;
    for (let i = 1; i <= usable; i++) {
      const off = ((last - 2 + i) % usable) + 2;
      const ip = intToIp((base + off) >>> 0);
      if (taken.has(ip)) continue;
      writeFileSync(lastFile, String(off));
      return ip;
    }
    throw new Error(`pod CIDR ${podCidr} has no free address (${taken.size} in use)`);
  };

  const doSetup = async (pod: PodSpecForNetwork): Promise<PodSandbox> => {
    const existing = records.get(pod.uid);
    if (existing) return toSandbox(existing);
    rejectLoopback('pod CIDR', pod.podCidr);
    if (cidrsOverlap(pod.podCidr, serviceCidr) || cidrContains(pod.podCidr, hostAddress))
      throw new Error(
        `pod CIDR ${pod.podCidr} overlaps the service CIDR ${serviceCidr} or the host address ${hostAddress}`,
      );
    const hash = podHash(pod.uid);
    const rec: PodRecord = {
      uid: pod.uid,
      namespace: pod.namespace,
      name: pod.name,
      netns: `cfx-${hash}`,
      hostVeth: `cfxv${hash}`,
      ip: allocate(pod.podCidr),
      podCidr: pod.podCidr,
    };
    // Recorded before creation: a crash from here on leaves a record the next start reconciles.
    records.set(rec.uid, rec);
    writeJsonAtomic(join(podsDir, `${encodeURIComponent(rec.uid)}.json`), rec);
    try {
      writeEtc(rec.netns, pod, rec.ip, clusterDomain, dnsServiceIp);
      await ipBatch(
        [],
        [
          `netns add ${rec.netns}`,
          `link add ${rec.hostVeth} address ${HOST_VETH_MAC} type veth peer name eth0 netns ${rec.netns}`,
        ],
      );
      writeSysctl(`net/ipv4/conf/${rec.hostVeth}/proxy_arp`, '1');
      writeSysctl(`net/ipv4/neigh/${rec.hostVeth}/proxy_delay`, '0');
      writeSysctl(`net/ipv6/conf/${rec.hostVeth}/disable_ipv6`, '1', true);
      await ipBatch(
        [],
        [`link set ${rec.hostVeth} up`, `route add ${rec.ip}/32 dev ${rec.hostVeth} src ${hostAddress}`],
      );
      await ipBatch(
        ['-n', rec.netns],
        [
          'link set lo up',
          `addr add ${rec.ip}/32 dev eth0`,
          'link set eth0 up',
          `route add ${GATEWAY} dev eth0 scope link`,
          `neigh replace ${GATEWAY} lladdr ${HOST_VETH_MAC} dev eth0 nud permanent`,
          `route add default via ${GATEWAY} dev eth0 onlink`,
        ],
      );
      return toSandbox(rec);
    } catch (err) {
      await removeSandbox(rec);
      throw err;
    }
  };

  const removeSandbox = async (rec: PodRecord): Promise<void> => {
    // The veth goes first: deleting one end destroys both at once, even while processes still
    // hold the namespace open, so its IP can never be live in two places.
    tryIp(['link', 'del', rec.hostVeth]);
    killNetnsPids(rec.netns);
    tryIp(['netns', 'del', rec.netns]);
    rmSync(join('/etc/netns', rec.netns), { recursive: true, force: true });
    rmSync(join(podsDir, `${encodeURIComponent(rec.uid)}.json`), { force: true });
    records.delete(rec.uid);
  };

  const net: PodNetwork = {
    hostAddress,
    serviceCidr,
    dnsServiceIp,
    clusterDomain,
    setupPod(pod) {
      if (stopped) return Promise.reject(new Error('the pod network is stopped'));
      if (!pod.uid) return Promise.reject(new Error('setupPod needs a pod uid'));
      const pending = inFlight.get(pod.uid);
      if (pending) return pending;
      const p = serial(() => doSetup(pod)).finally(() => inFlight.delete(pod.uid));
      inFlight.set(pod.uid, p);
      return p;
    },
    teardownPod(uid) {
      return serial(async () => {
        const rec = records.get(uid);
        if (rec) await removeSandbox(rec);
      });
    },
    sandbox(uid) {
      const rec = records.get(uid);
      return rec ? toSandbox(rec) : undefined;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await serial(async () => {
        for (const rec of [...records.values()]) await removeSandbox(rec);
        sweep(new Set());
        tryIp(['link', 'del', HOST_LINK]);
        if (forwardWas !== '1') writeFileSync('/proc/sys/net/ipv4/ip_forward', forwardWas);
        rmSync(podsDir, { recursive: true, force: true });
        rmSync(ipamDir, { recursive: true, force: true });
        rmSync(hostFile, { force: true });
        releaseLock(stateDir);
      });
    },
  };
  return net;
}

/**
 * Removes pod-network leftovers of a crashed run: namespaces (and the processes in them), links
 * and /etc/netns dirs with our prefix, except the namespaces in `keep`.
 */
export function sweep(keep: Set<string> = new Set()): void {
  for (const ns of listNetns()) {
    if (!NETNS_RE.test(ns) || keep.has(ns)) continue;
    killNetnsPids(ns);
    tryIp(['netns', 'del', ns]);
  }
  const keepLinks = new Set([...keep].map((ns) => `cfxv${ns.slice(4)}`));
  for (const link of listLinks()) {
    if (LINK_RE.test(link) && !keepLinks.has(link)) tryIp(['link', 'del', link]);
  }
  if (existsSync('/etc/netns')) {
    for (const dir of readdirSync('/etc/netns')) {
      if (NETNS_RE.test(dir) && !keep.has(dir))
        rmSync(join('/etc/netns', dir), { recursive: true, force: true });
    }
    try {
      if (readdirSync('/etc/netns').length === 0) rmSync('/etc/netns', { recursive: true, force: true });
    } catch {
      // another tool owns it now
    }
  }
}

/** Pod-network objects on this host right now (for tests and diagnostics). */
export function leftovers(): { netns: string[]; links: string[]; etcNetns: string[] } {
  return {
    netns: listNetns().filter((n) => NETNS_RE.test(n)),
    links: listLinks().filter((l) => LINK_RE.test(l) || l === HOST_LINK),
    etcNetns: existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((d) => NETNS_RE.test(d)) : [],
  };
}

async function ensureHostLink(hostAddress: string): Promise<void> {
  if (!linkExists(HOST_LINK)) {
    // A dummy interface when the kernel has it; an empty bridge holds an address just as well.
    try {
      await run('ip', ['link', 'add', HOST_LINK, 'type', 'dummy']);
    } catch {
      await run('ip', ['link', 'add', HOST_LINK, 'type', 'bridge']);
    }
  }
  await ipBatch([], [`addr replace ${hostAddress}/32 dev ${HOST_LINK}`, `link set ${HOST_LINK} up`]);
  writeSysctl(`net/ipv6/conf/${HOST_LINK}/disable_ipv6`, '1', true);
}

function writeEtc(
  netns: string,
  pod: PodSpecForNetwork,
  ip: string,
  clusterDomain: string,
  dnsServiceIp: string,
): void {
  const dir = join('/etc/netns', netns);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'resolv.conf'),
    [
      `nameserver ${dnsServiceIp}`,
      `search ${pod.namespace}.svc.${clusterDomain} svc.${clusterDomain} ${clusterDomain}`,
      'options ndots:5',
      '',
    ].join('\n'),
  );
  const names = pod.subdomain
    ? `${pod.hostname}.${pod.subdomain}.${pod.namespace}.svc.${clusterDomain}\t${pod.hostname}`
    : pod.hostname;
  writeFileSync(
    join(dir, 'hosts'),
    [
      '# Kubernetes-managed hosts file (Conflux pod network).',
      '127.0.0.1\tlocalhost',
      '::1\tlocalhost ip6-localhost ip6-loopback',
      `${ip}\t${names}`,
      '',
    ].join('\n'),
  );
  // `ip netns exec` bind-mounts these over /etc/hostname too, so hostname-reading tools agree.
  writeFileSync(join(dir, 'hostname'), `${pod.hostname}\n`);
}

function writeSysctl(path: string, value: string, optional = false): void {
  try {
    writeFileSync(join('/proc/sys', path), value);
  } catch (err) {
    if (!optional)
      throw new Error(`cannot set ${path.replaceAll('/', '.')}=${value}: ${(err as Error).message}`);
  }
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value)}\n`);
  renameSync(tmp, path);
}

async function ipBatch(global: string[], lines: string[]): Promise<void> {
  const child = execFile('ip', [...global, '-batch', '-']);
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += String(d);
  });
  child.stdin?.end(`${lines.join('\n')}\n`);
  const code = await new Promise<number | null>((ok) => child.once('exit', ok));
  if (code !== 0)
    throw new Error(`ip ${global.join(' ')} -batch failed (${code}): ${stderr.trim()}\n${lines.join('\n')}`);
}

function tryIp(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

function listNetns(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter(Boolean);
  } catch {
    return [];
  }
}

function listLinks(): string[] {
  try {
    return execFileSync('ip', ['-o', 'link', 'show'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .split('\n')
      .map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? '')
      .filter(Boolean);
  } catch {
    return [];
  }
}

function linkExists(name: string): boolean {
  return existsSync(join('/sys/class/net', name));
}

function killNetnsPids(ns: string): void {
  let out = '';
  try {
    out = execFileSync('ip', ['netns', 'pids', ns], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return;
  }
  for (const pid of out.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLock(): LockContent | undefined {
  try {
    return JSON.parse(readFileSync(LOCK_FILE, 'utf8')) as LockContent;
  } catch {
    return undefined;
  }
}

/**
 * One pod network per host. The same stateDir may take over from a live holder (an owner
 * restarting in the same process); a different one waits until the holder stops or dies.
 */
async function acquireLock(stateDir: string, timeoutMs: number): Promise<void> {
  const mine: LockContent = { pid: process.pid, stateDir };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      writeFileSync(LOCK_FILE, JSON.stringify(mine), { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const held = readLock();
    if (!held || !pidAlive(held.pid) || held.stateDir === stateDir) {
      // Stale or ours: replace it unless someone else replaced it meanwhile.
      const again = readLock();
      if (JSON.stringify(again) === JSON.stringify(held)) {
        try {
          unlinkSync(LOCK_FILE);
        } catch {
          // raced with another taker; loop
        }
      }
      continue;
    }
    if (Date.now() > deadline)
      throw new Error(
        `another Conflux pod network (pid ${held.pid}, state ${held.stateDir}) holds ${LOCK_FILE}; only one runs per host`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

function releaseLock(stateDir: string): void {
  const held = readLock();
  if (held && held.pid === process.pid && held.stateDir === stateDir) rmSync(LOCK_FILE, { force: true });
}
