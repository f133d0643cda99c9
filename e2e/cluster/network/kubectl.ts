// kubectl against a given kubeconfig, for the cluster services that manage their own API objects.

import { execFile } from 'node:child_process';
import { binaryPath } from '../binaries.js';

export interface KubectlResult {
  stdout: string;
  stderr: string;
}

export function kubectl(
  kubeconfigPath: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<KubectlResult> {
  const full = [
    `--kubeconfig=${kubeconfigPath}`,
    `--request-timeout=${Math.ceil((opts.timeoutMs ?? 10_000) / 1000)}s`,
    ...args,
  ];
  return new Promise((resolve, reject) => {
    const child = execFile(
      binaryPath('kubectl'),
      full,
      { maxBuffer: 64 << 20, timeout: (opts.timeoutMs ?? 10_000) + 5_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`kubectl ${args.join(' ')}: ${stderr.trim() || err.message}`));
        else resolve({ stdout, stderr });
      },
    );
    child.stdin?.end(opts.input ?? '');
  });
}

/** `kubectl get -o json`, or undefined when the object does not exist. */
export async function getJson<T>(kubeconfigPath: string, args: string[]): Promise<T | undefined> {
  try {
    const { stdout } = await kubectl(kubeconfigPath, ['get', ...args, '-o', 'json']);
    return JSON.parse(stdout) as T;
  } catch (err) {
    if (/NotFound|not found/.test((err as Error).message)) return undefined;
    throw err;
  }
}
