// `npm start`: the embedded default. The operator's reconciler runs a ConfluxCluster named `local`
// on the Local platform (child conflux-node processes on loopback, data under .conflux/), prints
// the endpoints once it is ready, and keeps carrying out spec changes until Ctrl-C. The spec is
// changed through a control endpoint on BASE-1 that speaks the part of the Kubernetes resource API
// the runbooks use (get, create, replace, merge-patch and delete of ConfluxClusters, the scale
// subresource, events; operator/platform/local-control.ts), which `conflux cluster` and
// `conflux scale` call:
//
//   curl -X PUT http://127.0.0.1:7100/apis/conflux.io/v1alpha1/namespaces/default/confluxclusters/local/scale \
//        -d '{"spec":{"replicas":5}}'
//
// One `npm start` per data directory: `<root>/conflux.lock` holds the running one's pid, and a
// second start on the same data stops with one line naming it, before it touches anything. A slot
// whose node keeps exiting (a port another program holds, say) is named in the terminal with the
// reason and its log file.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { relative, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { API_VERSION, type ConfluxCluster } from './api/cluster.js';
import { LocalPlatform } from './platform/local.js';
import { serveControl } from './platform/local-control.js';
import { LocalStore } from './platform/local-store.js';
import { Reconciler } from './reconcile/reconciler.js';

const NAME = 'local';
const NAMESPACE = 'default';

export interface LocalOptions {
  root: string;
  basePort: number;
  replicas: number;
  logLevel: string;
  /** One line for the terminal (a slot that keeps exiting); default: nowhere. */
  say?: (line: string) => void;
}

export const LOCK_FILE = 'conflux.lock';

/** Another `npm start` runs on this data directory. */
export class LockedError extends Error {
  override readonly name = 'LockedError';
}

/**
 * Takes `<root>/conflux.lock` for this process (its pid), or throws LockedError naming the pid of
 * the live process that holds it. A lock whose process is gone (kill -9, a crash, a reboot) is
 * taken over. Answers the release, also run when the process exits.
 */
export function acquireLock(root: string): () => void {
  mkdirSync(root, { recursive: true });
  const path = resolve(root, LOCK_FILE);
  const release = () => {
    try {
      if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path, { force: true });
    } catch {
      // already gone
    }
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      process.once('exit', release);
      return release;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: number;
    try {
      holder = Number(readFileSync(path, 'utf8').trim());
    } catch {
      continue; // released meanwhile: try again
    }
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && runsConflux(holder)) {
      throw new LockedError(
        `Conflux is already running on ${root} (pid ${holder}); stop it first (Ctrl-C in its terminal, or kill ${holder}), or give another --root.`,
      );
    }
    rmSync(path, { force: true }); // its process is gone: take the lock over
  }
  throw new LockedError(`cannot take the lock ${path}: other processes keep taking it`);
}

/** Whether `pid` is a live npm start (where /proc says what runs; else any live process). */
function runsConflux(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return /operator[/\\]local\.[jt]s/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return true;
  }
}

export interface RunningLocal {
  store: LocalStore;
  platform: LocalPlatform;
  stop(): Promise<void>;
}

export async function runLocal(o: LocalOptions): Promise<RunningLocal> {
  // The lock and the control port first: a second `npm start` on the same data or the same ports
  // must stop here, before it touches the running cluster's processes.
  const release = acquireLock(o.root);
  const slots = new SlotWatch(o.say);
  const logger = pino(
    { level: o.logLevel },
    pino.multistream([
      // Synchronous: the operator logs little, and an early exit must not lose (or trip over) the file.
      {
        level: o.logLevel as pino.Level,
        stream: pino.destination({ dest: resolve(o.root, 'operator.log'), mkdir: true, sync: true }),
      },
      { level: 'info', stream: slots.stream },
    ]),
  );
  const store = new LocalStore({ root: o.root, logger });
  // Constructing the platform touches no process yet (it reaps orphans when it first looks at a cluster).
  const platform = new LocalPlatform({ root: o.root, basePort: o.basePort, preferBuilt: false, logger });
  const control = createServer((req, res) => void serveControl({ store, platform }, req, res));
  try {
    await listenOrExplain(control, o.basePort - 1);
  } catch (err) {
    release();
    throw err;
  }
  if (!(await store.getCluster(NAMESPACE, NAME))) {
    await store.applyCluster({
      apiVersion: API_VERSION,
      kind: 'ConfluxCluster',
      metadata: { name: NAME, namespace: NAMESPACE },
      spec: {
        replicas: o.replicas,
        // Hourly backups next to the data; POST /_cluster/backup takes one at any time.
        backup: {
          schedule: '0 * * * *',
          destination: { uri: `file://${resolve(o.root, 'backups')}` },
          retention: { keepLast: 24 },
        },
      },
    });
  }
  const reconciler = new Reconciler({ store, platform, logger, resyncMs: 2_000 });
  await reconciler.start();
  return {
    store,
    platform,
    async stop() {
      control.close();
      await reconciler.stop();
      await platform.stopAll();
      release();
    },
  };
}

async function listenOrExplain(server: Server, port: number): Promise<void> {
  await new Promise<void>((ok, fail) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      fail(
        err.code === 'EADDRINUSE'
          ? new Error(
              `port ${port} (the control endpoint, CONFLUX_BASE_PORT - 1) is in use: is Conflux already running here? ` +
                'Stop it, or start on other ports with CONFLUX_BASE_PORT=<port>.',
            )
          : err,
      ),
    );
    server.listen(port, '127.0.0.1', ok);
  });
}

