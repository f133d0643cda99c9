// The control endpoint of `npm start` (BASE-1, loopback, plain HTTP): the part of the Kubernetes
// resource API the runbooks use, over the LocalStore, so that what a user does with kubectl on
// Kubernetes works the same way here (docs/ARCHITECTURE.md §8, README "Runbooks"):
//
//   GET    /apis/conflux.io/v1alpha1/namespaces/NS/confluxclusters              list
//   POST   /apis/conflux.io/v1alpha1/namespaces/NS/confluxclusters              create (201; 409 if it exists)
//   GET    /apis/conflux.io/v1alpha1/namespaces/NS/confluxclusters/NAME         read, with status
//   PUT    /apis/conflux.io/v1alpha1/namespaces/NS/confluxclusters/NAME         replace spec, labels, annotations
//   PATCH  /apis/conflux.io/v1alpha1/namespaces/NS/confluxclusters/NAME         JSON merge patch (RFC 7386)
//   DELETE /apis/conflux.io/v1alpha1/namespaces/NS/confluxclusters/NAME         delete; its nodes stop, volumes stay
//   GET|PUT .../confluxclusters/NAME/scale                                      the scale subresource
//   GET    .../confluxclusters/NAME/members                                     (dev only) the members' addresses
//   GET    /api/v1/namespaces/NS/events[?fieldSelector=involvedObject.name=NAME] the recorded events
//
// As on the API server, status is never written through it (the operator owns status), spec
// changes bump metadata.generation, a `metadata.resourceVersion` in a PUT must match, and every
// refusal is a `Status` document (`reason`, `message`, `code`).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { API_VERSION, type ConfluxCluster } from '../api/cluster.js';
import type { LocalPlatform } from './local.js';
import { InvalidResourceError, type LocalStore, NotFoundError } from './local-store.js';
import { ConflictError } from './platform.js';

const CLUSTERS =
  /^\/apis\/conflux\.io\/v1alpha1\/namespaces\/([a-z0-9-]+)\/confluxclusters(?:\/([^/?]+)(?:\/(scale|members))?)?\/?$/;
const EVENTS = /^\/api\/v1\/namespaces\/([a-z0-9-]+)\/events\/?$/;
const BODY_BYTES_MAX = 1024 * 1024;
const scaleBody = z.object({ spec: z.object({ replicas: z.int().min(1) }) });

/** A refusal, answered as a Kubernetes Status document. */
class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ControlDeps {
  store: LocalStore;
  platform: LocalPlatform;
}

