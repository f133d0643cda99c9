// Images as this kubelet knows them: no registry and no layers, each image name maps to what its
// config would say (ENTRYPOINT, CMD, WORKDIR, ENV, USER), run against this machine's filesystem.
// An image that is not in the map cannot be "pulled": the container waits with ErrImagePull,
// then ImagePullBackOff, as in a real cluster.

import { chmodSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { V1Container } from '@kubernetes/client-node';
import { expandVars } from './env.js';

export interface ImageSpec {
  /** ENTRYPOINT: replaced by the container's `command`. */
  command: string[];
  /** CMD: replaced by the container's `args` (and dropped when `command` is given). */
  args?: string[];
  /** WORKDIR (default: `/`). */
  workingDir?: string;
  /** ENV; PATH defaults to the usual Debian one. */
  env?: Record<string, string>;
  /** USER: what runs when the pod's securityContext names no runAsUser/runAsGroup (default root). */
  user?: { uid: number; gid: number };
  /**
   * The image's own files: host directories bound into the container before any volume, as an
   * image's layers are there before its volumes (a volume at /tmp cannot hide them).
   */
  files?: { hostPath: string; mountPath: string }[];
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Where image files live by default: outside /tmp, /data and the other paths pod volumes are
 * mounted over (a volume at /tmp would hide a PATH entry under the state directory).
 */
export const DEFAULT_IMAGE_BIN = '/opt/conflux-kubelet/images/conflux/bin';

/**
 * The argv of a container as Kubernetes defines it: `command` replaces the entrypoint and `args`
 * the image's CMD; a `command` without `args` runs alone. `$(VAR)` refers to the container's env.
 */
export function containerArgv(image: ImageSpec, c: V1Container, env: ReadonlyMap<string, string>): string[] {
  const expand = (s: string) => expandVars(s, (n) => env.get(n));
  let argv: string[];
  if (c.command?.length) argv = [...c.command.map(expand), ...(c.args ?? []).map(expand)];
  else if (c.args) argv = [...image.command, ...c.args.map(expand)];
  else argv = [...image.command, ...(image.args ?? [])];
  if (argv.length === 0) throw new Error('no command specified');
  return argv;
}

/**
 * The Conflux image (`ENTRYPOINT ["node", "dist/node/main.js"]`, `WORKDIR /app`, `USER
 * 10001:10001`) run from a source checkout: WORKDIR is the repository, and a `node` on the image's
 * PATH runs `dist/<path>.js` as `<path>.ts` through tsx, so the operator's container
 * (`command: [node, dist/operator/main.js]`) and the Helm chart's shell wrapper (`exec node
 * dist/node/main.js`) run unchanged. Writes that `node` into `binDir` (default DEFAULT_IMAGE_BIN;
 * uid 10001 must be able to traverse it, and no pod volume may cover it).
 */
export function confluxImage(opts: { repoDir: string; binDir?: string; nodePath?: string }): ImageSpec {
  const node = opts.nodePath ?? process.execPath;
  const repoDir = resolve(opts.repoDir);
  const binDir = resolve(opts.binDir ?? DEFAULT_IMAGE_BIN);
  mkdirSync(binDir, { recursive: true, mode: 0o755 });
  chmodSync(binDir, 0o755);
  for (const path of [binDir, repoDir, dirname(node)]) assertTraversable(path);
  const shim = join(binDir, 'node');
  // Written beside and renamed over: a container may be exec'ing the old one right now.
  const tmp = `${shim}.${process.pid}.tmp`;
  writeFileSync(
    tmp,
    [
      '#!/bin/sh',
      '# The image`s `node`: dist/<path>.js from the build is <path>.ts in the checkout.',
      'case "$1" in',
      `  dist/*.js) f=\${1#dist/}; shift; exec ${node} --import tsx "\${f%.js}.ts" "$@" ;;`,
      'esac',
      `exec ${node} "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(tmp, 0o755);
  renameSync(tmp, shim);
  return {
    command: ['node', 'dist/node/main.js'],
    // The checkout is the image's /app (its WORKDIR, as in the Dockerfile), read-only like a layer.
    workingDir: '/app',
    files: [{ hostPath: repoDir, mountPath: '/app' }],
    env: { PATH: `${binDir}:${DEFAULT_PATH}`, NODE_ENV: 'production' },
    user: { uid: 10001, gid: 10001 },
  };
}

/**
 * Throws unless every directory down to `path` lets any user through (o+x): the image's user
 * (10001) must reach its PATH and WORKDIR (a mkdtemp() directory is 0700, for example).
 */
export function assertTraversable(path: string): void {
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) {
      throw new Error(
        `${dir} is not traversable by other users (mode ${(statSync(dir).mode & 0o777).toString(8)}): chmod o+x it`,
      );
    }
    if (dir === '/') return;
  }
}
