// What the Kubernetes-level scenarios need from where they run: the real cluster of process
// kubelets (e2e/cluster/real-env.ts) or a kind cluster (e2e/kind). The scenarios drive Conflux
// only as a user would: manifests, kubectl, and the client API of the members.

import { spawn } from 'node:child_process';
import type { ConfluxBackup, ConfluxCluster } from '../../operator/api/cluster.js';

export interface KubeEnv {
  readonly namespace: string;
  /** Run kubectl against the cluster; never throws on a non-zero exit. */
  kubectl(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Metadata every ConfluxCluster of the scenarios gets (for example the dev-insecure annotation). */
  clusterMetadata(name: string): Record<string, unknown>;
  /** Spec fields every ConfluxCluster gets (the image to run, Raft timings). */
  readonly specDefaults: Record<string, unknown>;
  /** Where backups go, as a ConfluxCluster/ConfluxBackup destination. */
  backupDestination(prefix: string): Record<string, unknown>;
  /** The client API base URL of member `ordinal` of `cluster`, reachable from the test. */
  clientUrl(cluster: string, ordinal: number): Promise<string>;
  /** kill -9 the process of a member pod; it restarts as the kubelet would. */
  killPod(pod: string): Promise<void>;
  /** Stop the operator abruptly and start it again. */
  restartOperator(): Promise<void>;
  stop(): Promise<void>;
}

/** The object as the API server holds it, or null. */
export async function getObject<T>(env: KubeEnv, resource: string, name: string): Promise<T | null> {
  const r = await env.kubectl(['get', resource, name, '-n', env.namespace, '-o', 'json']);
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return null;
    throw new Error(`kubectl get ${resource} ${name}: ${r.stderr.trim()}`);
  }
  return JSON.parse(r.stdout) as T;
}

export const getCluster = (env: KubeEnv, name: string) =>
  getObject<ConfluxCluster>(env, 'confluxcluster', name);
export const getBackup = (env: KubeEnv, name: string) => getObject<ConfluxBackup>(env, 'confluxbackup', name);

export async function apply(env: KubeEnv, manifest: object): Promise<void> {
  const r = await env.kubectl(['apply', '-n', env.namespace, '-f', '-'], JSON.stringify(manifest));
  if (r.code !== 0) throw new Error(`kubectl apply: ${r.stderr.trim()}`);
}

export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  ms = 120_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

/** Run a command to its end, feeding `stdin`; never throws on a non-zero exit. */
export function runCommand(
  cmd: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.on('error', (err) => ok({ code: 127, stdout, stderr: err.message }));
    child.on('close', (code) => ok({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}
