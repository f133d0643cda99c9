// npm start's control endpoint (local-control.ts) in-process over a real LocalStore: the Kubernetes
// semantics the runbooks rely on (create, replace, merge patch with null removing a field,
// status never written by a client, the scale subresource, events) and a clear Status for every
// bad request.

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfluxCluster } from '../api/cluster.js';
import type { LocalPlatform } from './local.js';
import { mergePatch, serveControl } from './local-control.js';
import { LocalStore } from './local-store.js';

describe('mergePatch (RFC 7386)', () => {
  it('merges objects, removes members set to null, replaces arrays and scalars', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, e: [1] }, { b: { c: null, f: 4 }, e: [2], g: 'x' })).toEqual(
      {
        a: 1,
        b: { d: 3, f: 4 },
        e: [2],
        g: 'x',
      },
    );
    expect(mergePatch({ a: 1 }, null)).toBeNull();
    expect(mergePatch('x', { a: { b: null } })).toEqual({ a: {} });
  });
});

describe('the control endpoint', () => {
  const root = mkdtempSync(join(tmpdir(), 'conflux-control-'));
  const store = new LocalStore({ root });
  const stopped: string[] = [];
  const platform = {
    pods: async () => [],
    ensureMembers: async (c: ConfluxCluster, size: number) => {
      stopped.push(`${c.metadata.name}:${size}`);
    },
  } as unknown as LocalPlatform;
  let server: Server;
  let base = '';
  beforeAll(async () => {
    server = createServer((req, res) => void serveControl({ store, platform }, req, res));
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.close();
    rmSync(root, { recursive: true, force: true });
  });

  const path = '/apis/conflux.io/v1alpha1/namespaces/default/confluxclusters';
  const call = async (method: string, url: string, body?: unknown, type = 'application/json') => {
    const res = await fetch(`${base}${url}`, {
      method,
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      headers: { 'content-type': type },
    });
    return { status: res.status, doc: (await res.json()) as Record<string, unknown> & ConfluxCluster };
  };

  it('creates, lists and gets; a second create is AlreadyExists', async () => {
    const demo = {
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'demo' },
      spec: { replicas: 3 },
    };
    const created = await call('POST', path, demo);
    expect(created.status).toBe(201);
    expect(created.doc.metadata).toMatchObject({ name: 'demo', namespace: 'default', generation: 1 });
    expect((await call('POST', path, demo)).doc).toMatchObject({
      kind: 'Status',
      reason: 'AlreadyExists',
      code: 409,
    });
    const list = await call('GET', path);
    expect((list.doc as unknown as { items: ConfluxCluster[] }).items.map((c) => c.metadata.name)).toEqual([
      'demo',
    ]);
    expect((await call('GET', `${path}/demo`)).doc.spec.replicas).toBe(3);
  });

  it('merge-patches the spec: a field set, then removed with null; status in a patch is ignored', async () => {
    const set = await call(
      'PATCH',
      `${path}/demo`,
      { spec: { recovery: { forceNewClusterFrom: 'demo-0' } }, status: { phase: 'Failed' } },
      'application/merge-patch+json',
    );
    expect(set.status).toBe(200);
    expect(set.doc.spec.recovery).toEqual({ forceNewClusterFrom: 'demo-0' });
    expect(set.doc.metadata.generation).toBe(2);
    expect(set.doc.status).toBeUndefined();
    const removed = await call('PATCH', `${path}/demo`, { spec: { recovery: null } });
    expect(removed.doc.spec.recovery).toBeUndefined();
    expect(removed.doc.spec.replicas).toBe(3);
  });

  it('replaces with PUT, honouring a resourceVersion, and scales through /scale', async () => {
    const current = (await call('GET', `${path}/demo`)).doc;
    const stale = await call('PUT', `${path}/demo`, {
      metadata: { name: 'demo', resourceVersion: '1' },
      spec: { replicas: 5 },
    });
    expect(stale.doc).toMatchObject({ reason: 'Conflict', code: 409 });
    const put = await call('PUT', `${path}/demo`, {
      metadata: { name: 'demo', resourceVersion: current.metadata.resourceVersion },
      spec: { replicas: 5 },
    });
    expect(put.doc.spec.replicas).toBe(5);
    const scale = await call('PUT', `${path}/demo/scale`, { spec: { replicas: 3 } });
    expect(scale.doc).toMatchObject({ kind: 'Scale', spec: { replicas: 3 } });
  });

  it('refuses bad requests with a Status naming the problem', async () => {
    const cases: [string, string, unknown, number, string, RegExp, string?][] = [
      ['PATCH', `${path}/demo`, { spec: { replicas: 0 } }, 422, 'Invalid', /spec\.replicas/],
      [
        'PATCH',
        `${path}/demo`,
        { metadata: { name: 'other' } },
        400,
        'BadRequest',
        /cannot change metadata\.name/,
      ],
      ['PATCH', `${path}/demo`, '{not json', 400, 'BadRequest', /not JSON/],
      [
        'PATCH',
        `${path}/demo`,
        '[]',
        415,
        'UnsupportedMediaType',
        /merge patches/,
        'application/json-patch+json',
      ],
      ['PATCH', `${path}/nope`, {}, 404, 'NotFound', /"nope" not found/],
      [
        'PUT',
        `${path}/demo`,
        { metadata: { name: 'other' }, spec: {} },
        400,
        'BadRequest',
        /does not match "demo"/,
      ],
      [
        'POST',
        path,
        { kind: 'ConfluxBackup', metadata: { name: 'b' } },
        400,
        'BadRequest',
        /kind ConfluxCluster/,
      ],
      [
        'POST',
        path,
        { metadata: { name: 'x', namespace: 'prod' }, spec: {} },
        400,
        'BadRequest',
        /namespace/,
      ],
      ['POST', path, { spec: { replicas: 1 } }, 422, 'Invalid', /metadata\.name/],
      ['PUT', `${path}/demo/scale`, { spec: { replicas: -1 } }, 400, 'BadRequest', /replicas/],
      ['POST', `${path}/demo`, {}, 405, 'MethodNotAllowed', /POST/],
      ['GET', '/apis/other/v1/x', undefined, 404, 'NotFound', /no such resource/],
    ];
    for (const [method, url, body, code, reason, message, type] of cases) {
      const r = await call(method, url, body, type);
      expect({ status: r.status, reason: r.doc.reason }, `${method} ${url}`).toEqual({
        status: code,
        reason,
      });
      expect(r.doc.message as string).toMatch(message);
    }
  });

  it('lists events by object name, and DELETE stops the members and forgets the object', async () => {
    const demo = (await store.getCluster('default', 'demo')) as ConfluxCluster;
    await store.event(demo, 'Warning', 'QuorumLost', 'quorum lost');
    const events = await call(
      'GET',
      '/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Ddemo',
    );
    expect((events.doc as unknown as { items: { reason: string }[] }).items.map((e) => e.reason)).toEqual([
      'QuorumLost',
    ]);
    const deleted = await call('DELETE', `${path}/demo`);
    expect(deleted.doc).toMatchObject({ kind: 'Status', status: 'Success' });
    expect(stopped).toEqual(['demo:0']);
    expect((await call('GET', `${path}/demo`)).status).toBe(404);
  });
});
