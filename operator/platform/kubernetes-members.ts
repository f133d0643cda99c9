// A cluster's member slots as its pods and claims show them: pure functions over the objects the
// Kubernetes platform (kubernetes.ts) reads from its cache or the API server.

import type { V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import type { ConfluxCluster } from '../api/cluster.js';
import {
  DATA_VOLUME,
  POD_TEMPLATE_HASH_ANNOTATION,
  PORTS,
  podHost,
  podName,
  resourceNames,
} from './kubernetes-objects.js';
import type { MemberPod } from './platform.js';

/** The ordinals of the names that are `data-<name>-<ordinal>`, sorted. */
export function volumeOrdinals(cluster: ConfluxCluster, pvcNames: string[]): number[] {
  const prefix = `${DATA_VOLUME}-${cluster.metadata.name}-`;
  return pvcNames
    .filter((n) => n.startsWith(prefix) && /^(0|[1-9]\d*)$/.test(n.slice(prefix.length)))
    .map((n) => Number(n.slice(prefix.length)))
    .sort((a, b) => a - b);
}

/**
 * The member slots of a cluster from its pods: every ordinal below the set size (a pod that does
 * not exist yet is a slot that is not running), and any pod left beyond it (still terminating).
 */
export function memberPods(
  cluster: ConfluxCluster,
  setSize: number,
  pods: V1Pod[],
  memberHost?: (cluster: ConfluxCluster, pod: V1Pod | undefined, podName: string) => string,
  revisions?: { desired: string; set: V1StatefulSet | null },
): MemberPod[] {
  const prefix = `${cluster.metadata.name}-`;
  const byOrdinal = new Map<number, V1Pod>();
  for (const pod of pods) {
    const name = pod.metadata?.name ?? '';
    const rest = name.startsWith(prefix) ? name.slice(prefix.length) : '';
    if (!/^(0|[1-9]\d*)$/.test(rest)) continue;
    const owner = pod.metadata?.ownerReferences?.find((r) => r.controller);
    if (owner && (owner.kind !== 'StatefulSet' || owner.name !== resourceNames(cluster).statefulSet))
      continue;
    byOrdinal.set(Number(rest), pod);
  }
  const ordinals = new Set([...Array.from({ length: setSize }, (_, i) => i), ...byOrdinal.keys()]);
  return [...ordinals]
    .sort((a, b) => a - b)
    .map((ordinal) => {
      const pod = byOrdinal.get(ordinal);
      const name = podName(cluster, ordinal);
      const host = memberHost ? memberHost(cluster, pod, name) : podHost(cluster, name);
      const running = pod?.status?.phase === 'Running' && !pod.metadata?.deletionTimestamp;
      // A terminating pod may still report Ready; it is on its way out, so it counts as neither.
      const ready =
        running && (pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
      const revision = pod?.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION];
      return {
        ordinal,
        name,
        running,
        ready,
        ...(revision === undefined ? {} : { revision }),
        ...(revisions && pod ? { outdated: isOutdated(pod, revisions.desired, revisions.set) } : {}),
        addresses: {
          api: `${host}:${PORTS.api}`,
          raft: `${host}:${PORTS.raft}`,
          admin: `${host}:${PORTS.admin}`,
        },
      };
    });
}

const REVISION_LABEL = 'controller-revision-hash';

/**
 * A pod runs an older template than the spec asks for: its template digest differs, or (once the
 * StatefulSet controller has seen the set's current generation) its controller-revision-hash is
 * not the set's updateRevision.
 */
export function isOutdated(pod: V1Pod, desired: string, set: V1StatefulSet | null): boolean {
  if (pod.metadata?.annotations?.[POD_TEMPLATE_HASH_ANNOTATION] !== desired) return true;
  const status = set?.status;
  const label = pod.metadata?.labels?.[REVISION_LABEL];
  const seen =
    status?.observedGeneration !== undefined && status.observedGeneration === set?.metadata?.generation;
  return seen && !!status?.updateRevision && label !== undefined && label !== status.updateRevision;
}
