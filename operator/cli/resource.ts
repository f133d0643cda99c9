// `conflux cluster get|apply|patch|delete|events`: the ConfluxCluster resource of `npm start`,
// through its control endpoint (operator/platform/local-control.ts), as kubectl does it on
// Kubernetes. With these every runbook of the README runs under `npm start` too: spec.recovery is
// a patch, the restore drill an apply of a second cluster (README "Runbooks").

import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { ConfluxCluster } from '../api/cluster.js';
import { clusterPath, clustersPath, controlEndpoint } from './cluster.js';
import { answerError, CliError, type CommandContext, type HttpAnswer, httpCall, json } from './context.js';

interface NamespaceOption {
  namespace?: string;
}

interface MemberDoc {
  name: string;
  ready: boolean;
  running: boolean;
  addresses: { api: string; admin: string; raft: string };
}

interface EventDoc {
  type: string;
  reason: string;
  message: string;
  count: number;
  lastTimestamp: string;
}

/** The control endpoint, or the kubectl equivalent when the CLI targets another cluster. */
async function control(ctx: CommandContext, kubectl: string): Promise<URL> {
  if (!ctx.target.controlUrl) {
    throw new CliError(
      `error: conflux cluster works on the cluster of npm start, and ${ctx.target.adminUrl.host} is not it.\nOn Kubernetes: ${kubectl}`,
      2,
    );
  }
  return controlEndpoint(ctx, 'local');
}

function docOf(answer: HttpAnswer): unknown {
  if (answer.status < 200 || answer.status >= 300) throw answerError(answer);
  return JSON.parse(answer.body.toString('utf8'));
}

export async function clusterGet(
  ctx: CommandContext,
  name: string | undefined,
  o: NamespaceOption,
): Promise<void> {
  const ns = o.namespace ?? 'default';
  const url = await control(ctx, `kubectl get confluxclusters ${name ?? ''} -n ${ns}`.replace('  ', ' '));
  if (name === undefined) {
    const list = docOf(await httpCall(url, { method: 'GET', path: clustersPath(ns) })) as {
      items: ConfluxCluster[];
    };
    if (ctx.target.json) return ctx.io.stdout(json(list));
    if (list.items.length === 0) return ctx.io.stdout(`no ConfluxClusters in namespace ${ns}`);
    ctx.io.stdout('NAME  REPLICAS  READY  PHASE  LEADER');
    for (const c of list.items)
      ctx.io.stdout(
        `${c.metadata.name}  ${c.spec.replicas}  ${c.status?.readyReplicas ?? 0}  ${c.status?.phase ?? '-'}  ${c.status?.leaderId ?? '-'}`,
      );
    return;
  }
  const c = docOf(await httpCall(url, { method: 'GET', path: clusterPath(name, '', ns) })) as ConfluxCluster;
  if (ctx.target.json) return ctx.io.stdout(json(c));
  const members = docOf(await httpCall(url, { method: 'GET', path: clusterPath(name, '/members', ns) })) as {
    members: MemberDoc[];
  };
  const events = await recentEvents(url, ns, name);
  const s = c.status ?? {};
  const lines = [
    `${name}: ${s.phase ?? 'Pending'}, ${s.readyReplicas ?? 0}/${c.spec.replicas} ready, leader ${s.leaderId ?? '-'} (term ${s.term ?? '-'}), fault tolerance ${s.faultTolerance ?? '-'}`,
    `  cluster id ${s.clusterId ?? '-'}, generation ${c.metadata.generation} (observed ${s.observedGeneration ?? '-'})`,
    `  conditions: ${(s.conditions ?? []).map((x) => `${x.type}=${x.status}${x.status === 'True' && x.type !== 'Degraded' ? '' : ` (${x.reason})`}`).join(', ') || '-'}`,
    ...(s.operation ? [`  operation: ${s.operation.kind} ${s.operation.step}`] : []),
    ...(c.spec.recovery
      ? [`  spec.recovery: forceNewClusterFrom ${c.spec.recovery.forceNewClusterFrom}`]
      : []),
    ...(c.spec.restore ? [`  spec.restore: ${c.spec.restore.snapshotUri}`] : []),
    ...(s.restoredFrom
      ? [`  restored from ${s.restoredFrom.uri} (cluster ${s.restoredFrom.clusterId})`]
      : []),
    ...(s.recoveredFrom
      ? [
          `  recovered from ${s.recoveredFrom.pod ?? s.recoveredFrom.nodeId} at ${s.recoveredFrom.at} (old cluster ${s.recoveredFrom.clusterId}${s.recoveredFrom.request ? `, request ${s.recoveredFrom.request}` : ''})`,
        ]
      : []),
    ...(s.lastBackup ? [`  last backup ${s.lastBackup.uri} at ${s.lastBackup.time}`] : []),
    '  members:',
    ...members.members.map(
      (m) =>
        `    ${m.name}  ${m.ready ? 'ready' : m.running ? 'running' : 'stopped'}  api http://${m.addresses.api}  admin http://${m.addresses.admin}`,
    ),
    ...(events.length ? ['  events (newest last):'] : []),
    ...events
      .slice(-8)
      .map(
        (e) =>
          `    ${e.lastTimestamp}  ${e.type}  ${e.reason}${e.count > 1 ? ` (x${e.count})` : ''}: ${e.message}`,
      ),
  ];
  ctx.io.stdout(lines.join('\n'));
}

async function recentEvents(url: URL, ns: string, name: string): Promise<EventDoc[]> {
  const path = `/api/v1/namespaces/${encodeURIComponent(ns)}/events?fieldSelector=${encodeURIComponent(`involvedObject.name=${name}`)}`;
  return (docOf(await httpCall(url, { method: 'GET', path })) as { items: EventDoc[] }).items;
}

