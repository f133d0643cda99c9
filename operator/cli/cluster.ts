// `conflux scale|leader|backup|restore|nodes`: the cluster-operations API (admin port) and, for
// scale, the `npm start` control endpoint's Kubernetes scale subresource.

import {
  backupResponseSchema,
  leaderResponseSchema,
  type Operation,
  operationSchema,
  restoreResponseSchema,
} from '../../node/api/admin-contract.js';
import {
  answerError,
  CliError,
  type CommandContext,
  callParsed,
  httpCall,
  isLoopback,
  json,
  jsonOf,
  parsedOf,
  type Schema,
} from './context.js';
import { positive } from './kv.js';
import { callMember, type MemberRequest } from './members.js';

const LONG_MS = 15 * 60_000;

export async function scaleCommand(
  ctx: CommandContext,
  replicasText: string,
  o: { name?: string },
): Promise<void> {
  const replicas = positive('REPLICAS', replicasText);
  const name = o.name ?? 'local';
  if (!ctx.target.controlUrl) {
    throw new CliError(
      [
        `error: scale changes the ConfluxCluster's spec, and ${ctx.target.adminUrl.host} is not the local cluster of npm start.`,
        `On Kubernetes the operator does it: kubectl scale confluxcluster/${name === 'local' ? 'NAME' : name} --replicas=${replicas}`,
      ].join('\n'),
      2,
    );
  }
  const control = await controlEndpoint(ctx, name);
  const answer = await httpCall(control, {
    method: 'PUT',
    path: clusterPath(name, '/scale'),
    json: { spec: { replicas } },
  });
  if (answer.status !== 200) throw answerError(answer);
  const doc = JSON.parse(answer.body.toString('utf8')) as {
    spec: { replicas: number };
    status: { replicas: number };
  };
  ctx.io.stdout(
    ctx.target.json
      ? json(doc)
      : `${name}: ${doc.status.replicas} → ${doc.spec.replicas} replicas requested; the operator adds or removes members one at a time (watch with: conflux status)`,
  );
}

export const clustersPath = (namespace = 'default') =>
  `/apis/conflux.io/v1alpha1/namespaces/${encodeURIComponent(namespace)}/confluxclusters`;
export const clusterPath = (name: string, sub = '', namespace = 'default') =>
  `${clustersPath(namespace)}/${encodeURIComponent(name)}${sub}`;

/**
 * The npm start control endpoint (BASE-1) of the cluster the CLI targets. With --admin or --api on
 * loopback, BASE comes from their ports (slot k listens on BASE+200+k and BASE+100+k; k is in the
 * node id npm start gives, `<name>-<k>-<hex>`); otherwise from CONFLUX_BASE_PORT (default 7101).
 */
export async function controlEndpoint(ctx: CommandContext, name: string): Promise<URL> {
  const t = ctx.target;
  const tried: URL[] = [];
  const given = [
    ...(t.explicitAdmin ? t.admins.map((u) => ({ u, offset: 200 })) : []),
    ...(t.explicitApi ? t.apis.map((u) => ({ u, offset: 100 })) : []),
  ].filter(({ u }) => isLoopback(u));
  for (const { u, offset } of given) {
    const ordinal = await slotOrdinal(ctx, u, offset === 200 ? 'admin' : 'api', name);
    tried.push(new URL(`http://127.0.0.1:${Number(u.port) - offset - (ordinal ?? 0) - 1}`));
  }
  if (given.length === 0 || t.explicitBase) tried.push(t.controlUrl as URL);
  for (const url of tried.filter((u, i) => tried.findIndex((v) => v.href === u.href) === i)) {
    try {
      const answer = await httpCall(url, { method: 'GET', path: clustersPath(), timeoutMs: 2_000 });
      if (answer.status === 200 && /"ConfluxClusterList"/.test(answer.body.toString('utf8'))) return url;
    } catch {
      // not this one
    }
  }
  const hosts = tried.map((u) => u.host).join(', ');
  throw new CliError(
    `error: no npm start control endpoint answers (tried ${hosts})\n` +
      'hint: scale and cluster work on the cluster of npm start: give --admin with one of its admin URLs, or set CONFLUX_BASE_PORT as npm start had it',
    1,
    {
      code: 'UNREACHABLE',
      message: `no npm start control endpoint answers (tried ${hosts})`,
    },
  );
}

/** Which npm start slot a member is, from its node id (`<name>-<k>-<hex>`); undefined if unknown. */
async function slotOrdinal(
  ctx: CommandContext,
  url: URL,
  role: 'admin' | 'api',
  name: string,
): Promise<number | undefined> {
  try {
    const answer = await httpCall(url, {
      method: 'GET',
      path: role === 'admin' ? '/_internal/status' : '/readyz',
      tls: ctx.target.tls,
      timeoutMs: 2_000,
    });
    const doc = JSON.parse(answer.body.toString('utf8')) as { node_id?: unknown; node?: unknown };
    const id = String(doc.node_id ?? doc.node ?? '');
    const m = /^(.+)-(\d+)-[0-9a-f]{8}$/.exec(id);
    return m && m[1] === name ? Number(m[2]) : undefined;
  } catch {
    return undefined;
  }
}

/** An admin call to whichever member can take it (the leader, followed). */
async function adminParsed<T>(
  ctx: CommandContext,
  schema: Schema<T>,
  r: MemberRequest,
  first?: URL,
): Promise<{ url: URL; doc: unknown; data: T }> {
  const { url, answer } = await callMember(ctx, 'admin', r, first);
  return { url, ...parsedOf(schema, url, r.path, answer) };
}

