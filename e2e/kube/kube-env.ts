// The scenarios' environment on the Kubernetes API stand-in: the API server, the pod runner (the
// StatefulSet controller and kubelet, running real conflux-node processes on 127.0.0.x), s3rver
// for backups, and the real operator process (operator/main.ts) talking to the stand-in through a
// kubeconfig, exactly as it would to a cluster. Pod DNS names do not resolve here, so the operator
// reaches members by pod IP and clusters run with the dev-insecure annotation (plain HTTP on
// loopback): the TLS path is covered by unit tests and by the kind suite.

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type S3rverHandle, startS3rver } from '../../node/backup/test-s3rver.js';
import { freePort } from '../../operator/platform/local.js';
import { type KubeEnv, runCommand } from '../scenarios/env.js';
import { kubectlBinary } from '../support/helm.js';
import { type ApiServer, startApiServer } from './api-server.js';
import { type PodRunner, type PodRunnerOptions, startPodRunner } from './pod-runner.js';

const REPO = resolve(import.meta.dirname, '../..');
export const NAMESPACE = 'default';

export interface StandIn extends KubeEnv {
  api: ApiServer;
  runner: PodRunner;
  s3: S3rverHandle;
  dir: string;
}

export async function startStandIn(options: { images?: PodRunnerOptions['images'] } = {}): Promise<StandIn> {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-kube-'));
  const api = await startApiServer({ namespaces: ['default', 'kube-system', 'conflux-system'] });
  const runner = await startPodRunner({
    kubeconfigPath: api.kubeconfigPath,
    root: join(dir, 'runner'),
    ...(options.images ? { images: options.images } : {}),
  });
  const s3 = await startS3rver('backups');
  const kubectl = (args: string[], stdin?: string) =>
    runCommand(kubectlBinary(), ['--kubeconfig', api.kubeconfigPath, ...args], stdin);
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'backup-credentials', namespace: NAMESPACE },
    stringData: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
  };
  const made = await kubectl(['create', '-f', '-'], JSON.stringify(secret));
  if (made.code !== 0) throw new Error(`creating the backup credentials: ${made.stderr}`);

  let operator: ChildProcess | null = null;
  const startOperator = async () => {
    const log = createWriteStream(join(dir, 'operator.log'), { flags: 'a' });
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'operator/main.ts',
        '--member-address',
        'pod-ip',
        '--metrics-addr',
        `127.0.0.1:${await freePort()}`,
      ],
      {
        cwd: REPO,
        env: {
          ...process.env,
          KUBECONFIG: api.kubeconfigPath,
          POD_NAME: 'conflux-operator-0',
          POD_NAMESPACE: 'conflux-system',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    operator = child;
  };
  const stopOperator = async (signal: NodeJS.Signals) => {
    const child = operator;
    operator = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };
  await startOperator();

  return {
    api,
    runner,
    s3,
    dir,
    namespace: NAMESPACE,
    specDefaults: { raft: { tickMs: 20 } },
    kubectl,
    clusterMetadata: (name) => ({
      name,
      namespace: NAMESPACE,
      annotations: { 'conflux.io/dev-insecure': 'true' },
    }),
    backupDestination: (prefix) => ({
      uri: `s3://backups/${prefix}`,
      endpoint: s3.endpoint,
      region: 'us-east-1',
      pathStyle: true,
      credentialsSecret: { name: 'backup-credentials' },
    }),
    async clientUrl(cluster, ordinal) {
      return `http://${runner.addressOf(NAMESPACE, `${cluster}-${ordinal}`)}:8080`;
    },
    killPod: (pod) => runner.kill(NAMESPACE, pod),
    async restartOperator() {
      await stopOperator('SIGKILL');
      await startOperator();
    },
    async stop() {
      await stopOperator('SIGTERM');
      await runner.stop();
      await api.stop();
      await s3.stop();
      if (!process.env.CONFLUX_KEEP_E2E) rmSync(dir, { recursive: true, force: true });
    },
  };
}
