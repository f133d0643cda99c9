// `conflux status`: the cluster as `GET /_cluster/status` reports it, as a table, or the document
// itself with --json.

import Table from 'cli-table3';
import { type ClusterStatus, clusterStatusSchema } from '../../node/api/admin-contract.js';
import { type CommandContext, callParsed, httpCall, json } from './context.js';

export interface LastBackup {
  time: string;
  uri: string;
}

export async function statusCommand(ctx: CommandContext): Promise<void> {
  const { target, io } = ctx;
  const { doc, data } = await callParsed(clusterStatusSchema, target.adminUrl, {
    method: 'GET',
    path: '/_cluster/status',
    tls: target.tls,
  });
  if (target.json) {
    io.stdout(json(doc));
    return;
  }
  const lastBackup = target.explicitAdmin ? undefined : await localLastBackup(ctx);
  io.stdout(renderStatus(data, lastBackup));
}

/** The local cluster's last backup, from the `npm start` control endpoint (undefined if unknown). */
async function localLastBackup(ctx: CommandContext): Promise<LastBackup | undefined> {
  if (!ctx.target.controlUrl) return undefined;
  try {
    const answer = await httpCall(ctx.target.controlUrl, {
      method: 'GET',
      path: '/apis/conflux.io/v1alpha1/namespaces/default/confluxclusters/local',
      timeoutMs: 1_000,
    });
    if (answer.status !== 200) return undefined;
    const c = JSON.parse(answer.body.toString('utf8')) as { status?: { lastBackup?: LastBackup } };
    return c.status?.lastBackup;
  } catch {
    return undefined;
  }
}

export function renderStatus(s: ClusterStatus, lastBackup?: LastBackup): string {
  const table = new Table({
    head: ['member', 'role', 'reachable', 'lag', 'voter', 'api', 'admin'],
    style: { head: [], border: [] },
  });
  for (const id of Object.keys(s.nodes).sort()) {
    const m = s.nodes[id];
    if (!m) continue;
    table.push([
      id,
      m.status,
      m.is_reachable ? 'yes' : 'NO',
      m.lag === null ? '-' : String(m.lag),
      m.voter ? 'yes' : 'no',
      m.api_address ?? '-',
      m.admin_address ?? '-',
    ]);
  }
  const lines = [
    table.toString(),
    `leader:          ${s.leader_id ?? 'none'}`,
    `term:            ${s.current_term}`,
    `fault tolerance: ${s.fault_tolerance} (of ${s.voters} voters)`,
    `cluster id:      ${s.cluster_id ?? 'not initialized'}`,
    `healthy:         ${s.healthy ? 'yes' : 'no'}`,
  ];
  if (s.restored_from)
    lines.push(`restored from:   ${s.restored_from.uri} (cluster ${s.restored_from.cluster_id})`);
  if (lastBackup) lines.push(`last backup:     ${lastBackup.time} ${lastBackup.uri}`);
  for (const e of s.errors) lines.push(`problem:         ${e}`);
  return lines.join('\n');
}
