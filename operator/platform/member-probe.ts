// Asking members for their own view: `/_internal/status` on each running pod's admin port, with a
// short timeout, as the reconciler observes a cluster and as CA rotation checks what each member
// has loaded. A member that does not answer is an observation (with the reason), not an error.

import { type AdminClientOptions, adminCallParsed } from '../../node/api/admin-client.js';
import { type InternalStatus, internalStatusSchema } from '../../node/api/admin-contract.js';
import type { MemberPod } from './platform.js';

/** How long one member may take to answer a probe. */
export const PROBE_TIMEOUT_MS = 2_000;

export interface MemberView {
  pod: MemberPod;
  /** Null when the member did not answer (not running yet, or unreachable). */
  node: InternalStatus | null;
  /** Why `node` is null. */
  error?: string;
}

/** The admin client's options with the probe's timeout. */
export function probeOptions(client: AdminClientOptions): AdminClientOptions {
  return { ...client, timeoutMs: Math.min(client.timeoutMs, PROBE_TIMEOUT_MS) };
}

/** Each pod's `/_internal/status`, in the order of `pods`. */
export function probeMembers(pods: MemberPod[], client: AdminClientOptions): Promise<MemberView[]> {
  const probe = probeOptions(client);
  return Promise.all(
    pods.map(async (pod): Promise<MemberView> => {
      if (!pod.running) return { pod, node: null, error: 'not running' };
      try {
        const node = await adminCallParsed(
          internalStatusSchema,
          pod.addresses.admin,
          'GET',
          '/_internal/status',
          undefined,
          probe,
        );
        return { pod, node };
      } catch (err) {
        return { pod, node: null, error: (err as Error).message };
      }
    }),
  );
}
