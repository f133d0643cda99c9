// Images as this kubelet knows them: no registry and no layers, each image name maps to what its
// config would say (ENTRYPOINT, CMD, WORKDIR, ENV, USER), run against this machine's filesystem.
// An image that is not in the map cannot be "pulled": the container waits with ErrImagePull,
// then ImagePullBackOff, as in a real cluster.

import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
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
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

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
 * dist/node/main.js`) run unchanged. Writes that `node` into `binDir` (which uid 10001 must be
 * able to traverse).
 */
export function confluxImage(opts: { repoDir: string; binDir: string; nodePath?: string }): ImageSpec {
  const node = opts.nodePath ?? process.execPath;
  const repoDir = resolve(opts.repoDir);
  mkdirSync(opts.binDir, { recursive: true, mode: 0o755 });
  chmodSync(opts.binDir, 0o755);
  const shim = join(opts.binDir, 'node');
  writeFileSync(
    shim,
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
  chmodSync(shim, 0o755);
  return {
    command: ['node', 'dist/node/main.js'],
    workingDir: repoDir,
    env: { PATH: `${resolve(opts.binDir)}:${DEFAULT_PATH}`, NODE_ENV: 'production' },
    user: { uid: 10001, gid: 10001 },
  };
}
