// The verbs on a resource: get, list, create, update, patch (merge, JSON, strategic, apply),
// delete, deletecollection, and the status and scale subresources. HTTP framing (paths, bodies,
// content negotiation, watch streams) is in api-server-routes.ts.

import { parse as parseYaml } from 'yaml';
import { serverSideApply, type WriteContext } from './api-server-apply.js';
import {
  type ApiCore,
  type DeleteOptions,
  type FieldValidation,
  rfc3339,
  type WriteOptions,
} from './api-server-core.js';
import {
  ApiError,
  badRequest,
  conflict,
  expired,
  fieldCause,
  invalid,
  methodNotAllowed,
  notFound,
  STALE_OBJECT,
  unsupportedMediaType,
} from './api-server-errors.js';
import { jsonPatch, mergePatch, strategicMergePatch } from './api-server-patch.js';
import { apiVersionOf, type ResourceType } from './api-server-registry.js';
import { labelSelectorString, parseFieldSelector, parseLabelSelector } from './api-server-selectors.js';
import { clone, type KubeObject } from './api-server-store.js';

export interface ResourceRequest {
  rt: ResourceType;
  /** Undefined: cluster-scoped, or a list/watch across all namespaces. */
  namespace?: string;
  name?: string;
  subresource?: string;
  query: URLSearchParams;
  userAgent: string;
  warnings: string[];
}

export interface Reply {
  code: number;
  body: unknown;
}

const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function writeOptions(r: ResourceRequest, subresource?: 'status' | 'scale'): WriteOptions {
  const fv = r.query.get('fieldValidation') ?? 'Warn';
  if (!['Strict', 'Warn', 'Ignore'].includes(fv)) {
    throw badRequest(`fieldValidation must be one of Strict, Warn, Ignore; got ${fv}`);
  }
  const dryRun = r.query.getAll('dryRun');
  if (dryRun.some((d) => d !== 'All'))
    throw badRequest(`Invalid dryRun value: ${dryRun.join(',')}; only All is supported`);
  return {
    manager: r.query.get('fieldManager') ?? (r.userAgent.split('/')[0] || 'unknown'),
    fieldValidation: fv as FieldValidation,
    dryRun: dryRun.length > 0,
    warnings: r.warnings,
    ...(subresource ? { subresource } : {}),
  };
}

const ns = (r: ResourceRequest) => (r.rt.namespaced ? r.namespace : undefined);

export function get(core: ApiCore, r: ResourceRequest): Reply {
  const obj = core.mustRead(r.rt, ns(r), r.name!);
  if (r.subresource === 'scale') return { code: 200, body: scaleOf(r.rt, obj) };
  return { code: 200, body: obj };
}

