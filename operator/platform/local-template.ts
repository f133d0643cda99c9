// A LocalPlatform slot's "pod template": the parts of a ConfluxCluster's spec that reach a local
// node process, and the revision (a digest) that tells a slot started with an older one.
//
// What counts, locally: the Raft timings (flags), spec.env (the process environment) and the
// backup settings (flags). spec.resources has no meaning for a child process and is ignored.
// spec.image names a container image, which a process cannot run: it counts only when the
// platform is given an explicit map from images to node commands (`images`), and then an image
// missing from the map is refused rather than run with some other command.

import { createHash } from 'node:crypto';
import type { ConfluxCluster } from '../api/cluster.js';
import type { NodeCommand } from './local-process.js';

/** Images a LocalPlatform can run, each as the node command that stands for it. */
export type ImageCommands = Readonly<Record<string, NodeCommand>>;

export class UnknownImageError extends Error {
  override readonly name = 'UnknownImageError';
}

/** The revision of `cluster`'s template on a local platform (with or without an image map). */
export function localRevision(cluster: ConfluxCluster, images: ImageCommands | undefined): string {
  const { raft, env, backup, image } = cluster.spec;
  const template = { raft, env: env ?? [], backup: backup ?? null, image: images ? image : null };
  return createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 16);
}

/** The command that runs `cluster`'s nodes: `fallback` without an image map, else the image's. */
export function commandFor(
  cluster: ConfluxCluster,
  images: ImageCommands | undefined,
  fallback: NodeCommand,
): NodeCommand {
  if (!images) return fallback;
  const command = images[cluster.spec.image];
  if (!command) {
    const known = Object.keys(images).join(', ') || 'none';
    throw new UnknownImageError(
      `image ${cluster.spec.image} has no node command on the local platform (known images: ${known})`,
    );
  }
  return command;
}

/** spec.env as the process environment it adds. */
export function specEnv(cluster: ConfluxCluster): Record<string, string> {
  return Object.fromEntries((cluster.spec.env ?? []).map((e) => [e.name, e.value]));
}
