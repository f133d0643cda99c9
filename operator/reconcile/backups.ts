// Backups the operator takes: on the cluster's cron schedule (spec.backup), and on demand for each
// ConfluxBackup resource. Both call POST /_cluster/backup through any member (it reaches the
// leader); the node streams the snapshot to the destination. One backup per cluster at a time:
// a schedule tick while one runs is skipped, never queued behind it.

import { Cron } from 'croner';
import { adminCallParsed } from '../../node/api/admin-client.js';
import { backupResponseSchema } from '../../node/api/admin-contract.js';
import type { ClusterStatus, ConfluxBackup, ConfluxCluster } from '../api/cluster.js';
import { setCondition } from './conditions.js';

export type BackupResult =
  | { ok: true; uri: string; revision: number; skipped: boolean }
  | { ok: false; error: string };

/** When the next scheduled backup is due: the first cron time after the last backup (or creation). */
export function nextBackupTime(cluster: ConfluxCluster): Date | null {
  const b = cluster.spec.backup;
  if (!b || b.suspend) return null;
  const after =
    cluster.status?.lastBackup?.time ?? cluster.metadata.creationTimestamp ?? new Date(0).toISOString();
  return new Cron(b.schedule, { timezone: 'UTC', paused: true }).nextRun(new Date(after)) ?? null;
}

/** Ask a member to back the cluster up to `destination` (a URI). */
export async function runBackup(
  memberAdmin: string,
  destination: string,
  force: boolean,
  client: {
    timeoutMs: number;
    tls?: { cert: string | Buffer; key: string | Buffer; ca: string | Buffer | (string | Buffer)[] };
  },
): Promise<BackupResult> {
  try {
    const res = await adminCallParsed(
      backupResponseSchema,
      memberAdmin,
      'POST',
      '/_cluster/backup',
      { destination, force },
      { ...client, timeoutMs: BACKUP_TIMEOUT_MS },
    );
    return { ok: true, uri: res.uri, revision: res.revision, skipped: res.skipped };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/** A backup streams the whole snapshot before it answers. */
const BACKUP_TIMEOUT_MS = 30 * 60_000;

/** The cluster status after a scheduled backup finished. */
export function withBackupResult(
  cluster: ConfluxCluster,
  status: ClusterStatus,
  result: BackupResult,
  now: Date,
): ClusterStatus {
  const generation = cluster.metadata.generation;
  const conditions = setCondition(
    status.conditions ?? [],
    result.ok
      ? {
          type: 'BackupSucceeded',
          status: 'True',
          reason: result.skipped ? 'Unchanged' : 'Completed',
          message: result.skipped ? `nothing changed since ${result.uri}` : `backed up to ${result.uri}`,
        }
      : { type: 'BackupSucceeded', status: 'False', reason: 'Failed', message: result.error },
    now,
    generation,
  );
  const lastBackup = result.ok
    ? { time: now.toISOString(), uri: result.uri, revision: result.revision }
    : status.lastBackup;
  const next = { ...status, conditions, ...(lastBackup ? { lastBackup } : {}) };
  const due = nextBackupTime({ ...cluster, status: next });
  return { ...next, ...(due ? { nextBackup: due.toISOString() } : {}) };
}

/** The status of a ConfluxBackup after its backup ran. */
export function backupStatusAfter(
  backup: ConfluxBackup,
  result: BackupResult,
  startedAt: Date,
  now: Date,
): NonNullable<ConfluxBackup['status']> {
  const generation = backup.metadata.generation;
  const base = {
    observedGeneration: generation,
    startedAt: startedAt.toISOString(),
    completedAt: now.toISOString(),
  };
  if (!result.ok) {
    return {
      ...base,
      phase: 'Failed',
      message: result.error,
      conditions: setCondition(
        [],
        { type: 'Succeeded', status: 'False', reason: 'Failed', message: result.error },
        now,
        generation,
      ),
    };
  }
  return {
    ...base,
    phase: 'Succeeded',
    uri: result.uri,
    revision: result.revision,
    message: `backed up to ${result.uri}`,
    conditions: setCondition(
      [],
      { type: 'Succeeded', status: 'True', reason: 'Completed', message: result.uri },
      now,
      generation,
    ),
  };
}