export interface ListResult {
  items: KubeObject[];
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

/** A list; the resourceVersion of a list is the store's latest (every list is current). */
export function list(core: ApiCore, r: ResourceRequest): ListResult {
  const rv = r.query.get('resourceVersion') ?? '';
  const current = core.store.resourceVersion;
  if (r.query.get('resourceVersionMatch') === 'Exact' && rv !== String(current)) {
    throw expired(`too old resource version: ${rv} (${current})`);
  }
  const matchLabels = parseLabelSelector(r.query.get('labelSelector') ?? undefined);
  const matchFields = parseFieldSelector(r.query.get('fieldSelector') ?? undefined);
  let items = core.store
    .list(r.rt.storage, ns(r))
    .map((o) => core.view(r.rt, o))
    .filter((o) => matchLabels(o.metadata.labels) && matchFields(o));
  const token = r.query.get('continue');
  if (token) {
    let start: string;
    try {
      start = (JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { start: string }).start;
    } catch {
      throw badRequest('continue key is not valid');
    }
    items = items.filter((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > start);
  }
  const limit = Number(r.query.get('limit') ?? 0);
  if (limit > 0 && items.length > limit) {
    const page = items.slice(0, limit);
    const last = page[page.length - 1]!;
    const next = Buffer.from(
      JSON.stringify({ rv: current, start: `${last.metadata.namespace ?? ''}/${last.metadata.name}` }),
    ).toString('base64url');
    return {
      items: page,
      resourceVersion: String(current),
      continue: next,
      remainingItemCount: items.length - limit,
    };
  }
  return { items, resourceVersion: String(current) };
}

/** The JSON list document (builtin list items carry no apiVersion and kind, as the real server's). */
export function listBody(rt: ResourceType, l: ListResult): Record<string, unknown> {
  return {
    apiVersion: apiVersionOf(rt),
    kind: rt.listKind,
    metadata: {
      resourceVersion: l.resourceVersion,
      ...(l.continue ? { continue: l.continue, remainingItemCount: l.remainingItemCount } : {}),
    },
    items: rt.crd
      ? l.items
      : l.items.map((o) => {
          const { apiVersion: _a, kind: _k, ...rest } = o;
          return rest;
        }),
  };
}

export function create(core: ApiCore, r: ResourceRequest, body: unknown): Reply {
  if (r.rt.kind === 'Pod' && r.subresource === 'binding') return bind(core, r, body);
  if (r.name || r.subresource) throw methodNotAllowed();
  if (!isObject(body)) throw badRequest('the request body must be an object');
  if (isObject(body.metadata) && body.metadata.resourceVersion) {
    // What etcd3 storage answers (an internal error, 500).
    throw new ApiError(500, 'InternalError', 'resourceVersion should not be set on objects to be created');
  }
  const created = core.write(r.rt, r.namespace, undefined, body as KubeObject, writeOptions(r));
  return { code: 201, body: created };
}

export function update(core: ApiCore, r: ResourceRequest, body: unknown): Reply {
  if (!isObject(body)) throw badRequest('the request body must be an object');
  const old = core.mustRead(r.rt, ns(r), r.name!);
  if (r.subresource === 'scale') return { code: 200, body: writeScale(core, r, old, body as KubeObject) };
  const sub = r.subresource === 'status' ? 'status' : undefined;
  return { code: 200, body: core.write(r.rt, r.namespace, old, body as KubeObject, writeOptions(r, sub)) };
}

export function patch(core: ApiCore, r: ResourceRequest, contentType: string, raw: string): Reply {
  const type = contentType.split(';')[0]!.trim();
  const accepted = r.rt.crd
    ? [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.apply]
    : Object.values(PATCH_TYPES);
  if (!accepted.includes(type as (typeof accepted)[number])) throw unsupportedMediaType(type, accepted);
  let body: unknown;
  try {
    body = type === PATCH_TYPES.apply ? parseYaml(raw) : JSON.parse(raw);
  } catch (err) {
    throw badRequest(`error decoding patch: ${(err as Error).message}`);
  }
  if (type === PATCH_TYPES.apply) return apply(core, r, body);
  const old = core.mustRead(r.rt, ns(r), r.name!);
  const doPatch = (base: unknown): unknown => {
    if (type === PATCH_TYPES.json) return jsonPatch(base, body);
    if (type === PATCH_TYPES.merge) return mergePatch(base, body);
    return strategicMergePatch(base, body, core.shape(r.rt));
  };
  if (r.subresource === 'scale') {
    const patched = doPatch(scaleOf(r.rt, old)) as KubeObject;
    return { code: 200, body: writeScale(core, r, old, patched) };
  }
  const patched = doPatch(old);
  if (!isObject(patched)) throw badRequest('the patch does not leave an object');
  const sub = r.subresource === 'status' ? 'status' : undefined;
  return { code: 200, body: core.write(r.rt, r.namespace, old, patched as KubeObject, writeOptions(r, sub)) };
}

function apply(core: ApiCore, r: ResourceRequest, cfg: unknown): Reply {
  if (!isObject(cfg)) throw badRequest('the apply configuration must be an object');
  if (!r.query.get('fieldManager')) throw badRequest('PATCH: fieldManager is required for apply requests');
  if (r.subresource === 'scale') throw methodNotAllowed();
  const applied = cfg as KubeObject;
  applied.metadata = isObject(applied.metadata) ? applied.metadata : {};
  if (applied.metadata.name && applied.metadata.name !== r.name) {
    throw badRequest(
      `the name of the object (${applied.metadata.name}) does not match the name on the URL (${r.name})`,
    );
  }
  applied.metadata.name = r.name!;
  const sub = r.subresource === 'status' ? ('status' as const) : undefined;
  const o = writeOptions(r, sub);
  const live = core.read(r.rt, ns(r), r.name!);
  if (!live && sub) throw notFound(r.rt, r.name!);
  const ctx: WriteContext = {
    manager: o.manager,
    apiVersion: apiVersionOf(r.rt),
    shape: core.shape(r.rt),
    hasStatus: r.rt.status,
    ...(sub ? { subresource: sub } : {}),
    now: rfc3339(core.now()),
  };
  const force = r.query.get('force') === 'true';
  const { object, owned } = serverSideApply(live, applied, ctx, force);
  if (!live) {
    const created = core.write(r.rt, r.namespace, undefined, object, o, {
      op: 'Apply',
      applied: owned,
      entries: [],
    });
    return { code: 201, body: created };
  }
  const entries = object.metadata.managedFields ?? [];
  if (!applied.metadata.resourceVersion) object.metadata.resourceVersion = live.metadata.resourceVersion;
  const updated = core.write(r.rt, r.namespace, live, object, o, { op: 'Apply', applied: owned, entries });
  return { code: 200, body: updated };
}

export function parseDeleteOptions(r: ResourceRequest, body: unknown): DeleteOptions {
  const b = isObject(body) ? body : {};
  const policy = (b.propagationPolicy ?? r.query.get('propagationPolicy') ?? undefined) as string | undefined;
  const orphan = b.orphanDependents ?? r.query.get('orphanDependents') ?? undefined;
  const grace = b.gracePeriodSeconds ?? r.query.get('gracePeriodSeconds') ?? undefined;
  if (policy !== undefined && !['Background', 'Foreground', 'Orphan'].includes(policy)) {
    throw badRequest(`propagationPolicy must be Background, Foreground or Orphan; got ${policy}`);
  }
  const dryRun = [...r.query.getAll('dryRun'), ...(Array.isArray(b.dryRun) ? (b.dryRun as string[]) : [])];
  const pre = isObject(b.preconditions)
    ? (b.preconditions as { uid?: string; resourceVersion?: string })
    : undefined;
  const effective =
    policy ??
    (orphan === true || orphan === 'true'
      ? 'Orphan'
      : orphan === false || orphan === 'false'
        ? 'Foreground'
        : undefined);
  return {
    ...(effective ? { propagationPolicy: effective as DeleteOptions['propagationPolicy'] } : {}),
    ...(grace !== undefined ? { gracePeriodSeconds: Number(grace) } : {}),
    ...(pre ? { preconditions: pre } : {}),
    ...(dryRun.length > 0 ? { dryRun: true } : {}),
  };
}

export function remove(core: ApiCore, r: ResourceRequest, body: unknown): Reply {
  if (r.subresource) throw methodNotAllowed();
  const { object, gone } = core.delete(r.rt, ns(r), r.name!, parseDeleteOptions(r, body));
  if (!gone || r.rt.crd || r.rt.kind === 'Pod') return { code: 200, body: object };
  return {
    code: 200,
    body: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Success',
      details: {
        name: object.metadata.name,
        ...(r.rt.group ? { group: r.rt.group } : {}),
        kind: r.rt.plural,
        uid: object.metadata.uid,
      },
    },
  };
}

export function removeCollection(core: ApiCore, r: ResourceRequest, body: unknown): Reply {
  const opts = parseDeleteOptions(r, body);
  const l = list(core, r);
  const deleted = l.items.map((o) => core.delete(r.rt, o.metadata.namespace, o.metadata.name!, opts).object);
  return {
    code: 200,
    body: listBody(r.rt, { items: deleted, resourceVersion: String(core.store.resourceVersion) }),
  };
}

/** pods/binding: what the scheduler does to assign a pod to a node (spec.nodeName is set once). */
function bind(core: ApiCore, r: ResourceRequest, body: unknown): Reply {
  const binding = { group: '', plural: 'pods/binding', kind: 'Binding' };
  const pod = core.mustRead(r.rt, r.namespace, r.name!);
  const target = isObject(body) && isObject(body.target) ? body.target : undefined;
  if (typeof target?.name !== 'string' || !target.name) {
    throw invalid(binding, r.name!, [fieldCause('target.name', 'Required', '')]);
  }
  const spec = (pod.spec ?? {}) as Record<string, unknown>;
  if (spec.nodeName) {
    throw conflict(binding, r.name!, `pod ${r.name} is already assigned to node "${String(spec.nodeName)}"`);
  }
  if (pod.metadata.deletionTimestamp)
    throw conflict(binding, r.name!, `pod ${r.name} is being deleted, cannot be assigned to a host`);
  const next = clone(pod);
  (next.spec as Record<string, unknown>).nodeName = target.name;
  const status = (isObject(next.status) ? next.status : {}) as {
    conditions?: Array<Record<string, unknown>>;
  };
  const scheduled = {
    type: 'PodScheduled',
    status: 'True',
    lastProbeTime: null,
    lastTransitionTime: rfc3339(core.now()),
  };
  status.conditions = [...(status.conditions ?? []).filter((c) => c.type !== 'PodScheduled'), scheduled];
  next.status = status;
  if (!writeOptions(r).dryRun) core.commit(r.rt, 'MODIFIED', next);
  return {
    code: 201,
    body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 },
  };
}

