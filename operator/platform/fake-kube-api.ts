// Test support: the smallest Kubernetes API stand-in that serves what the operator's cache and
// platform call — LIST (label selectors k=v), WATCH (ADDED/MODIFIED/DELETED lines after the
// listed resourceVersion), GET, server-side apply PATCH, POST, PUT (also /status) and DELETE of
// namespaced objects — and counts every request by verb and resource. No validation, no
// defaulting, no admission: the real API server's behaviour is checked in e2e/cluster/.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

type Obj = {
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
};
type Watcher = {
  resource: string;
  namespace: string | undefined;
  selector: string | null;
  res: ServerResponse;
};

/** `/api/v1[/namespaces/ns]/plural[/name[/sub]]` or `/apis/group/version[...]`. */
function parsePath(pathname: string) {
  const parts = pathname.split('/').filter(Boolean);
  const base = parts[0] === 'api' ? 2 : 3;
  let rest = parts.slice(base);
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [plural = '', name, sub] = rest;
  return { resource: `${parts.slice(0, base).join('/')}/${plural}`, plural, namespace, name, sub };
}

function matches(o: Obj, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k = '', v] = term.split('=');
    return o.metadata.labels?.[k] === v;
  });
}

/** A KubeConfig for a plain-HTTP API stand-in listening on loopback. */
export function loopbackKubeConfig(server: Server): KubeConfig {
  const { port } = server.address() as AddressInfo;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
    currentContext: 'fake',
  });
  return kc;
}

export class FakeKubeApi {
  /** Every request as `VERB plural[/sub]`, VERB one of LIST WATCH GET PATCH POST PUT DELETE. */
  readonly requests: string[] = [];
  private readonly objects = new Map<string, Map<string, Obj>>();
  private readonly watchers = new Set<Watcher>();
  private rv = 100;
  private server: Server | undefined;

  /** Listens on loopback; the KubeConfig points at it. */
  async start(): Promise<KubeConfig> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    return loopbackKubeConfig(this.server);
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }

  /** Requests since `from` (an index into `requests`), counted by `VERB plural`. */
  countSince(from: number): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const r of this.requests.slice(from)) counts[r] = (counts[r] ?? 0) + 1;
    return counts;
  }

  /** Stores `obj` at collection `resource` (e.g. `api/v1/pods`) as a controller or user would. */
  put(resource: string, obj: Obj): Obj {
    const coll = this.objects.get(resource) ?? new Map<string, Obj>();
    this.objects.set(resource, coll);
    const id = `${obj.metadata.namespace}/${obj.metadata.name}`;
    const type = coll.has(id) ? 'MODIFIED' : 'ADDED';
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    coll.set(id, stored);
    this.notify(resource, type, stored);
    return stored;
  }

  get(resource: string, namespace: string, name: string): Obj | undefined {
    return this.objects.get(resource)?.get(`${namespace}/${name}`);
  }

  remove(resource: string, namespace: string, name: string): boolean {
    const obj = this.get(resource, namespace, name);
    if (!obj) return false;
    this.objects.get(resource)?.delete(`${namespace}/${name}`);
    this.notify(resource, 'DELETED', {
      ...obj,
      metadata: { ...obj.metadata, resourceVersion: String(++this.rv) },
    });
    return true;
  }

  private notify(resource: string, type: string, obj: Obj) {
    for (const w of this.watchers) {
      if (w.resource !== resource || (w.namespace && w.namespace !== obj.metadata.namespace)) continue;
      if (matches(obj, w.selector)) w.res.write(`${JSON.stringify({ type, object: obj })}\n`);
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = parsePath(url.pathname);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length > 0 ? (JSON.parse(Buffer.concat(chunks).toString()) as Obj) : undefined;
    const method = req.method ?? 'GET';
    const watch = url.searchParams.get('watch') === 'true';
    const verb = method === 'GET' ? (watch ? 'WATCH' : p.name ? 'GET' : 'LIST') : method;
    this.requests.push(`${verb} ${p.plural}${p.sub ? `/${p.sub}` : ''}`);
    const send = (code: number, o: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(o));
    };
    const notFound = () => send(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 404 });
    const selector = url.searchParams.get('labelSelector');
    if (verb === 'WATCH') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      const w = { resource: p.resource, namespace: p.namespace, selector, res };
      this.watchers.add(w);
      req.on('close', () => this.watchers.delete(w));
      return;
    }
    if (verb === 'LIST') {
      const items = [...(this.objects.get(p.resource)?.values() ?? [])].filter(
        (o) => (!p.namespace || o.metadata.namespace === p.namespace) && matches(o, selector),
      );
      return send(200, {
        kind: 'List',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(this.rv) },
        items,
      });
    }
    const ns = p.namespace ?? '';
    const existing = p.name ? this.get(p.resource, ns, p.name) : undefined;
    if (verb === 'GET') return existing ? send(200, existing) : notFound();
    if (verb === 'DELETE') {
      if (!p.name || !this.remove(p.resource, ns, p.name)) return notFound();
      return send(200, { kind: 'Status', apiVersion: 'v1', status: 'Success' });
    }
    if (!body) return send(400, { kind: 'Status', code: 400, message: 'no body' });
    const name = p.name ?? body.metadata.name;
    if (p.sub === 'status' && !existing) return notFound();
    const merged = p.sub === 'status' ? { ...existing, status: (body as { status?: unknown }).status } : body;
    const stored = this.put(p.resource, {
      ...merged,
      metadata: { ...body.metadata, name, namespace: ns },
    } as Obj);
    send(existing ? 200 : 201, stored);
  }
}
