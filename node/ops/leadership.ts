// Waiting for this node to lead: the last step of a restore or a forced new cluster, where the
// node is the only voter and elects itself within an election timeout.

import { ConfluxError } from '../errors.js';
import type { RaftMetrics } from '../raft/types.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Resolves once `raft` leads; after `timeoutMs` refuses with NO_LEADER, saying `done` happened
 * and the same request may be sent again.
 */
export async function waitForLeadership(
  raft: { metrics(): RaftMetrics },
  opts: { nodeId: string; done: string; timeoutMs?: number | undefined },
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  while (raft.metrics().state !== 'leader') {
    if (Date.now() > deadline) {
      throw new ConfluxError(
        'NO_LEADER',
        `${opts.done} but node ${opts.nodeId} did not become leader in time; retry the same request`,
      );
    }
    await sleep(10);
  }
}
