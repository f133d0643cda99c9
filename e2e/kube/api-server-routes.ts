// HTTP framing of the API stand-in: discovery and OpenAPI documents, /version and health
// endpoints, resource paths (/api/v1/..., /apis/<g>/<v>/..., namespaced or not, with the
// status and scale subresources and the legacy /watch/ prefix), request bodies (JSON or YAML),
// content negotiation (JSON, YAML, meta.k8s.io Table and PartialObjectMetadata), Warning headers
// and Status bodies for every failure.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { ApiCore } from './api-server-core.js';
import {
  ApiError,
  badRequest,
  internal,
  methodNotAllowed,
  notAcceptable,
  unsupportedMediaType,
} from './api-server-errors.js';
import {
  create,
  get,
  list,
  listBody,
  patch,
  type Reply,
  type ResourceRequest,
  remove,
  removeCollection,
  update,
} from './api-server-handlers.js';
import type { OpenApi } from './api-server-openapi.js';
import { notFoundPath, type Registry } from './api-server-registry.js';
import type { KubeObject } from './api-server-store.js';
import { type IncludeObject, toTable } from './api-server-table.js';
import { serveWatch } from './api-server-watch.js';

export interface RouteContext {
  core: ApiCore;
  registry: Registry;
  openapi: OpenApi;
  serverAddress: string;
  bookmarkIntervalMs: number;
  watches: Set<() => void>;
  log?: (line: string) => void;
}

const MAX_BODY_BYTES = 3 * 1024 * 1024;

export const VERSION_INFO = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-conflux-stand-in',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z',
  goVersion: 'go1.23.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

type Rendering =
  | { as: 'json' | 'yaml' }
  | { as: 'Table'; version: 'v1' | 'v1beta1' }
  | { as: 'PartialObjectMetadata' | 'PartialObjectMetadataList'; version: 'v1' | 'v1beta1' };

/** The first media type of the Accept header this server can produce. */
function negotiate(accept: string | undefined): Rendering {
  if (!accept) return { as: 'json' };
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    const p = Object.fromEntries(params.map((x) => x.split('=').map((s) => s.trim()) as [string, string]));
    if (type === 'application/json' && p.as) {
      const version = p.v === 'v1beta1' ? 'v1beta1' : 'v1';
      if (p.g !== 'meta.k8s.io' || (p.v !== 'v1' && p.v !== 'v1beta1')) continue;
      if (p.as === 'Table') return { as: 'Table', version };
      if (p.as === 'PartialObjectMetadata' || p.as === 'PartialObjectMetadataList')
        return { as: p.as, version };
      continue;
    }
    if (type === 'application/json' || type === '*/*' || type === 'application/*') return { as: 'json' };
    if (type === 'application/yaml') return { as: 'yaml' };
  }
  throw notAcceptable(['application/json', 'application/yaml']);
}

function send(
  res: ServerResponse,
  code: number,
  body: unknown,
  r?: { warnings: string[] },
  yaml = false,
): void {
  const text = yaml ? toYaml(body) : JSON.stringify(body);
  const headers: Record<string, string> = { 'Content-Type': yaml ? 'application/yaml' : 'application/json' };
  if (r && r.warnings.length > 0)
    headers.Warning = r.warnings.map((w) => `299 - ${JSON.stringify(w)}`).join(', ');
  res.writeHead(code, headers);
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, 'BadRequest', 'the request body is too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseBody(contentType: string, raw: string): unknown {
  if (raw.trim() === '') return undefined;
  const type = contentType.split(';')[0]!.trim();
  try {
    if (type === 'application/yaml' || type === 'application/x-yaml') return parseYaml(raw);
    if (type === '' || type === 'application/json' || type === '*/*') return JSON.parse(raw);
  } catch (err) {
    throw badRequest(`the body of the request could not be decoded: ${(err as Error).message}`);
  }
  throw unsupportedMediaType(type, ['application/json', 'application/yaml']);
}

/** Parses a resource path; undefined when the path is not one. */
function resourceRequest(
  ctx: RouteContext,
  url: URL,
  req: IncomingMessage,
): (ResourceRequest & { watch: boolean }) | undefined {
  const segs = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 3) [group, version, rest] = ['', segs[1]!, segs.slice(2)];
  else if (segs[0] === 'apis' && segs.length >= 4)
    [group, version, rest] = [segs[1]!, segs[2]!, segs.slice(3)];
  else return undefined;
  let watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
  if (rest[0] === 'watch') {
    watch = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (
    rest[0] === 'namespaces' &&
    rest.length >= 3 &&
    !(rest.length === 3 && ['status', 'finalize'].includes(rest[2]!))
  ) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource, ...extra] = rest;
  const rt = ctx.registry.get(group, version, resource!);
  if (!rt || extra.length > 0 || (namespace !== undefined && !rt.namespaced)) throw notFoundPath();
  const known =
    (subresource === 'status' && rt.status) ||
    (subresource === 'scale' && rt.scale) ||
    rt.extraSubresources?.some((x) => x.name === subresource);
  if (subresource && !known) throw notFoundPath();
  return {
    rt,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(subresource !== undefined ? { subresource } : {}),
    query: url.searchParams,
    userAgent: String(req.headers['user-agent'] ?? ''),
    warnings: [],
    watch,
  };
}

