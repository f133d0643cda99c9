// A real Kubernetes control plane for Conflux's operator tests, run as processes on 127.0.0.1:
// etcd (mutual TLS), kube-apiserver (client-certificate and ServiceAccount-token authentication,
// Node,RBAC authorization, the default admission plugins plus NodeRestriction and
// OwnerReferencesPermissionEnforcement), kube-controller-manager (all default controllers, each
// with its own ServiceAccount credentials) and kube-scheduler. Everything lives in one directory
// that stop() removes along with every process, so a test leaves nothing behind.
//
// Layout of `dir`: pki/ (CAs, certificates, keys, sa.key/sa.pub), *.kubeconfig, etcd/ (data),
// logs/<component>.log, state.json (pids and addresses, for `cli.ts status|down`).

import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Binary, binaryPath } from './binaries.js';
import { type CertKey, issue, kubeconfig, makeCa, newKeyPair, writePair } from './pki.js';
import {
  alive,
  freePort,
  httpsRequest,
  killNow,
  type Proc,
  runs,
  startProc,
  stopPid,
  type Tls,
  waitFor,
} from './proc.js';

const run = promisify(execFile);

export interface ControlPlaneOptions {
  /** Created if missing (must be empty if present) and removed by stop(). Default: a temp dir. */
  dir?: string;
  /**
   * Service ClusterIP range. Default 10.96.0.0/16. Not a loopback range: inside a pod's network
   * namespace all of 127.0.0.0/8 is that pod's own loopback.
   */
  serviceCidr?: string;
  /** Pod CIDR that kube-controller-manager splits into per-node /24s. Default 10.244.0.0/16. */
  clusterCidr?: string;
  /**
   * The address kube-apiserver binds and advertises (the `kubernetes` Service's endpoint), for
   * example the pod network's host address so that pods reach it through its ClusterIP. Default
   * 127.0.0.1, advertising the host's primary address (enough when no pod calls the API).
   */
  apiserverAddress?: string;
  /** Children outlive this process (the CLI's `up`); otherwise they are killed when it exits. */
  detached?: boolean;
  /** Keep `dir` on stop() (logs for debugging); also set by CONFLUX_KEEP_CLUSTER=1. */
  keepDir?: boolean;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Per-component readiness timeout. */
  timeoutMs?: number;
}

export interface Pki {
  dir: string;
  /** Cluster CA: signs the API server's serving cert, all client certs, and approved CSRs. */
  caCert: string;
  caKey: string;
  /** ServiceAccount token signing key (ES256) and its public half. */
  saKey: string;
  saPub: string;
  frontProxyCaCert: string;
  etcdCaCert: string;
}

