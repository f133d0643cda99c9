// `npm start`: the embedded default. The operator's reconciler runs a ConfluxCluster named `local`
// on the Local platform (child conflux-node processes on loopback, data under .conflux/), prints
// the endpoints once it is ready, and keeps carrying out spec changes until Ctrl-C. The spec is
// changed through a small control endpoint that mirrors the Kubernetes scale subresource:
//
//   curl -X PUT http://127.0.0.1:7100/apis/conflux.io/v1alpha1/namespaces/default/confluxclusters/local/scale \
//        -d '{"spec":{"replicas":5}}'

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { z } from 'zod';
import { API_VERSION, type ConfluxCluster } from './api/cluster.js';
import { LocalPlatform } from './platform/local.js';
import { InvalidResourceError, LocalStore, NotFoundError } from './platform/local-store.js';
import { Reconciler } from './reconcile/reconciler.js';

const NAME = 'local';
const NAMESPACE = 'default';

export interface LocalOptions {
  root: string;
  basePort: number;
  replicas: number;
  logLevel: string;
}

export interface RunningLocal {
  store: LocalStore;
  platform: LocalPlatform;
  stop(): Promise<void>;
}

export async function runLocal(o: LocalOptions): Promise<RunningLocal> {
  const logger = pino(
    { level: o.logLevel },
    // Synchronous: the operator logs little, and an early exit must not lose (or trip over) the file.
    pino.destination({ dest: resolve(o.root, 'operator.log'), mkdir: true, sync: true }),
  );
  const store = new LocalStore({ root: o.root, logger });
  // The control port first: a second `npm start` on the same ports must stop here, before it
  // touches the running cluster's processes.
  const control = createServer((req, res) => void serveControl(store, req, res));
  await listenOrExplain(control, o.basePort - 1);
  const platform = new LocalPlatform({ root: o.root, basePort: o.basePort, preferBuilt: true, logger });
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

const SCALE_PATH = /^\/apis\/conflux\.io\/v1alpha1\/namespaces\/([^/]+)\/confluxclusters\/([^/]+)(\/scale)?$/;
const scaleBody = z.object({ spec: z.object({ replicas: z.int().min(1) }) });

async function serveControl(store: LocalStore, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const send = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const m = SCALE_PATH.exec(req.url ?? '');
  if (!m) return send(404, { message: 'not found' });
  const [, namespace = NAMESPACE, name = NAME, scale] = m;
  try {
    if (req.method === 'GET') {
      const c = await store.getCluster(namespace, name);
      return c ? send(200, scale ? scaleOf(c) : c) : send(404, { message: `${name} not found` });
    }
    if (req.method === 'PUT' && scale) {
      let text = '';
      for await (const chunk of req) text += chunk;
      const parsed = scaleBody.safeParse(JSON.parse(text || '{}'));
      if (!parsed.success) return send(400, { message: 'expected {"spec":{"replicas":N}} with N >= 1' });
      return send(200, scaleOf(await store.scaleCluster(namespace, name, parsed.data.spec.replicas)));
    }
    return send(405, { message: 'method not allowed' });
  } catch (err) {
    if (err instanceof NotFoundError) return send(404, { message: err.message });
    if (err instanceof InvalidResourceError || err instanceof SyntaxError)
      return send(400, { message: err.message });
    return send(500, { message: (err as Error).message });
  }
}

function scaleOf(c: ConfluxCluster) {
  return {
    apiVersion: 'autoscaling/v1',
    kind: 'Scale',
    metadata: { name: c.metadata.name, namespace: c.metadata.namespace },
    spec: { replicas: c.spec.replicas },
    status: { replicas: c.status?.replicas ?? 0, selector: c.status?.selector ?? '' },
  };
}

/** Print the endpoints once the cluster is Ready, and again after every change of its members. */
async function report(store: LocalStore, platform: LocalPlatform): Promise<void> {
  let shown = '';
  for (;;) {
    const c = await store.getCluster(NAMESPACE, NAME);
    const ready = c?.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True';
    if (c && ready) {
      const pods = await platform.pods(c);
      const key = JSON.stringify([pods.map((p) => p.addresses.api), c.status?.leaderId]);
      if (key !== shown) {
        shown = key;
        print(c, pods);
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function print(c: ConfluxCluster, pods: Awaited<ReturnType<LocalPlatform['pods']>>): void {
  const lines = [
    '',
    `Conflux is running: cluster "${c.metadata.name}" with ${pods.length} members on this machine (plain HTTP, loopback only),`,
    'kept in shape by the operator (logs in .conflux/operator.log).',
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
    'Ctrl-C stops the cluster (its data stays in .conflux/).',
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
  const running = await runLocal({ root, basePort, replicas, logLevel: values['log-level'] });
  void report(running.store, running.platform);
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