function nonResource(ctx: RouteContext, url: URL): unknown {
  const p = url.pathname.replace(/\/+$/, '') || '/';
  if (p === '/version') return VERSION_INFO;
  if (p === '/api') return ctx.registry.coreVersions(ctx.serverAddress);
  if (p === '/apis') return ctx.registry.groupList();
  if (p === '/openapi/v3') return ctx.openapi.root();
  if (p.startsWith('/openapi/v3/')) return ctx.openapi.document(p.slice('/openapi/v3/'.length));
  const segs = p.split('/').filter(Boolean);
  if (segs[0] === 'api' && segs.length === 2) return ctx.registry.resourceList('', segs[1]!);
  if (segs[0] === 'apis' && segs.length === 2) return ctx.registry.group(segs[1]!);
  if (segs[0] === 'apis' && segs.length === 3) return ctx.registry.resourceList(segs[1]!, segs[2]!);
  return undefined;
}

function render(
  ctx: RouteContext,
  r: ResourceRequest,
  rendering: Rendering,
  reply: Reply,
  res: ServerResponse,
): void {
  const now = ctx.core.now();
  const include = (r.query.get('includeObject') ?? 'Metadata') as IncludeObject;
  const body = reply.body as KubeObject & {
    items?: KubeObject[];
    metadata: { resourceVersion?: string; continue?: string };
  };
  if (
    rendering.as === 'Table' &&
    reply.code < 300 &&
    (body.kind === 'List' || r.rt.listKind === body.kind || r.rt.kind === body.kind)
  ) {
    const items = Array.isArray(body.items) ? body.items : [body];
    const table = toTable(r.rt, items, {
      ...(body.items && body.metadata.resourceVersion
        ? { resourceVersion: body.metadata.resourceVersion }
        : {}),
      ...(body.metadata.continue ? { continue: body.metadata.continue } : {}),
      include,
      version: rendering.version,
      now,
    });
    send(res, reply.code, table, r);
    return;
  }
  if (
    (rendering.as === 'PartialObjectMetadata' || rendering.as === 'PartialObjectMetadataList') &&
    reply.code < 300
  ) {
    const meta = (o: KubeObject) => ({
      kind: 'PartialObjectMetadata',
      apiVersion: `meta.k8s.io/${rendering.version}`,
      metadata: o.metadata,
    });
    const out = Array.isArray(body.items)
      ? {
          kind: 'PartialObjectMetadataList',
          apiVersion: `meta.k8s.io/${rendering.version}`,
          metadata: body.metadata,
          items: body.items.map(meta),
        }
      : meta(body);
    send(res, reply.code, out, r);
    return;
  }
  send(res, reply.code, reply.body, r, rendering.as === 'yaml');
}

export async function handle(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://stand-in');
  const method = req.method ?? 'GET';
  const started = Date.now();
  let code = 200;
  try {
    if (/^\/(healthz|livez|readyz)(\/|$)/.test(url.pathname)) {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (url.pathname === '/openapi/v2') throw notFoundPath();
    const r = resourceRequest(ctx, url, req);
    if (!r) {
      if (method !== 'GET') throw methodNotAllowed();
      const doc = nonResource(ctx, url);
      if (doc === undefined) throw notFoundPath();
      return send(res, 200, doc);
    }
    const rendering = negotiate(req.headers.accept);
    const contentType = String(req.headers['content-type'] ?? '');
    const raw = method === 'GET' ? '' : await readBody(req);
    let reply: Reply;
    switch (method) {
      case 'GET':
        if (r.name && !r.watch) reply = get(ctx.core, r);
        else if (r.watch) {
          if (r.name)
            r.query.set(
              'fieldSelector',
              [r.query.get('fieldSelector'), `metadata.name=${r.name}`].filter(Boolean).join(','),
            );
          return serveWatch(ctx.core, r, res, {
            bookmarkIntervalMs: ctx.bookmarkIntervalMs,
            render: (o) =>
              rendering.as === 'Table'
                ? toTable(r.rt, [o], {
                    include: (r.query.get('includeObject') ?? 'Metadata') as IncludeObject,
                    version: rendering.version,
                    now: ctx.core.now(),
                  })
                : o,
            onClose: (stop) => {
              ctx.watches.add(stop);
              res.on('close', () => ctx.watches.delete(stop));
            },
          });
        } else reply = { code: 200, body: listBody(r.rt, list(ctx.core, r)) };
        break;
      case 'POST':
        reply = create(ctx.core, r, parseBody(contentType, raw));
        break;
      case 'PUT':
        if (!r.name) throw methodNotAllowed();
        reply = update(ctx.core, r, parseBody(contentType, raw));
        break;
      case 'PATCH':
        if (!r.name) throw methodNotAllowed();
        reply = patch(ctx.core, r, contentType, raw);
        break;
      case 'DELETE':
        reply = r.name
          ? remove(ctx.core, r, parseBody(contentType || 'application/json', raw))
          : removeCollection(ctx.core, r, parseBody(contentType || 'application/json', raw));
        break;
      default:
        throw methodNotAllowed();
    }
    code = reply.code;
    render(ctx, r, rendering, reply, res);
  } catch (err) {
    const e = err instanceof ApiError ? err : internal((err as Error)?.stack ?? String(err));
    code = e.code;
    if (!res.headersSent) send(res, e.code, e.toStatus());
    else res.end();
  } finally {
    ctx.log?.(`${method} ${url.pathname}${url.search} ${code} ${Date.now() - started}ms`);
  }
}