/**
 * Follows the platform's `node exited` / `node started` log records and says in the terminal when
 * a slot's node keeps exiting: the slot, why (a port in use, from the tail of its log) and the log.
 */
class SlotWatch {
  readonly stream: Writable;
  /** Exits in a row per slot, and what was last said about it. */
  private readonly slots = new Map<string, { exits: number; said: string }>();

  constructor(private readonly say: ((line: string) => void) | undefined) {
    this.stream = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const line of chunk.toString('utf8').split('\n')) if (line) this.record(line);
        done();
      },
    });
  }

  private record(line: string): void {
    let r: { msg?: string; slot?: string; code?: number | null; log?: string };
    try {
      r = JSON.parse(line);
    } catch {
      return;
    }
    if (!r.slot) return;
    const slot = this.slots.get(r.slot) ?? { exits: 0, said: '' };
    this.slots.set(r.slot, slot);
    if (r.msg === 'node stopped') slot.exits = 0;
    if (r.msg !== 'node exited' || !r.log) return;
    slot.exits++;
    const cause = causeIn(r.log);
    // A port in use is news at once; other exits once they repeat (a crash loop).
    if (!cause.port && slot.exits < 2) return;
    const log = relative(process.cwd(), r.log) || r.log;
    const text = cause.port
      ? `${r.slot} cannot start: port ${cause.port} is in use by another program (log: ${log}); it is retried until the port is free`
      : `${r.slot} keeps exiting (code ${r.code ?? '?'}${cause.line ? `: ${cause.line}` : ''}); log: ${log}`;
    if (text === slot.said) return;
    slot.said = text;
    this.say?.(text);
  }
}

/** Why a node exited, from the tail of its log: the port it could not listen on, or its last error line. */
function causeIn(logFile: string): { port?: string; line?: string } {
  let tail: string;
  try {
    const text = readFileSync(logFile, 'utf8');
    tail = text.slice(text.lastIndexOf('\n--- ') + 1);
  } catch {
    return {};
  }
  const port = /EADDRINUSE: address already in use (\S+)/.exec(tail)?.[1];
  if (port) return { port: port.slice(port.lastIndexOf(':') + 1) };
  const line = tail.split('\n').find((l) => l.startsWith('conflux-node: '));
  return line ? { line: line.slice(0, 200) } : {};
}

/** A path under the data root as the terminal shows it: relative to the working directory when inside it. */
function shown(root: string, file: string): string {
  const rel = relative(process.cwd(), resolve(root, file));
  return rel && !rel.startsWith('..') ? `${rel}${file ? '' : '/'}` : resolve(root, file);
}

/** Print the endpoints once the cluster is Ready, and again after every change of its members. */
async function report(root: string, store: LocalStore, platform: LocalPlatform): Promise<void> {
  let shown = '';
  for (;;) {
    const c = await store.getCluster(NAMESPACE, NAME);
    const ready = c?.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True';
    if (c && ready) {
      const pods = await platform.pods(c);
      const key = JSON.stringify([pods.map((p) => p.addresses.api), c.status?.leaderId]);
      if (key !== shown) {
        shown = key;
        print(root, c, pods);
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function print(root: string, c: ConfluxCluster, pods: Awaited<ReturnType<LocalPlatform['pods']>>): void {
  const lines = [
    '',
    `Conflux is running: cluster "${c.metadata.name}" with ${pods.length} members on this machine (plain HTTP, loopback only),`,
    `kept in shape by the operator (logs in ${shown(root, 'operator.log')}).`,
    '',
    ...pods.map(
      (p) =>
        `  ${p.name}  client API http://${p.addresses.api}   admin http://${p.addresses.admin}   metrics http://${p.addresses.api}/metrics`,
    ),
    '',
    `  cluster id ${c.status?.clusterId}, leader ${c.status?.leaderId}, fault tolerance ${c.status?.faultTolerance}`,
    `  backups: ${c.spec.backup?.destination.uri} (${c.spec.backup?.schedule}, last ${c.status?.lastBackup?.time ?? 'none yet'})`,
    '',
    'Try:',
    `  curl -X PUT http://${pods[0]?.addresses.api}/v1/kv/app/greeting -d 'hello'`,
    `  curl http://${pods[1]?.addresses.api ?? pods[0]?.addresses.api}/v1/kv/app/greeting`,
    `  curl http://${pods[0]?.addresses.admin}/_cluster/status`,
    `  curl -X PUT http://127.0.0.1:${Number(pods[0]?.addresses.raft.split(':')[1]) - 1}/apis/conflux.io/v1alpha1/namespaces/default/confluxclusters/local/scale -d '{"spec":{"replicas":5}}'`,
    '',
    `Ctrl-C stops the cluster (its data stays in ${shown(root, '')}).`,
  ];
  console.log(lines.join('\n'));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      root: { type: 'string', default: '.conflux' },
      replicas: { type: 'string', default: '3' },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  const basePort = Number(process.env.CONFLUX_BASE_PORT ?? 7101);
  const replicas = Number(values.replicas);
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error('--replicas: expected a whole number ≥ 1');
  const root = resolve(values.root);
  const running = await runLocal({
    root,
    basePort,
    replicas,
    logLevel: values['log-level'],
    say: (line) => console.log(line),
  });
  console.log(
    `Starting Conflux: the operator brings up the members on 127.0.0.1 (client APIs from ${basePort + 100}, admin from ${basePort + 200}); data and logs in ${relative(process.cwd(), root) || root}/`,
  );
  void report(root, running.store, running.platform);
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    console.log('\nStopping…');
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  });
}