// --- scale ---------------------------------------------------------------------------------------

function getPath(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const p of path.replace(/^\./, '').split('.')) cur = isObject(cur) ? cur[p] : undefined;
  return cur;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.replace(/^\./, '').split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(cur[p])) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

/** The autoscaling/v1 Scale of an object. */
export function scaleOf(rt: ResourceType, obj: KubeObject): KubeObject {
  const s = rt.scale!;
  let selector: unknown;
  if (rt.crd) selector = s.labelSelectorPath ? getPath(obj, s.labelSelectorPath) : undefined;
  else {
    const sel = getPath(obj, '.spec.selector');
    selector = isObject(sel) ? labelSelectorString(sel) : undefined;
  }
  const m = obj.metadata;
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: {
      name: m.name,
      ...(m.namespace ? { namespace: m.namespace } : {}),
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      creationTimestamp: m.creationTimestamp,
    },
    spec: { replicas: (getPath(obj, s.specReplicasPath) as number | undefined) ?? 0 },
    status: {
      replicas: (getPath(obj, s.statusReplicasPath) as number | undefined) ?? 0,
      ...(typeof selector === 'string' && selector ? { selector } : {}),
    },
  };
}

function writeScale(core: ApiCore, r: ResourceRequest, old: KubeObject, scale: KubeObject): KubeObject {
  const rt = r.rt;
  if (!rt.scale) throw notFound(rt, r.name!);
  const rv = isObject(scale.metadata) ? scale.metadata.resourceVersion : undefined;
  if (rv && rv !== old.metadata.resourceVersion) throw conflict(rt, r.name!, STALE_OBJECT);
  const replicas = isObject(scale.spec) ? scale.spec.replicas : undefined;
  if (!Number.isInteger(replicas) || (replicas as number) < 0) {
    throw invalid({ group: 'autoscaling', plural: 'scales', kind: 'Scale' }, r.name!, [
      fieldCause('spec.replicas', 'Invalid', 'must be greater than or equal to 0', replicas),
    ]);
  }
  const next = clone(old);
  setPath(next, rt.scale.specReplicasPath, replicas);
  return scaleOf(rt, core.write(rt, r.namespace, old, next, writeOptions(r, 'scale')));
}
