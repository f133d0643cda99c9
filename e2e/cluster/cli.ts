// npm run kube -- up [--nodes N] | status | down
//   up      a real Kubernetes on this machine, without Docker: builds the pinned binaries on first
//           use, then starts the control plane, N process kubelets (default 3) with routed pod
//           networking, kube-proxy and CoreDNS, and an S3-compatible server for backups. It keeps
//           running in the background after this command returns; the last line printed is
//           `export KUBECONFIG=<path>`.
//   status  whether it runs, its nodes, and the KUBECONFIG line again.
//   down    stops everything it started and leaves no process, network namespace, route or mount
//           behind.
// One per machine (the pod network is host-wide). Its state and logs live in $CONFLUX_KUBE_DIR
// (default .conflux/kube in the repository); the background process logs to serve.log there.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { binaryPath } from './binaries.js';
import { type RealCluster, startRealCluster } from './real-env.js';

const REPO = resolve(import.meta.dirname, '../..');
const stateDir = resolve(process.env.CONFLUX_KUBE_DIR || join(REPO, '.conflux', 'kube'));
const stateFile = join(stateDir, 'state.json');
const serveLog = join(stateDir, 'serve.log');

interface State {
  pid: number;
  kubeconfig: string;
  nodes: string[];
  s3Endpoint: string;
}

const err = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readState(): State | null {
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8')) as State;
  } catch {
    return null;
  }
}

async function kubectl(kubeconfig: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((ok) => {
    const child = spawn(binaryPath('kubectl'), ['--kubeconfig', kubeconfig, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => ok({ code: code ?? 1, out }));
  });
}

/** The background process: starts the cluster, records it, and tears it down on SIGTERM/SIGINT. */
async function serve(nodes: number): Promise<void> {
  const log = (line: string) => console.log(line);
  let cluster: RealCluster | null = null;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    log('stopping');
    await cluster?.stop();
    rmSync(stateFile, { force: true });
    log('stopped');
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
  try {
    cluster = await startRealCluster({ installOperator: false, nodes, log });
  } catch (e) {
    log(`failed: ${(e as Error).message}`);
    await stop(1);
    return;
  }
  const state: State = {
    pid: process.pid,
    kubeconfig: cluster.cp.kubeconfigPath,
    nodes: cluster.kubelet.nodeNames,
    s3Endpoint: cluster.s3Endpoint,
  };
  writeFileSync(stateFile, JSON.stringify(state, null, 2));
  log('ready');
}

async function up(nodes: number): Promise<number> {
  const running = readState();
  if (running && alive(running.pid)) {
    err(`already running (pid ${running.pid}); \`npm run kube -- down\` stops it`);
    console.log(`export KUBECONFIG=${running.kubeconfig}`);
    return 0;
  }
  mkdirSync(stateDir, { recursive: true });
  rmSync(stateFile, { force: true });
  const logFd = openSync(serveLog, 'w');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', import.meta.filename, 'serve', '--nodes', String(nodes)],
    {
      cwd: REPO,
      detached: true,
      stdio: ['ignore', logFd, logFd],
    },
  );
  closeSync(logFd);
  child.unref();
  // Follow the background process's progress lines until it is ready or gives up.
  let shown = 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const lines = existsSync(serveLog) ? readFileSync(serveLog, 'utf8').split('\n').filter(Boolean) : [];
    for (const line of lines.slice(shown)) err(line);
    shown = lines.length;
    const state = readState();
    if (state) {
      err(`nodes ${state.nodes.join(', ')}; S3 for backups at ${state.s3Endpoint}; logs in ${serveLog}`);
      err('`npm run kube -- down` stops it');
      console.log(`export KUBECONFIG=${state.kubeconfig}`);
      return 0;
    }
    if (child.pid !== undefined && !alive(child.pid)) {
      err(`the cluster did not start; see ${serveLog}`);
      return 1;
    }
  }
}

async function status(): Promise<number> {
  const state = readState();
  if (!state || !alive(state.pid)) {
    err(`not running (state in ${stateDir})`);
    return 2;
  }
  const ready = await kubectl(state.kubeconfig, ['get', '--raw', '/readyz']);
  const nodes = await kubectl(state.kubeconfig, ['get', 'nodes', '-o', 'wide']);
  err(
    `running (pid ${state.pid}); API server ${ready.out.trim() === 'ok' ? 'ready' : `not ready: ${ready.out.trim()}`}`,
  );
  err(nodes.out.trimEnd());
  console.log(`export KUBECONFIG=${state.kubeconfig}`);
  return ready.code === 0 && nodes.code === 0 ? 0 : 1;
}

async function down(): Promise<number> {
  const state = readState();
  if (!state || !alive(state.pid)) {
    err('nothing running');
    return 0;
  }
  process.kill(state.pid, 'SIGTERM');
  const deadline = Date.now() + 120_000;
  while (alive(state.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (alive(state.pid)) {
    err(`pid ${state.pid} did not stop within 2 minutes; see ${serveLog}`);
    return 1;
  }
  err('stopped: no process, network namespace or route left');
  return 0;
}

const USAGE = 'usage: npm run kube -- up [--nodes N] | status | down';
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { nodes: { type: 'string', default: '3' }, help: { type: 'boolean', default: false } },
});
const nodes = Number(values.nodes);
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!Number.isInteger(nodes) || nodes < 1 || nodes > 10) {
  err(`--nodes: expected 1 to 10, got ${values.nodes}`);
  process.exit(64);
}
const commands: Record<string, () => Promise<number | undefined>> = {
  up: () => up(nodes),
  status,
  down,
  serve: async () => {
    await serve(nodes);
    return undefined; // keeps running until SIGTERM
  },
};
const command = commands[positionals[0] ?? ''];
if (!command) {
  err(USAGE);
  process.exit(64);
}
command().then(
  (code) => {
    if (code !== undefined) process.exit(code);
  },
  (e: unknown) => {
    err(e instanceof Error ? e.message : String(e));
    process.exit(1);
  },
);