export async function serveControl(
  deps: ControlDeps,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const send = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify(body, null, 2)}\n`);
  };
  try {
    const [status, body] = await route(deps, req);
    send(status, body);
  } catch (err) {
    const e = asApiError(err);
    send(e.code, {
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      message: e.message,
      reason: e.reason,
      code: e.code,
    });
  }
}

/** The cluster list of one namespace (GET), or a new cluster in it (POST). */
async function routeCollection(
  store: LocalStore,
  req: IncomingMessage,
  method: string,
  namespace: string,
): Promise<[number, unknown]> {
  if (method === 'GET') {
    const items = (await store.listClusters()).filter((c) => c.metadata.namespace === namespace);
    return [200, { apiVersion: API_VERSION, kind: 'ConfluxClusterList', metadata: {}, items }];
  }
  if (method === 'POST') {
    const obj = withPlace(await readJson(req), namespace);
    const objName = obj.metadata.name;
    if (typeof objName !== 'string') throw new ApiError(422, 'Invalid', 'metadata.name: required');
    if (await store.getCluster(namespace, objName))
      throw new ApiError(409, 'AlreadyExists', `confluxclusters "${objName}" already exists`);
    return [201, await store.applyCluster(obj)];
  }
  throw notAllowed(method);
}

/**
 * A JSON merge patch of an existing cluster: of its labels, annotations and spec (name and
 * namespace stay; a patch of the status is ignored).
 */
async function patchCluster(
  store: LocalStore,
  req: IncomingMessage,
  current: ConfluxCluster,
  namespace: string,
  name: string,
) {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim();
  if (type && type !== 'application/merge-patch+json' && type !== 'application/json')
    throw new ApiError(
      415,
      'UnsupportedMediaType',
      `only JSON merge patches (application/merge-patch+json), not ${type}`,
    );
  const patch = await readJson(req);
  const editable = {
    apiVersion: current.apiVersion,
    kind: current.kind,
    metadata: {
      name,
      namespace,
      ...(current.metadata.labels ? { labels: current.metadata.labels } : {}),
      ...(current.metadata.annotations ? { annotations: current.metadata.annotations } : {}),
    },
    spec: current.spec,
  };
  const patched = mergePatch(editable, patch) as Record<string, unknown>;
  const meta = (patched.metadata ?? {}) as Record<string, unknown>;
  if (meta.name !== name || meta.namespace !== namespace)
    throw new ApiError(400, 'BadRequest', 'a patch cannot change metadata.name or metadata.namespace');
  // Status belongs to the operator: a patch of it is ignored, as on the main resource in Kubernetes.
  const { status: _status, ...rest } = patched;
  return store.applyCluster({ ...rest, metadata: { ...meta, resourceVersion: undefined } });
}

async function route(deps: ControlDeps, req: IncomingMessage): Promise<[number, unknown]> {
  const url = new URL(req.url ?? '/', 'http://control');
  const method = req.method ?? 'GET';
  const events = EVENTS.exec(url.pathname);
  if (events) {
    if (method !== 'GET') throw notAllowed(method);
    return [200, eventList(deps.store, events[1] as string, url.searchParams.get('fieldSelector'))];
  }
  const m = CLUSTERS.exec(url.pathname);
  if (!m) throw new ApiError(404, 'NotFound', `no such resource: ${url.pathname}`);
  const namespace = m[1] as string;
  const name = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
  const sub = m[3];
  const { store } = deps;

  if (name === undefined) return routeCollection(store, req, method, namespace);

  const current = await store.getCluster(namespace, name);
  const missing = () => new ApiError(404, 'NotFound', `confluxclusters "${name}" not found`);
  if (sub === 'scale') {
    if (!current) throw missing();
    if (method === 'GET') return [200, scaleOf(current)];
    if (method !== 'PUT') throw notAllowed(method);
    const parsed = scaleBody.safeParse(await readJson(req));
    if (!parsed.success)
      throw new ApiError(400, 'BadRequest', 'expected {"spec":{"replicas":N}} with N >= 1');
    return [200, scaleOf(await store.scaleCluster(namespace, name, parsed.data.spec.replicas))];
  }
  if (sub === 'members') {
    if (!current) throw missing();
    if (method !== 'GET') throw notAllowed(method);
    return [200, { name, namespace, members: await deps.platform.pods(current) }];
  }
  switch (method) {
    case 'GET':
      if (!current) throw missing();
      return [200, current];
    case 'PUT': {
      if (!current) throw missing();
      const obj = withPlace(await readJson(req), namespace);
      if (obj.metadata.name !== undefined && obj.metadata.name !== name)
        throw new ApiError(
          400,
          'BadRequest',
          `metadata.name "${String(obj.metadata.name)}" does not match "${name}"`,
        );
      return [200, await store.applyCluster({ ...obj, metadata: { ...obj.metadata, name } })];
    }
    case 'PATCH':
      if (!current) throw missing();
      return [200, await patchCluster(store, req, current, namespace, name)];
    case 'DELETE': {
      if (!current) throw missing();
      await store.deleteCluster(namespace, name);
      // What Kubernetes' garbage collector does with the StatefulSet: the members stop; their
      // volumes stay (as PVCs do), so a cluster created again under this name finds its data.
      await deps.platform.ensureMembers(current, 0);
      return [
        200,
        { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name, kind: 'confluxclusters' } },
      ];
    }
    default:
      throw notAllowed(method);
  }
}

/** RFC 7386: objects merge member by member, `null` removes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

type Placed = Record<string, unknown> & { metadata: Record<string, unknown> };

/** The object with the namespace of its URL (a different one in the body is refused). */
function withPlace(body: unknown, namespace: string): Placed {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new ApiError(400, 'BadRequest', 'expected a ConfluxCluster object');
  const obj = body as Record<string, unknown>;
  if (obj.kind !== undefined && obj.kind !== 'ConfluxCluster')
    throw new ApiError(400, 'BadRequest', `expected kind ConfluxCluster, not ${String(obj.kind)}`);
  const metadata = (obj.metadata ?? {}) as Record<string, unknown>;
  if (metadata.namespace !== undefined && metadata.namespace !== namespace)
    throw new ApiError(
      400,
      'BadRequest',
      `metadata.namespace "${String(metadata.namespace)}" does not match the namespace of the request ("${namespace}")`,
    );
  const { status: _status, ...rest } = obj;
  return { apiVersion: API_VERSION, kind: 'ConfluxCluster', ...rest, metadata: { ...metadata, namespace } };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > BODY_BYTES_MAX)
      throw new ApiError(413, 'RequestEntityTooLarge', 'the body is over 1 MiB');
  }
  try {
    return JSON.parse(text || 'null');
  } catch (err) {
    throw new ApiError(400, 'BadRequest', `the body is not JSON: ${(err as Error).message}`);
  }
}

function eventList(store: LocalStore, namespace: string, selector: string | null) {
  const name = selector ? /(?:^|,)involvedObject\.name=([^,]+)/.exec(selector)?.[1] : undefined;
  if (selector && !name)
    throw new ApiError(400, 'BadRequest', 'fieldSelector: only involvedObject.name=NAME');
  const items = store.events({ namespace, ...(name ? { name } : {}) }).map((e) => ({
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { namespace },
    ...e,
  }));
  return { apiVersion: 'v1', kind: 'EventList', metadata: {}, items };
}

function scaleOf(c: ConfluxCluster) {
  return {
    apiVersion: 'autoscaling/v1',
    kind: 'Scale',
    metadata: { name: c.metadata.name, namespace: c.metadata.namespace },
    spec: { replicas: c.spec.replicas },
    status: { replicas: c.status?.replicas ?? 0, selector: c.status?.selector ?? '' },
  };
}

function notAllowed(method: string): ApiError {
  return new ApiError(405, 'MethodNotAllowed', `${method} is not supported here`);
}

function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof NotFoundError) return new ApiError(404, 'NotFound', err.message);
  if (err instanceof ConflictError) return new ApiError(409, 'Conflict', err.message);
  if (err instanceof InvalidResourceError) return new ApiError(422, 'Invalid', err.message);
  return new ApiError(500, 'InternalError', (err as Error).message ?? String(err));
}