export async function clusterEvents(ctx: CommandContext, name: string, o: NamespaceOption): Promise<void> {
  const ns = o.namespace ?? 'default';
  const url = await control(ctx, `kubectl get events -n ${ns} --field-selector involvedObject.name=${name}`);
  const events = await recentEvents(url, ns, name);
  if (ctx.target.json) return ctx.io.stdout(json({ apiVersion: 'v1', kind: 'EventList', items: events }));
  for (const e of events)
    ctx.io.stdout(
      `${e.lastTimestamp}  ${e.type}  ${e.reason}${e.count > 1 ? ` (x${e.count})` : ''}: ${e.message}`,
    );
}

/** Create or update every ConfluxCluster in a YAML or JSON file (`-`: stdin), as kubectl apply -f. */
export async function clusterApply(
  ctx: CommandContext,
  o: NamespaceOption & { filename?: string },
): Promise<void> {
  if (!o.filename)
    throw new CliError('error: apply needs -f FILE (a ConfluxCluster in YAML or JSON; - for stdin)', 2);
  let text: string;
  try {
    text = readFileSync(o.filename === '-' ? 0 : o.filename, 'utf8');
  } catch (err) {
    throw new CliError(`error: -f ${o.filename}: ${(err as Error).message}`, 1);
  }
  const docs = parseAllDocuments(text);
  const objects: Record<string, unknown>[] = [];
  for (const d of Array.isArray(docs) ? docs : [docs]) {
    if (d.errors.length) throw new CliError(`error: -f ${o.filename}: ${d.errors[0]?.message}`, 2);
    const obj = d.toJS() as unknown;
    if (obj === null || obj === undefined) continue;
    if (
      typeof obj !== 'object' ||
      Array.isArray(obj) ||
      (obj as { kind?: unknown }).kind !== 'ConfluxCluster'
    )
      throw new CliError(
        `error: -f ${o.filename}: npm start's control endpoint takes ConfluxCluster objects only (found kind ${String((obj as { kind?: unknown })?.kind)})`,
        2,
      );
    objects.push(obj as Record<string, unknown>);
  }
  if (objects.length === 0) throw new CliError(`error: -f ${o.filename}: no ConfluxCluster in it`, 2);
  const url = await control(ctx, `kubectl apply -f ${o.filename}`);
  for (const obj of objects) {
    const meta = (obj.metadata ?? {}) as { name?: unknown; namespace?: unknown; resourceVersion?: unknown };
    if (typeof meta.name !== 'string')
      throw new CliError(`error: -f ${o.filename}: metadata.name is missing`, 2);
    const ns = typeof meta.namespace === 'string' ? meta.namespace : (o.namespace ?? 'default');
    const { resourceVersion: _rv, ...metadata } = meta;
    const body = { ...obj, metadata: { ...metadata, namespace: ns } };
    const before = await httpCall(url, { method: 'GET', path: clusterPath(meta.name, '', ns) });
    let after: ConfluxCluster;
    let verb: string;
    if (before.status === 404) {
      after = docOf(
        await httpCall(url, { method: 'POST', path: clustersPath(ns), json: body }),
      ) as ConfluxCluster;
      verb = 'created';
    } else {
      const old = docOf(before) as ConfluxCluster;
      after = docOf(
        await httpCall(url, { method: 'PUT', path: clusterPath(meta.name, '', ns), json: body }),
      ) as ConfluxCluster;
      verb = after.metadata.resourceVersion === old.metadata.resourceVersion ? 'unchanged' : 'configured';
    }
    ctx.io.stdout(ctx.target.json ? json(after) : `confluxcluster/${meta.name} ${verb}`);
  }
}

/** A JSON merge patch of the spec, labels or annotations, as kubectl patch --type merge. */
export async function clusterPatch(
  ctx: CommandContext,
  name: string,
  o: NamespaceOption & { patch?: string },
): Promise<void> {
  if (o.patch === undefined)
    throw new CliError(
      `error: patch needs -p '<JSON merge patch>', for example -p '{"spec":{"recovery":null}}'`,
      2,
    );
  let patch: unknown;
  try {
    patch = JSON.parse(o.patch);
  } catch (err) {
    throw new CliError(`error: -p: not JSON: ${(err as Error).message}`, 2);
  }
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch))
    throw new CliError('error: -p: a merge patch is a JSON object', 2);
  const ns = o.namespace ?? 'default';
  const url = await control(
    ctx,
    `kubectl patch confluxcluster/${name} -n ${ns} --type merge -p '${o.patch}'`,
  );
  const before = docOf(
    await httpCall(url, { method: 'GET', path: clusterPath(name, '', ns) }),
  ) as ConfluxCluster;
  const after = docOf(
    await httpCall(url, { method: 'PATCH', path: clusterPath(name, '', ns), json: patch }),
  ) as ConfluxCluster;
  const changed = after.metadata.resourceVersion !== before.metadata.resourceVersion;
  ctx.io.stdout(
    ctx.target.json ? json(after) : `confluxcluster/${name} ${changed ? 'patched' : 'patched (no change)'}`,
  );
}

export async function clusterDelete(ctx: CommandContext, name: string, o: NamespaceOption): Promise<void> {
  const ns = o.namespace ?? 'default';
  const url = await control(ctx, `kubectl delete confluxcluster/${name} -n ${ns}`);
  const doc = docOf(await httpCall(url, { method: 'DELETE', path: clusterPath(name, '', ns) }));
  ctx.io.stdout(
    ctx.target.json
      ? json(doc)
      : `confluxcluster/${name} deleted (its members stopped; their data stays under .conflux/)`,
  );
}
