// The scenarios' environment on a real kind cluster (prepared by run.mjs): kubectl against the
// kind context, MinIO for backups, the operator as a Deployment, and the members' client APIs
// through `kubectl port-forward` over HTTPS with each cluster's operator-managed CA.

import { spawn } from 'node:child_process';
import { Agent, setGlobalDispatcher } from 'undici';
import { freePort } from '../../operator/platform/local.js';
import { type KubeEnv, runCommand } from '../scenarios/env.js';

export const CONTEXT = 'kind-conflux-e2e';
export const NAMESPACE = 'conflux-e2e';

function kubectl(args: string[], stdin?: string) {
  return runCommand('kubectl', ['--context', CONTEXT, ...args], stdin);
}

export function kindEnv(): KubeEnv {
  const forwards = new Map<string, { url: string; stop(): void }>();
  const cas = new Set<string>();

  /** Trust every cluster CA seen so far; pods are reached as 127.0.0.1, so names are not checked. */
  const trust = async (cluster: string) => {
    const r = await kubectl([
      'get',
      'secret',
      `${cluster}-ca`,
      '-n',
      NAMESPACE,
      '-o',
      'jsonpath={.data.ca\\.crt}',
    ]);
    if (r.code !== 0) throw new Error(`no CA for ${cluster}: ${r.stderr}`);
    cas.add(Buffer.from(r.stdout, 'base64').toString('utf8'));
    setGlobalDispatcher(new Agent({ connect: { ca: [...cas], checkServerIdentity: () => undefined } }));
  };

  return {
    namespace: NAMESPACE,
    specDefaults: { image: 'conflux:e2e', imagePullPolicy: 'Never' },
    kubectl,
    clusterMetadata: (name) => ({ name, namespace: NAMESPACE }),
    backupDestination: (prefix) => ({
      uri: `s3://conflux-backups/${prefix}`,
      endpoint: 'http://minio.minio.svc:9000',
      region: 'us-east-1',
      pathStyle: true,
      credentialsSecret: { name: 'backup-credentials' },
    }),
    async clientUrl(cluster, ordinal) {
      const pod = `${cluster}-${ordinal}`;
      const known = forwards.get(pod);
      if (known) return known.url;
      await trust(cluster);
      const port = await freePort();
      const child = spawn(
        'kubectl',
        ['--context', CONTEXT, '-n', NAMESPACE, 'port-forward', `pod/${pod}`, `${port}:8080`],
        {
          stdio: 'ignore',
        },
      );
      await new Promise((r) => setTimeout(r, 1_500));
      const forward = { url: `https://127.0.0.1:${port}`, stop: () => child.kill() };
      forwards.set(pod, forward);
      return forward.url;
    },
    async killPod(pod) {
      for (const [key, f] of forwards) if (key === pod) f.stop();
      forwards.delete(pod);
      await kubectl(['delete', 'pod', pod, '-n', NAMESPACE, '--grace-period=0', '--force']);
    },
    async restartOperator() {
      await kubectl([
        'delete',
        'pod',
        '-n',
        'conflux-system',
        '-l',
        'app.kubernetes.io/name=conflux-operator',
        '--grace-period=0',
        '--force',
      ]);
    },
    async stop() {
      for (const f of forwards.values()) f.stop();
      forwards.clear();
    },
  };
}
