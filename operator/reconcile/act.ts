// act: carry out the one step plan() chose. Every step is idempotent (the admin API answers a
// repeated add/remove with the same operation, a repeated initialize or restore with the same
// result), so an operator that crashes mid-step simply takes it again after a restart.

import {
  type AdminClientOptions,
  adminCall,
  adminCallParsed,
  remoteError,
} from '../../node/api/admin-client.js';
import {
  forceNewClusterResponseSchema,
  initializeResponseSchema,
  type MemberAddresses,
  operationSchema,
  restoreResponseSchema,
} from '../../node/api/admin-contract.js';
import type { MemberPod, Platform } from '../platform/platform.js';
import { syncAuth } from './auth-io.js';
import { adminAddressOf, statusSource } from './observe.js';
import type { Action, Observation } from './types.js';

/** What a step learned that the status must record. */
export interface ActResult {
  operationId?: string;
  clusterId?: string;
  restoredFrom?: { clusterId: string; uri: string };
}

export async function act(platform: Platform, obs: Observation, action: Action): Promise<ActResult> {
  if (isAdminAction(action)) return actOnMembers(obs, await platform.adminClient(obs.cluster), action);
  const cluster = obs.cluster;
  switch (action.type) {
    case 'ensure-members':
      await platform.ensureMembers(cluster, action.size, action.minAvailable);
      return {};
    case 'repair-owned':
      if (!platform.repairOwned) throw new Error(`the ${platform.kind} platform owns no objects to repair`);
      await platform.repairOwned(cluster, action.minAvailable);
      return {};
    case 'renew-certificates':
      if (!platform.renewCertificates)
        throw new Error(`the ${platform.kind} platform issues no certificates`);
      await platform.renewCertificates(cluster);
      return {};
    case 'rotate-ca':
      if (!platform.rotateCa) throw new Error(`the ${platform.kind} platform has no CA to rotate`);
      await platform.rotateCa(cluster, action.step);
      return {};
    case 'delete-volume':
      await platform.deleteVolume(cluster, action.ordinal);
      return {};
    case 'wait':
    case 'none':
      return {};
    case 'restart-member': {
      // Plan chose it from an observation of this revision; a newer spec waits for the next pass.
      const now = await platform.templateRevision(cluster);
      if (now !== action.revision) throw new Error(`the pod template changed to ${now} since the plan`);
      await platform.restartMember(cluster, action.ordinal);
      return {};
    }
    case 'recreate-member':
      await platform.recreateMember(cluster, action.ordinal);
      return {};
    case 'sync-auth':
      await syncAuth(platform, obs, action, () => memberOf(obs));
      return {};
  }
}

const ADMIN_ACTIONS = [
  'initialize',
  'restore',
  'add-member',
  'transfer-leader',
  'remove-member',
  'force-new-cluster',
] as const;
type AdminAction = Extract<Action, { type: (typeof ADMIN_ACTIONS)[number] }>;

function isAdminAction(action: Action): action is AdminAction {
  return (ADMIN_ACTIONS as readonly string[]).includes(action.type);
}

/** The actions that are calls to the members' admin APIs. */
async function actOnMembers(
  obs: Observation,
  client: AdminClientOptions,
  action: AdminAction,
): Promise<ActResult> {
  const slot = (ordinal: number) => slotOf(obs, ordinal);
  const member = () => memberOf(obs);
  switch (action.type) {
    case 'initialize': {
      const members: Record<string, MemberAddresses> = {};
      for (const ordinal of action.ordinals) {
        const s = slot(ordinal);
        if (!s.node) throw new Error(`slot ${ordinal} did not answer`);
        members[s.node.node_id] = addressesOf(s.pod);
      }
      const res = await adminCallParsed(
        initializeResponseSchema,
        slot(action.ordinals[0] ?? 0).pod.addresses.admin,
        'POST',
        '/_cluster/initialize',
        { members },
        client,
      );
      return { clusterId: res.cluster_id };
    }
    case 'restore':
      return restoreInto(slot(0).pod.addresses.admin, client, action);
    case 'add-member': {
      const s = slot(action.ordinal);
      if (!s.node) throw new Error(`slot ${action.ordinal} did not answer`);
      const op = await adminCallParsed(
        operationSchema,
        member(),
        'POST',
        '/_cluster/nodes',
        { node_id: s.node.node_id, ...addressesOf(s.pod) },
        client,
      );
      return { operationId: op.id };
    }
    case 'transfer-leader': {
      const answer = await adminCall(member(), 'POST', '/_cluster/leader/transfer', {}, client);
      if (answer.status !== 200) throw remoteError(member(), answer);
      return {};
    }
    case 'remove-member': {
      const op = await adminCallParsed(
        operationSchema,
        member(),
        'DELETE',
        `/_cluster/nodes/${action.nodeId}`,
        undefined,
        client,
      );
      return { operationId: op.id };
    }
    case 'force-new-cluster': {
      // Sent to the survivor itself (never forwarded: there is no leader). The next observation
      // sees it lead the new cluster, which names the old one: plan records both from there.
      const s = slot(action.ordinal);
      if (s.node?.node_id !== action.nodeId) {
        throw new Error(`slot ${action.ordinal} no longer holds ${action.nodeId}`);
      }
      await adminCallParsed(
        forceNewClusterResponseSchema,
        s.pod.addresses.admin,
        'POST',
        '/_cluster/force-new-cluster',
        { node_id: action.nodeId, expected_cluster_id: action.expectedClusterId },
        { ...client, timeoutMs: Math.max(client.timeoutMs, FORCE_TIMEOUT_MS) },
      );
      return {};
    }
  }
}

function slotOf(obs: Observation, ordinal: number) {
  const s = obs.slots.find((x) => x.pod.ordinal === ordinal);
  if (!s) throw new Error(`slot ${ordinal} does not exist`);
  return s;
}

/** The admin address of a member that answers for the cluster. */
function memberOf(obs: Observation): string {
  const source = statusSource(obs.slots);
  const address = source && adminAddressOf(source);
  if (!address) throw new Error('no member of the cluster answers');
  return address;
}

/** Restores the backup into the pristine node at `admin`, which starts a new cluster. */
async function restoreInto(
  admin: string,
  client: AdminClientOptions,
  action: Extract<Action, { type: 'restore' }>,
): Promise<ActResult> {
  const res = await adminCallParsed(
    restoreResponseSchema,
    admin,
    'POST',
    '/_cluster/restore',
    {
      snapshot_uri: action.snapshotUri,
      ...(action.expectedClusterId ? { expected_cluster_id: action.expectedClusterId } : {}),
    },
    { ...client, timeoutMs: RESTORE_TIMEOUT_MS },
  );
  return {
    clusterId: res.cluster_id,
    restoredFrom: { clusterId: res.restored_from.cluster_id, uri: res.restored_from.uri },
  };
}

/** A recovery answers once the survivor leads its new cluster (an election or two). */
const FORCE_TIMEOUT_MS = 30_000;

/** A restore downloads and verifies the whole backup before it answers. */
const RESTORE_TIMEOUT_MS = 10 * 60_000;

function addressesOf(pod: MemberPod): MemberAddresses {
  return {
    api_address: pod.addresses.api,
    raft_address: pod.addresses.raft,
    admin_address: pod.addresses.admin,
  };
}