export interface ControlPlane {
  dir: string;
  /** Admin kubeconfig (user `conflux-admin`, group system:masters). */
  kubeconfigPath: string;
  apiserverUrl: string;
  /** The cluster CA certificate (PEM): what kubeconfigs and kubelets trust. */
  caPem: string;
  pki: Pki;
  serviceCidr: string;
  clusterCidr: string;
  /** The 10th address of the service range, where cluster DNS will live. */
  dnsServiceIp: string;
  ports: { etcd: number; etcdPeer: number; apiserver: number; controllerManager: number; scheduler: number };
  pids: Record<string, number>;
  /** Milliseconds from the call to a ready control plane (binaries already built). */
  startMs: number;
  /** A client certificate from the cluster CA, as a kubeconfig: `<dir>/<file>.kubeconfig`. */
  issueKubeconfig(file: string, user: string, groups?: string[]): Promise<string>;
  /** kubectl with the admin kubeconfig (or pass --kubeconfig/--token yourself). */
  kubectl(args: string[], opts?: { input?: string }): Promise<{ stdout: string; stderr: string }>;
  /** An API request as the admin. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}

interface State {
  dir: string;
  kubeconfigPath: string;
  apiserverUrl: string;
  pids: Record<string, number>;
  keepDir: boolean;
}

const DEFAULT_SERVICE_CIDR = '10.96.0.0/16';
const DEFAULT_CLUSTER_CIDR = '10.244.0.0/16';

/** The n-th address of an IPv4 CIDR. */
export function nthAddress(cidr: string, n: number): string {
  const [ip] = cidr.split('/');
  const parts = ip!.split('.').map(Number);
  const value = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
  const v = (value + n) >>> 0;
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
}

/**
 * Starts a control plane; resolves once the API server is ready and the controllers run.
 * Ports are picked free just before use: if another process takes one first, starts again.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (e) {
      if (attempt >= 3 || !/address already in use/.test(String(e))) throw e;
      options.log?.(`a port was taken meanwhile; starting again (${String(e).split('\n')[0]})`);
      if (options.dir) rmSync(options.dir, { recursive: true, force: true });
    }
  }
}

async function startOnce(options: ControlPlaneOptions): Promise<ControlPlane> {
  const t0 = Date.now();
  const log = options.log ?? (() => {});
  const timeoutMs = options.timeoutMs ?? 60_000;
  const keepDir = options.keepDir ?? process.env.CONFLUX_KEEP_CLUSTER === '1';
  const dir = prepareDir(options.dir);
  const serviceCidr = options.serviceCidr ?? DEFAULT_SERVICE_CIDR;
  const clusterCidr = options.clusterCidr ?? DEFAULT_CLUSTER_CIDR;
  const pkiDir = join(dir, 'pki');
  const logDir = join(dir, 'logs');
  mkdirSync(pkiDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  mkdirSync(join(dir, 'etcd'), { recursive: true, mode: 0o700 });

  const procs: Proc[] = [];
  const pids: Record<string, number> = {};
  const onExit = (): void => {
    for (const p of procs) killNow(p.pid);
  };
  if (!options.detached) process.on('exit', onExit);
  const start = (name: string, args: string[]): Proc => {
    const proc = startProc(name, binaryPath(name as Binary), args, join(logDir, `${name}.log`));
    procs.push(proc);
    pids[name] = proc.pid;
    return proc;
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Reverse order: the controllers first, etcd last.
    for (const group of [['kube-scheduler', 'kube-controller-manager'], ['kube-apiserver'], ['etcd']]) {
      await Promise.all(procs.filter((p) => group.includes(p.name)).map((p) => stopPid(p.pid)));
    }
    process.off('exit', onExit);
    if (!keepDir) rmSync(dir, { recursive: true, force: true });
  };

  try {
    const ports = {
      etcd: await freePort(),
      etcdPeer: await freePort(),
      apiserver: await freePort(),
      controllerManager: await freePort(),
      scheduler: await freePort(),
    };
    const apiserverAddress = options.apiserverAddress ?? '127.0.0.1';
    const apiserverUrl = `https://${apiserverAddress}:${ports.apiserver}`;
    const serviceIp = nthAddress(serviceCidr, 1);

    // --- PKI -----------------------------------------------------------------------------------
    const ca = await makeCa('conflux-kubernetes-ca');
    const etcdCa = await makeCa('conflux-etcd-ca');
    const frontProxyCa = await makeCa('conflux-front-proxy-ca');
    const w = (name: string, pair: CertKey) => writePair(pkiDir, name, pair);
    const caFiles = w('ca', ca);
    const etcdCaFiles = w('etcd-ca', etcdCa);
    const frontProxyCaFiles = w('front-proxy-ca', frontProxyCa);
    const loopback = { dns: ['localhost'], ips: ['127.0.0.1'] };
    const etcdServer = w(
      'etcd-server',
      await issue(etcdCa, { cn: 'etcd', server: true, client: true, ...loopback }),
    );
    const etcdClient = w(
      'apiserver-etcd-client',
      await issue(etcdCa, { cn: 'kube-apiserver-etcd-client', client: true }),
    );
    const apiserverServing = w(
      'apiserver',
      await issue(ca, {
        cn: 'kube-apiserver',
        server: true,
        dns: [
          'localhost',
          'kubernetes',
          'kubernetes.default',
          'kubernetes.default.svc',
          'kubernetes.default.svc.cluster.local',
        ],
        ips: [...new Set(['127.0.0.1', apiserverAddress, serviceIp])],
      }),
    );
    const kubeletClient = w(
      'apiserver-kubelet-client',
      await issue(ca, { cn: 'kube-apiserver-kubelet-client', client: true }),
    );
    const frontProxyClient = w(
      'front-proxy-client',
      await issue(frontProxyCa, { cn: 'front-proxy-client', client: true }),
    );
    const kcmServing = w(
      'controller-manager-serving',
      await issue(ca, { cn: 'kube-controller-manager', server: true, ...loopback }),
    );
    const schedServing = w(
      'scheduler-serving',
      await issue(ca, { cn: 'kube-scheduler', server: true, ...loopback }),
    );
    const sa = await newKeyPair();
    const saKey = join(pkiDir, 'sa.key');
    const saPub = join(pkiDir, 'sa.pub');
    writeFileSync(saKey, sa.privatePem, { mode: 0o600 });
    writeFileSync(saPub, sa.publicPem);

    const admin = await issue(ca, { cn: 'conflux-admin', groups: ['system:masters'], client: true });
    const kubeconfigPath = join(dir, 'admin.kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfig(apiserverUrl, ca.certPem, 'conflux-admin', admin), {
      mode: 0o600,
    });
    const issueKubeconfig = async (file: string, user: string, groups: string[] = []): Promise<string> => {
      const path = join(dir, `${file}.kubeconfig`);
      const pair = await issue(ca, { cn: user, groups, client: true });
      writeFileSync(path, kubeconfig(apiserverUrl, ca.certPem, user, pair), { mode: 0o600 });
      return path;
    };
    const kcmKubeconfig = await issueKubeconfig('controller-manager', 'system:kube-controller-manager');
    const schedKubeconfig = await issueKubeconfig('scheduler', 'system:kube-scheduler');
    // For kube-proxy later: the user that the system:node-proxier binding names.
    await issueKubeconfig('kube-proxy', 'system:kube-proxy');
    const adminTls: Tls = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
    log(`pki and kubeconfigs written in ${Date.now() - t0} ms`);

    // --- etcd ----------------------------------------------------------------------------------
    const etcdUrl = `https://127.0.0.1:${ports.etcd}`;
    const etcdPeerUrl = `https://127.0.0.1:${ports.etcdPeer}`;
    const etcd = start('etcd', [
      '--name=conflux',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${etcdPeerUrl}`,
      `--initial-advertise-peer-urls=${etcdPeerUrl}`,
      `--initial-cluster=conflux=${etcdPeerUrl}`,
      '--initial-cluster-state=new',
      `--cert-file=${etcdServer.cert}`,
      `--key-file=${etcdServer.key}`,
      `--trusted-ca-file=${etcdCaFiles.cert}`,
      '--client-cert-auth=true',
      `--peer-cert-file=${etcdServer.cert}`,
      `--peer-key-file=${etcdServer.key}`,
      `--peer-trusted-ca-file=${etcdCaFiles.cert}`,
      '--peer-client-cert-auth=true',
      '--snapshot-count=10000',
      '--log-level=warn',
    ]);
    const etcdTls: Tls = {
      ca: etcdCa.certPem,
      cert: readFileSync(etcdClient.cert, 'utf8'),
      key: readFileSync(etcdClient.key, 'utf8'),
    };
    await waitFor(
      'etcd /health',
      async () => (await httpsRequest(`${etcdUrl}/health`, etcdTls)).status === 200,
      timeoutMs,
      etcd,
    );
    log(`etcd ready at ${etcdUrl} (${Date.now() - t0} ms)`);

    // --- kube-apiserver ------------------------------------------------------------------------
    const apiserver = start('kube-apiserver', [
      `--etcd-servers=${etcdUrl}`,
      `--etcd-cafile=${etcdCaFiles.cert}`,
      `--etcd-certfile=${etcdClient.cert}`,
      `--etcd-keyfile=${etcdClient.key}`,
      `--bind-address=${apiserverAddress}`,
      ...(apiserverAddress === '127.0.0.1' ? [] : [`--advertise-address=${apiserverAddress}`]),
      `--secure-port=${ports.apiserver}`,
      `--cert-dir=${pkiDir}`,
      `--tls-cert-file=${apiserverServing.cert}`,
      `--tls-private-key-file=${apiserverServing.key}`,
      `--client-ca-file=${caFiles.cert}`,
      '--authorization-mode=Node,RBAC',
      // Added to the default set (NamespaceLifecycle, LimitRanger, ServiceAccount, PodSecurity,
      // ResourceQuota, webhooks, ...), as kubeadm does, plus the owner-reference check.
      '--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement',
      '--enable-bootstrap-token-auth=true',
      '--allow-privileged=true',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      `--service-cluster-ip-range=${serviceCidr}`,
      `--kubelet-client-certificate=${kubeletClient.cert}`,
      `--kubelet-client-key=${kubeletClient.key}`,
      '--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname',
      `--requestheader-client-ca-file=${frontProxyCaFiles.cert}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--proxy-client-cert-file=${frontProxyClient.cert}`,
      `--proxy-client-key-file=${frontProxyClient.key}`,
      '--enable-aggregator-routing=true',
      '--v=1',
    ]);
    await waitFor(
      'kube-apiserver /readyz',
      async () => (await httpsRequest(`${apiserverUrl}/readyz`, adminTls)).status === 200,
      timeoutMs,
      apiserver,
    );
    log(`kube-apiserver ready at ${apiserverUrl} (${Date.now() - t0} ms)`);

    // --- kube-controller-manager and kube-scheduler ---------------------------------------------
    const kcm = start('kube-controller-manager', [
      `--kubeconfig=${kcmKubeconfig}`,
      `--authentication-kubeconfig=${kcmKubeconfig}`,
      `--authorization-kubeconfig=${kcmKubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${ports.controllerManager}`,
      `--tls-cert-file=${kcmServing.cert}`,
      `--tls-private-key-file=${kcmServing.key}`,
      `--client-ca-file=${caFiles.cert}`,
      `--requestheader-client-ca-file=${frontProxyCaFiles.cert}`,
      `--root-ca-file=${caFiles.cert}`,
      `--service-account-private-key-file=${saKey}`,
      '--use-service-account-credentials=true',
      `--cluster-signing-cert-file=${caFiles.cert}`,
      `--cluster-signing-key-file=${caFiles.key}`,
      '--controllers=*,bootstrapsigner,tokencleaner',
      '--cluster-name=conflux',
      '--allocate-node-cidrs=true',
      `--cluster-cidr=${clusterCidr}`,
      '--node-cidr-mask-size=24',
      `--service-cluster-ip-range=${serviceCidr}`,
      // One instance: no lease to wait for when it restarts.
      '--leader-elect=false',
      '--v=1',
    ]);
    const schedConfig = join(dir, 'kube-scheduler.yaml');
    writeFileSync(
      schedConfig,
      [
        'apiVersion: kubescheduler.config.k8s.io/v1',
        'kind: KubeSchedulerConfiguration',
        'clientConnection:',
        `  kubeconfig: ${JSON.stringify(schedKubeconfig)}`,
        'leaderElection:',
        '  leaderElect: false',
        '',
      ].join('\n'),
    );
    const scheduler = start('kube-scheduler', [
      `--config=${schedConfig}`,
      `--authentication-kubeconfig=${schedKubeconfig}`,
      `--authorization-kubeconfig=${schedKubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${ports.scheduler}`,
      `--tls-cert-file=${schedServing.cert}`,
      `--tls-private-key-file=${schedServing.key}`,
      `--client-ca-file=${caFiles.cert}`,
      '--v=1',
    ]);

    const state: State = { dir, kubeconfigPath, apiserverUrl, pids, keepDir };
    writeFileSync(join(dir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);

    // The API server may reach kubelets (logs, exec, port-forward) with its client certificate.
    const api = (method: string, path: string, body?: unknown) =>
      httpsRequest(`${apiserverUrl}${path}`, adminTls, { method, body });
    const binding = await api('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'conflux:kube-apiserver-kubelet-client' },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: 'system:kubelet-api-admin',
      },
      subjects: [
        { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'kube-apiserver-kubelet-client' },
      ],
    });
    if (binding.status !== 201) throw new Error(`kubelet-client binding: ${binding.status} ${binding.body}`);

    const componentTls: Tls = { ca: ca.certPem };
    await Promise.all([
      waitFor(
        'kube-controller-manager /healthz',
        async () =>
          (await httpsRequest(`https://127.0.0.1:${ports.controllerManager}/healthz`, componentTls))
            .status === 200,
        timeoutMs,
        kcm,
      ),
      waitFor(
        'kube-scheduler /readyz',
        async () =>
          (await httpsRequest(`https://127.0.0.1:${ports.scheduler}/readyz`, componentTls)).status === 200,
        timeoutMs,
        scheduler,
      ),
    ]);
    // The controllers are working once the serviceaccount controller has made `default`.
    await waitFor(
      'the default ServiceAccount (controllers running)',
      async () => (await api('GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200,
      timeoutMs,
      kcm,
    );
    const startMs = Date.now() - t0;
    log(`control plane ready in ${startMs} ms (kubeconfig ${kubeconfigPath})`);

    return {
      dir,
      kubeconfigPath,
      apiserverUrl,
      caPem: ca.certPem,
      pki: {
        dir: pkiDir,
        caCert: caFiles.cert,
        caKey: caFiles.key,
        saKey,
        saPub,
        frontProxyCaCert: frontProxyCaFiles.cert,
        etcdCaCert: etcdCaFiles.cert,
      },
      serviceCidr,
      clusterCidr,
      dnsServiceIp: nthAddress(serviceCidr, 10),
      ports,
      pids,
      startMs,
      issueKubeconfig,
      kubectl: (args, opts = {}) => kubectl(kubeconfigPath, args, opts.input),
      api,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

function prepareDir(dir: string | undefined): string {
  if (!dir) return mkdtempSync(join(tmpdir(), 'conflux-k8s-'));
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new Error(`${dir} is not empty: the control plane wants a fresh directory it may remove`);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function kubectl(
  kubeconfigPath: string,
  args: string[],
  input?: string,
): Promise<{ stdout: string; stderr: string }> {
  const hasKubeconfig = args.some((a) => a.startsWith('--kubeconfig') || a.startsWith('--token'));
  const full = hasKubeconfig ? args : [`--kubeconfig=${kubeconfigPath}`, ...args];
  if (input === undefined) return run(binaryPath('kubectl'), full, { maxBuffer: 64 << 20 });
  return new Promise((resolve, reject) => {
    const child = execFile(binaryPath('kubectl'), full, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stdout, stderr }));
      else resolve({ stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

/** What a detached control plane left in `dir/state.json`, if anything. */
export function readState(dir: string): State | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as State;
  } catch {
    return undefined;
  }
}

/** Which of a detached control plane's processes still run. */
export function runningPids(state: State): Record<string, number> {
  return Object.fromEntries(
    Object.entries(state.pids).filter(([name, pid]) => alive(pid) && runs(pid, binaryPath(name as Binary))),
  );
}

/** Stops a control plane started (detached) by another process, and removes its directory. */
export async function stopFromState(dir: string): Promise<boolean> {
  const state = readState(dir);
  if (!state) return false;
  const order = ['kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd'];
  for (const name of order) {
    const pid = state.pids[name];
    if (pid && runs(pid, binaryPath(name as Binary))) await stopPid(pid);
  }
  rmSync(dir, { recursive: true, force: true });
  return true;
}
