// The I/O of the auth step (plan/auth.ts): read the cluster's client users and roles from the
// leader's admin API for observe, and for act send the batch plan chose, then have the platform
// issue and delete the client certificates. A user is deleted before its certificate's Secret, so
// the certificate is refused from the moment the change is applied.

import { type AdminClientOptions, adminCallParsed } from '../../node/api/admin-client.js';
import type { ConfluxCluster } from '../api/cluster.js';
import type { Platform } from '../platform/platform.js';
import { type AuthDoc, authDocSchema, authWanted } from './plan/auth.js';
import type { Action, Observation } from './types.js';

const AUTH_PATH = '/_cluster/auth';

/** The auth document, or null when there is nothing to keep or no member answered. */
export async function observeAuth(
  cluster: ConfluxCluster,
  address: string | undefined,
  client: AdminClientOptions,
): Promise<AuthDoc | null> {
  if (!address || !authWanted(cluster.spec.auth, cluster.status?.auth)) return null;
  try {
    return await adminCallParsed(authDocSchema, address, 'GET', AUTH_PATH, undefined, client);
  } catch {
    return null; // no leader now: plan waits for the next pass
  }
}

/** What the platform says about the issued client certificates, when it issues any. */
export async function observeClientCertificates(platform: Platform, cluster: ConfluxCluster) {
  if (!platform.observeClientCertificates) return undefined;
  if (!authWanted(cluster.spec.auth, cluster.status?.auth)) return {};
  return platform.observeClientCertificates(cluster);
}

export async function syncAuth(
  platform: Platform,
  obs: Observation,
  action: Extract<Action, { type: 'sync-auth' }>,
  member: () => string,
): Promise<void> {
  if (action.changes.length > 0) {
    const client = await platform.adminClient(obs.cluster);
    await adminCallParsed(authDocSchema, member(), 'POST', AUTH_PATH, { changes: action.changes }, client);
  }
  if (action.issueCertificates.length === 0 && action.removeCertificates.length === 0) return;
  if (!platform.syncClientCertificates)
    throw new Error(`the ${platform.kind} platform issues no client certificates`);
  await platform.syncClientCertificates(obs.cluster, action.issueCertificates, action.removeCertificates);
}
