// `conflux status`: the cluster as `GET /_cluster/status` reports it, as a table, or the document
// itself with --json.

import Table from 'cli-table3';
import { type ClusterStatus, clusterStatusSchema } from '../../node/api/admin-contract.js';
import { CliError, type CommandContext, callParsed, httpCall, json } from './context.js';
import { unreachable, withAddress } from './members.js';

export interface LastBackup {
  time: string;
  uri: string;
}

export async function statusCommand(ctx: CommandContext): Promise<void> {
  const { target, io } = ctx;
  const view = await gatherStatus(ctx);
  const { doc, data } = view.best;
  const problem = availability(view);
  if (target.json) io.stdout(json(doc));
  else {
    const lastBackup = target.explicitAdmin ? undefined : await localLastBackup(ctx);
    io.stdout(renderStatus(data, lastBackup, view.problems));
  }
  if (problem) throw problem;
}

interface Asked {
  url: URL;
  status?: { doc: unknown; data: ClusterStatus };
  failure?: string;
}

export interface StatusView {
  /** The most authoritative answer: from an initialized member that knows the leader, the leader's own first. */
  best: { url: URL; doc: unknown; data: ClusterStatus };
  asked: Asked[];
  /** What the members' own answer cannot know: addresses that do not answer, or hold no or another cluster. */
  problems: string[];
}

/** Asks every member the CLI knows for /_cluster/status and keeps the best answer. */
export async function gatherStatus(ctx: CommandContext): Promise<StatusView> {
  const ask = (url: URL): Promise<Asked> =>
    callParsed(clusterStatusSchema, url, {
      method: 'GET',
      path: '/_cluster/status',
      tls: ctx.target.tls,
      timeoutMs: 5_000,
    }).then(
      (status) => ({ url, status }),
      (err: unknown) => ({
        url,
        failure:
          err instanceof CliError
            ? (err.detail.message ?? err.message).replace(/^cannot reach \S+: /, '')
            : String(err),
      }),
    );
  const asked = await Promise.all(ctx.target.admins.map(ask));
  // Members the answers list that were not asked (a partial --admin list, npm start's further slots).
  const known = new Set(asked.map((a) => a.url.host));
  const more = new Set<string>();
  for (const a of asked)
    for (const m of Object.values(a.status?.data.nodes ?? {}))
      if (m.admin_address && !known.has(m.admin_address)) more.add(m.admin_address);
  asked.push(...(await Promise.all([...more].map((h) => ask(withAddress(ctx.target.adminUrl, h))))));

  const answered = asked.filter((a) => a.status);
  const best = answered.sort((a, b) => rank(b) - rank(a))[0];
  if (!best?.status) throw unreachable(asked.map((a) => `${a.url.host} (${a.failure})`));
  const bestData = best.status.data;
  const memberHosts = new Set(Object.values(bestData.nodes).map((m) => m.admin_address));
  const problems: string[] = [];
  for (const a of asked) {
    if (a === best) continue;
    const host = a.url.host;
    const s = a.status?.data;
    if (!s) {
      // Members' reachability is in the answer itself; a listed address that is no member is news.
      if (!memberHosts.has(host) && (ctx.target.explicitAdmin || !bestData.cluster_id))
        problems.push(`${host} does not answer (${a.failure})`);
    } else if (bestData.cluster_id && !s.cluster_id) {
      problems.push(`${host} answers but holds no cluster (a new node, or one whose data was lost)`);
    } else if (bestData.cluster_id && s.cluster_id !== bestData.cluster_id) {
      problems.push(`${host} belongs to another cluster (${s.cluster_id})`);
    }
  }
  return { best: { url: best.url, ...best.status }, asked, problems };

  function rank(a: Asked): number {
    const s = a.status?.data;
    if (!s) return -1;
    if (!s.cluster_id) return 0;
    const leader = s.leader_id ? s.nodes[s.leader_id] : undefined;
    const fromLeader = leader?.admin_address === a.url.host;
    return (fromLeader ? 3e12 : s.leader_id ? 2e12 : 1e12) + s.current_term * 1e3 + reachable(s);
  }
}

function reachable(s: ClusterStatus): number {
  return Object.values(s.nodes).filter((m) => m.voter && m.is_reachable).length;
}

/** Why the cluster cannot serve writes now (exit 1), or null. */
function availability(view: StatusView): CliError | null {
  const s = view.best.data;
  const silent = view.asked.filter((a) => !a.status).map((a) => `${a.url.host} (${a.failure})`);
  if (!s.cluster_id) {
    if (silent.length === 0) return null; // pristine nodes, all of them answering
    return new CliError(
      `error: no member that answers belongs to a cluster, and ${silent.join(', ')} do not answer`,
      1,
      { code: 'UNREACHABLE' },
    );
  }
  const quorum = Math.floor(s.voters / 2) + 1;
  if (s.fault_tolerance < 0 || reachable(s) < quorum) {
    const message = `quorum lost: ${reachable(s)} of ${s.voters} voters reachable, ${quorum} needed; writes and linearizable reads stop (README: Runbooks, "Quorum is lost")`;
    return new CliError(`error: QUORUM_LOST: ${message}`, 1, { code: 'QUORUM_LOST', message });
  }
  if (!s.leader_id) {
    const message =
      'no leader right now (an election in progress?); writes wait or fail until one is elected';
    return new CliError(`error: NO_LEADER: ${message}`, 1, { code: 'NO_LEADER', message });
  }
  return null;
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

export function renderStatus(
  s: ClusterStatus,
  lastBackup?: LastBackup,
  problems: readonly string[] = [],
): string {
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
  for (const e of [...s.errors, ...problems]) lines.push(`problem:         ${e}`);
  return lines.join('\n');
}
