// npm run kube -- up|status|down
//   up      builds the pinned binaries if the cache lacks them, starts a control plane that keeps
//           running after this command returns, and prints `export KUBECONFIG=<path>` last.
//   status  which of its processes run, and whether the API server is ready.
//   down    stops every process it started and removes its directory.
// State, logs and kubeconfigs live in $CONFLUX_KUBE_DIR (default: .conflux/kube in the repo).

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureBinaries, versions } from './binaries.js';
import { readState, runningPids, startControlPlane, stopFromState } from './control-plane.js';
import { httpsRequest } from './proc.js';

const REPO = resolve(import.meta.dirname, '../..');
const stateDir = resolve(process.env.CONFLUX_KUBE_DIR || join(REPO, '.conflux', 'kube'));
const COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];

function err(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function ready(apiserverUrl: string, kubeconfigPath: string): Promise<boolean> {
  // The admin kubeconfig holds everything needed to call /readyz with mutual TLS.
  const cfg = JSON.parse(readFileSync(kubeconfigPath, 'utf8')) as {
    clusters: { cluster: { 'certificate-authority-data': string } }[];
    users: { user: { 'client-certificate-data': string; 'client-key-data': string } }[];
  };
  const b = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString();
  try {
    const res = await httpsRequest(`${apiserverUrl}/readyz`, {
      ca: b(cfg.clusters[0]?.cluster['certificate-authority-data']),
      cert: b(cfg.users[0]?.user['client-certificate-data']),
      key: b(cfg.users[0]?.user['client-key-data']),
    });
    return res.status === 200;
  } catch {
    return false;
  }
}

/** 0: all running and ready; 1: partly running; 2: nothing. */
async function status(print: boolean): Promise<number> {
  const state = readState(stateDir);
  if (!state) {
    if (print) err(`no control plane in ${stateDir}`);
    return 2;
  }
  const running = runningPids(state);
  const ok = await ready(state.apiserverUrl, state.kubeconfigPath);
  if (print) {
    for (const name of COMPONENTS) {
      const pid = state.pids[name];
      err(`${name.padEnd(24)} ${running[name] ? `running (pid ${pid})` : 'not running'}`);
    }
    err(`${'readyz'.padEnd(24)} ${ok ? 'ok' : 'not ready'} (${state.apiserverUrl})`);
    err(`logs in ${join(stateDir, 'logs')}`);
    console.log(`export KUBECONFIG=${state.kubeconfigPath}`);
  }
  const all = COMPONENTS.every((n) => running[n]);
  return all && ok ? 0 : Object.keys(running).length ? 1 : 2;
}

async function up(): Promise<number> {
  const current = await status(false);
  if (current === 0) {
    err(`already running in ${stateDir}`);
    return status(true);
  }
  if (current === 1 || readState(stateDir)) {
    err('a previous control plane is partly running or stale: taking it down first');
    await stopFromState(stateDir);
  }
  const v = versions();
  err(`Kubernetes ${v.K8S_VERSION}, etcd ${v.ETCD_VERSION}: checking the binaries`);
  await ensureBinaries(err);
  const cp = await startControlPlane({ dir: stateDir, detached: true, keepDir: true, log: err });
  err(`API server ${cp.apiserverUrl}; logs in ${join(cp.dir, 'logs')}; \`npm run kube -- down\` stops it`);
  console.log(`export KUBECONFIG=${cp.kubeconfigPath}`);
  return 0;
}

async function down(): Promise<number> {
  if (await stopFromState(stateDir)) err(`stopped; removed ${stateDir}`);
  else err(`nothing to stop in ${stateDir}`);
  return 0;
}

const commands: Record<string, () => Promise<number>> = { up, status: () => status(true), down };
const command = commands[process.argv[2] ?? ''];
if (!command) {
  err('usage: npm run kube -- up|status|down');
  process.exit(64);
}
command().then(
  (code) => process.exit(code),
  (e: unknown) => {
    err(e instanceof Error ? e.message : String(e));
    process.exit(1);
  },
);
