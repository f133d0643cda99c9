// observe: everything plan() decides on, read fresh each pass — the member slots from the
// platform, each node's own view (`/_internal/status`, with the TLS material it has loaded), the
// cluster's aggregated status, the admin operation in flight, and what the cluster owns besides
// its members (Services, disruption budget, certificates and their expiry). A node that does not answer is an observation, not an error.

import { type AdminClientOptions, adminCallParsed } from '../../node/api/admin-client.js';
import {
  type ClusterStatus,
  clusterStatusSchema,
  type InternalStatus,
  type Operation,
  operationSchema,
} from '../../node/api/admin-contract.js';
import type { ConfluxCluster } from '../api/cluster.js';
import { probeMembers, probeOptions } from '../platform/member-probe.js';
import type { Platform } from '../platform/platform.js';
import { observeAuth, observeClientCertificates } from './auth-io.js';
import type { Observation, SlotView } from './types.js';

export async function observe(
  platform: Platform,
  cluster: ConfluxCluster,
  now = new Date(),
): Promise<Observation> {
  const client = await platform.adminClient(cluster);
  const probe = probeOptions(client);
  const [setSize, pods, volumes, templateRevision, owned] = await Promise.all([
    platform.setSize(cluster),
    platform.pods(cluster),
    platform.volumes(cluster),
    platform.templateRevision(cluster),
    platform.observeOwned?.(cluster),
  ]);
  const slots: SlotView[] = await probeMembers(pods, client);
  slots.sort((a, b) => a.pod.ordinal - b.pod.ordinal);
  const source = statusSource(slots);
  const status = source ? await clusterStatus(source, probe) : null;
  const operation = source ? await operationInFlight(cluster, source, probe) : null;
  const auth = await observeAuth(cluster, source ? adminAddressOf(source) : undefined, probe);
  const clientCertificates = await observeClientCertificates(platform, cluster);
  return {
    now,
    cluster,
    setSize,
    slots,
    volumes,
    status,
    operation,
    templateRevision,
    ...(owned ? { owned } : {}),
    auth,
    ...(clientCertificates ? { clientCertificates } : {}),
  };
}

/** Who to ask for cluster-wide documents: the leader if a slot runs it, else any initialized node. */
export function statusSource(slots: SlotView[]): InternalStatus | null {
  const initialized = slots.map((s) => s.node).filter((n): n is InternalStatus => n?.initialized === true);
  return initialized.find((n) => n.status === 'Leader') ?? initialized[0] ?? null;
}

/** The admin address of a node, as its own view records it. */
export function adminAddressOf(node: InternalStatus): string | undefined {
  return node.nodes[node.node_id]?.admin_address;
}

async function clusterStatus(
  source: InternalStatus,
  client: AdminClientOptions,
): Promise<ClusterStatus | null> {
  const address = adminAddressOf(source);
  if (!address) return null;
  try {
    return await adminCallParsed(clusterStatusSchema, address, 'GET', '/_cluster/status', undefined, client);
  } catch {
    return null;
  }
}

async function operationInFlight(
  cluster: ConfluxCluster,
  source: InternalStatus,
  client: AdminClientOptions,
): Promise<Operation | null> {
  const id = cluster.status?.operation?.operationId;
  const address = adminAddressOf(source);
  if (!id || !address) return null;
  try {
    return await adminCallParsed(
      operationSchema,
      address,
      'GET',
      `/_cluster/operations/${id}`,
      undefined,
      client,
    );
  } catch {
    return null; // unknown to the current leader (it changed, or restarted): plan retries the step
  }
}