export async function leaderShow(ctx: CommandContext): Promise<void> {
  const { doc, data } = await adminParsed(ctx, leaderResponseSchema, {
    method: 'GET',
    path: '/_cluster/leader',
  });
  ctx.io.stdout(
    ctx.target.json
      ? json(doc)
      : `leader ${data.leader_id} (term ${data.term}), api ${data.api_address ?? '-'}, admin ${data.admin_address ?? '-'}`,
  );
}

export async function leaderTransfer(ctx: CommandContext, id: string | undefined): Promise<void> {
  const before = await adminParsed(ctx, leaderResponseSchema, {
    method: 'GET',
    path: '/_cluster/leader',
  }).catch(() => undefined);
  if (!ctx.target.json) ctx.io.stderr(`transferring leadership${id ? ` to ${id}` : ''}…`);
  const { doc, data } = await adminParsed(ctx, leaderResponseSchema, {
    method: 'POST',
    path: '/_cluster/leader/transfer',
    json: id ? { target_node_id: id } : {},
    timeoutMs: 60_000,
  });
  ctx.io.stdout(
    ctx.target.json
      ? json(doc)
      : `leader is now ${data.leader_id} (term ${data.term})${before ? `, was ${before.data.leader_id}` : ''}`,
  );
}

export async function backupCommand(
  ctx: CommandContext,
  o: { destination?: string; force?: boolean },
): Promise<void> {
  if (!ctx.target.json) ctx.io.stderr('backing up…');
  const { doc, data } = await adminParsed(ctx, backupResponseSchema, {
    method: 'POST',
    path: '/_cluster/backup',
    json: {
      ...(o.destination !== undefined ? { destination: o.destination } : {}),
      ...(o.force ? { force: true } : {}),
    },
    timeoutMs: LONG_MS,
  });
  if (ctx.target.json) return ctx.io.stdout(json(doc));
  ctx.io.stdout(
    data.skipped
      ? `backup skipped: nothing changed since ${data.uri} (revision ${data.revision}); --force takes one anyway`
      : `backup written: ${data.uri}\n  manifest ${data.manifest_uri}\n  cluster ${data.cluster_id}, revision ${data.revision}, log index ${data.last_index}, ${data.bytes} bytes, sha256 ${data.sha256}`,
  );
  for (const d of data.deleted) ctx.io.stdout(`  removed by retention: ${d}`);
}

export async function restoreCommand(
  ctx: CommandContext,
  uri: string,
  o: { expectedClusterId?: string },
): Promise<void> {
  if (!ctx.target.json) ctx.io.stdout(`restoring ${uri} into ${ctx.target.adminUrl.host}…`);
  const { doc, data } = await callParsed(restoreResponseSchema, ctx.target.adminUrl, {
    method: 'POST',
    path: '/_cluster/restore',
    json: {
      snapshot_uri: uri,
      ...(o.expectedClusterId !== undefined ? { expected_cluster_id: o.expectedClusterId } : {}),
    },
    tls: ctx.target.tls,
    timeoutMs: LONG_MS,
  });
  ctx.io.stdout(
    ctx.target.json
      ? json(doc)
      : `restored ${data.keys} keys at revision ${data.revision} into node ${data.node_id}: new cluster ${data.cluster_id} (from cluster ${data.restored_from.cluster_id}, log index ${data.restored_from.index}); grow it with conflux nodes add`,
  );
}

export async function nodesAdd(
  ctx: CommandContext,
  id: string,
  o: { api: string; raft: string; adminAddr: string },
): Promise<void> {
  // The same add again answers the same operation: safe to repeat.
  const op = await adminParsed(ctx, operationSchema, {
    method: 'POST',
    path: '/_cluster/nodes',
    json: { node_id: id, api_address: o.api, raft_address: o.raft, admin_address: o.adminAddr },
    repeatable: true,
  });
  await follow(ctx, op.data, op.url);
}

export async function nodesRemove(ctx: CommandContext, id: string, o: { force?: boolean }): Promise<void> {
  // Removing the leader hands leadership over first and answers NOT_LEADER naming the new leader,
  // where the request goes again (callMember follows it).
  const op = await adminParsed(ctx, operationSchema, {
    method: 'DELETE',
    path: `/_cluster/nodes/${encodeURIComponent(id)}${o.force ? '?force=true' : ''}`,
    timeoutMs: 60_000,
    repeatable: true,
  });
  await follow(ctx, op.data, op.url);
}

/** Polls an operation until it ends, printing each new step; a failed one is an error (exit 1). */
async function follow(ctx: CommandContext, first: Operation, accepted: URL): Promise<void> {
  let op = first;
  let shown = '';
  for (;;) {
    const line = `${op.kind} ${op.node_id}: ${op.state}, step ${op.step}${op.lag !== null ? `, lag ${op.lag}` : ''}`;
    if (line !== shown) {
      shown = line;
      ctx.io.stdout(ctx.target.json ? JSON.stringify(op) : line);
    }
    if (op.state === 'succeeded') return;
    if (op.state === 'failed') {
      throw new CliError(
        `error: ${op.error?.code ?? 'FAILED'}: ${op.error?.message ?? `${op.kind} ${op.node_id} failed`}`,
        1,
      );
    }
    if (ctx.signal?.aborted) return;
    await new Promise((r) => setTimeout(r, ctx.pollMs));
    // Operations live on the leader that accepted them; another member hands the question on.
    const path = `/_cluster/operations/${encodeURIComponent(op.id)}`;
    const { url, answer } = await callMember(ctx, 'admin', { method: 'GET', path }, accepted);
    const doc = jsonOf(url, path, answer);
    const parsed = operationSchema.safeParse(doc);
    if (!parsed.success) throw new CliError('error: the operation answer is not an operation document', 1);
    op = parsed.data;
  }
}
