// The pinned Kubernetes binaries (versions.env), built by build.sh from their Go modules into a
// cache outside the repository: ${CONFLUX_CACHE:-$HOME/.cache/conflux}/k8s-<version>/bin.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const HERE = import.meta.dirname;
export const BUILD_SCRIPT = join(HERE, 'build.sh');

export const BINARIES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
  'kube-proxy',
  'coredns',
] as const;
export type Binary = (typeof BINARIES)[number];

export interface Versions {
  K8S_VERSION: string;
  ETCD_VERSION: string;
  COREDNS_VERSION: string;
  GO_MIN_VERSION: string;
}

/** The pinned versions, read from versions.env (plain KEY=value lines). */
export function versions(): Versions {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(HERE, 'versions.env'), 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^["']|["']$/g, '');
  }
  for (const key of ['K8S_VERSION', 'ETCD_VERSION', 'COREDNS_VERSION', 'GO_MIN_VERSION']) {
    if (!out[key]) throw new Error(`e2e/cluster/versions.env has no ${key}`);
  }
  return out as unknown as Versions;
}

export function cacheRoot(): string {
  return process.env.CONFLUX_CACHE || join(homedir(), '.cache', 'conflux');
}

/** Where build.sh puts the binaries of the pinned Kubernetes version. */
export function binDir(): string {
  return join(cacheRoot(), `k8s-${versions().K8S_VERSION}`, 'bin');
}

export function binaryPath(name: Binary): string {
  return join(binDir(), name);
}

/** True when every binary is in the cache (build.sh would still check their stamps). */
export function binariesPresent(): boolean {
  return BINARIES.every((name) => existsSync(binaryPath(name)));
}

/** True when a Go toolchain is on PATH, so build.sh can build what the cache lacks. */
export function hasGo(): boolean {
  return spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Runs build.sh, which reuses cached binaries (about a second) or builds what is missing
 * (tens of minutes on two cores the first time). Its progress lines go to `log`.
 */
export async function ensureBinaries(log: (line: string) => void = () => {}): Promise<string> {
  const child = spawn('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const onData = (chunk: Buffer): void => {
    const text = tail + chunk.toString();
    const lines = text.split('\n');
    tail = lines.pop() ?? '';
    for (const line of lines) if (line) log(line);
  };
  child.stdout.on('data', onData);
  const stderr: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => {
    stderr.push(chunk.toString());
    if (stderr.length > 200) stderr.shift();
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (tail) log(tail);
  if (code !== 0) {
    throw new Error(`e2e/cluster/build.sh exited with ${code}:\n${stderr.join('').slice(-4000)}`);
  }
  return binDir();
}
