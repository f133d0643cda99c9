// `conflux scale|leader|backup|restore|nodes`: the cluster-operations API (admin port) and, for
// scale, the `npm start` control endpoint that mirrors the Kubernetes scale subresource.

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
  callJson,
  callParsed,
  httpCall,
  json,
} from './context.js';
import { positive } from './kv.js';

const LONG_MS = 15 * 60_000;

export async function scaleCommand(
  ctx: CommandContext,
  replicasText: string,
  o: { name?: string },
): Promise<void> {
  const replicas = positive('REPLICAS', replicasText);
  const name = o.name ?? 'local';
  const control = ctx.target.controlUrl;
  if (!control) {
    throw new CliError(
      [
        `error: scale changes the ConfluxCluster's spec, and ${ctx.target.adminUrl.host} is not the local cluster of npm start.`,
        `On Kubernetes the operator does it: kubectl scale confluxcluster/${name === 'local' ? 'NAME' : name} --replicas=${replicas}`,
      ].join('\n'),
      2,
    );
  }
  const answer = await httpCall(control, {
    method: 'PUT',
    path: `/apis/conflux.io/v1alpha1/namespaces/default/confluxclusters/${encodeURIComponent(name)}/scale`,
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

export async function leaderShow(ctx: CommandContext): Promise<void> {
  const { doc, data } = await callParsed(leaderResponseSchema, ctx.target.adminUrl, {
    method: 'GET',
    path: '/_cluster/leader',
    tls: ctx.target.tls,
  });
  ctx.io.stdout(
    ctx.target.json
      ? json(doc)
      : `leader ${data.leader_id} (term ${data.term}), api ${data.api_address ?? '-'}, admin ${data.admin_address ?? '-'}`,
  );
}

export async function leaderTransfer(ctx: CommandContext, id: string | undefined): Promise<void> {
  const before = await callParsed(leaderResponseSchema, ctx.target.adminUrl, {
    method: 'GET',
    path: '/_cluster/leader',
    tls: ctx.target.tls,
  }).catch(() => undefined);
  if (!ctx.target.json) ctx.io.stderr(`transferring leadership${id ? ` to ${id}` : ''}…`);
  const { doc, data } = await callParsed(leaderResponseSchema, ctx.target.adminUrl, {
    method: 'POST',
    path: '/_cluster/leader/transfer',
    json: id ? { target_node_id: id } : {},
    tls: ctx.target.tls,
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
  const { doc, data } = await callParsed(backupResponseSchema, ctx.target.adminUrl, {
    method: 'POST',
    path: '/_cluster/backup',
    json: {
      ...(o.destination !== undefined ? { destination: o.destination } : {}),
      ...(o.force ? { force: true } : {}),
    },
    tls: ctx.target.tls,
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
  const op = await callParsed(operationSchema, ctx.target.adminUrl, {
    method: 'POST',
    path: '/_cluster/nodes',
    json: { node_id: id, api_address: o.api, raft_address: o.raft, admin_address: o.adminAddr },
    tls: ctx.target.tls,
  });
  await follow(ctx, op.data);
}

export async function nodesRemove(ctx: CommandContext, id: string, o: { force?: boolean }): Promise<void> {
  const op = await callParsed(operationSchema, ctx.target.adminUrl, {
    method: 'DELETE',
    path: `/_cluster/nodes/${encodeURIComponent(id)}${o.force ? '?force=true' : ''}`,
    tls: ctx.target.tls,
    timeoutMs: 60_000,
  });
  await follow(ctx, op.data);
}

/** Polls an operation until it ends, printing each new step; a failed one is an error (exit 1). */
async function follow(ctx: CommandContext, first: Operation): Promise<void> {
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
    const doc = await callJson(ctx.target.adminUrl, {
      method: 'GET',
      path: `/_cluster/operations/${encodeURIComponent(op.id)}`,
      tls: ctx.target.tls,
    });
    const parsed = operationSchema.safeParse(doc);
    if (!parsed.success) throw new CliError('error: the operation answer is not an operation document', 1);
    op = parsed.data;
  }
}
