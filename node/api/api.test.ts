// The client API against a real single-node server (and a three-node one for forwarding):
// limits, fencing, errors, watch over SSE and long-poll, health, readiness and metrics.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcess } from '../../e2e/support/in-process-cluster.js';
import type { RunningNode } from '../server.js';

async function single(extra: string[] = []): Promise<{ node: RunningNode; stop: () => Promise<void> }> {
  const cluster = await startInProcess(['solo'], { args: () => extra });
  return { node: cluster.nodes[0] as RunningNode, stop: () => cluster.stop() };
}

describe('client API', () => {
  let node: RunningNode;
  let stop: () => Promise<void>;
  let url: string;
  beforeAll(async () => {
    ({ node, stop } = await single([
      '--max-key-bytes',
      '16',
      '--max-value-bytes',
      '32',
      '--max-body-bytes',
      '400',
      '--watch-history',
      '5',
    ]));
    url = node.apiUrl;
  });
  afterAll(async () => {
    await stop();
  });

  const put = (key: string, body: string | Buffer, query = '') =>
    fetch(`${url}/v1/kv/${key}${query}`, { method: 'PUT', body });
  const error = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

  it('stores bytes and answers text as UTF-8 and binary as base64, or raw', async () => {
    expect((await put('text', 'hello')).status).toBe(200);
    expect((await put('bin', Buffer.from([0xff, 0x00, 0x81]))).status).toBe(200);
    expect(await (await fetch(`${url}/v1/kv/text`)).json()).toMatchObject({
      value: 'hello',
      encoding: 'utf8',
      version: 1,
    });
    expect(await (await fetch(`${url}/v1/kv/bin`)).json()).toMatchObject({
      value: '/wCB',
      encoding: 'base64',
    });
    const raw = await fetch(`${url}/v1/kv/bin?raw=1`);
    expect(Buffer.from(await raw.arrayBuffer())).toEqual(Buffer.from([0xff, 0x00, 0x81]));
  });

  it('keeps a leading byte order mark in keys and values, in every JSON answer', async () => {
    const key = '\uFEFFbom/k';
    const value = '\uFEFFtext';
    const { revision } = (await (await put(encodeURIComponent(key), value)).json()) as { revision: number };
    const one = (await (await fetch(`${url}/v1/kv/${encodeURIComponent(key)}`)).json()) as object;
    expect(one).toMatchObject({ key, value, encoding: 'utf8' });
    const range = (await (await fetch(`${url}/v1/kv?prefix=${encodeURIComponent('\uFEFFbom/')}`)).json()) as {
      kvs: object[];
    };
    expect(range.kvs).toEqual([expect.objectContaining({ key, value })]);
    const txn = await fetch(`${url}/v1/txn`, {
      method: 'POST',
      body: JSON.stringify({ success: [{ type: 'get', key }] }),
    });
    expect(await txn.json()).toMatchObject({ responses: [{ type: 'get', kv: { key, value } }] });
    const watch = (await (
      await fetch(`${url}/v1/watch?key=${encodeURIComponent(key)}&from_revision=${revision}`)
    ).json()) as {
      events: object[];
    };
    expect(watch.events).toEqual([expect.objectContaining({ kv: expect.objectContaining({ key, value }) })]);
    const raw = await fetch(`${url}/v1/kv/${encodeURIComponent(key)}?raw=1`);
    expect(Buffer.from(await raw.arrayBuffer())).toEqual(Buffer.from(value));
  });

  it('carries the fencing headers on every answer, errors included', async () => {
    const res = await fetch(`${url}/v1/kv/nope`);
    expect(res.status).toBe(404);
    expect(await error(res)).toBe('KEY_NOT_FOUND');
    expect(Number(res.headers.get('x-conflux-term'))).toBeGreaterThan(0);
    expect(Number(res.headers.get('x-conflux-revision'))).toBeGreaterThan(0);
    expect(res.headers.get('x-conflux-leader')).toBe('solo');
  });

  it('refuses a minimum term or revision it cannot honour (409 / 412)', async () => {
    const term = Number((await fetch(`${url}/healthz`)).headers.get('x-conflux-term'));
    const stale = await fetch(`${url}/v1/kv/text`, { headers: { 'x-conflux-min-term': String(term + 1) } });
    expect([stale.status, await error(stale)]).toEqual([409, 'STALE_TERM']);
    const ahead = await fetch(`${url}/v1/kv/text?consistency=serializable`, {
      headers: { 'x-conflux-min-revision': '999999' },
    });
    expect([ahead.status, await error(ahead)]).toEqual([412, 'REVISION_NOT_REACHED']);
    const ok = await fetch(`${url}/v1/kv/text`, {
      headers: { 'x-conflux-min-term': String(term), 'x-conflux-min-revision': '1' },
    });
    expect(ok.status).toBe(200);
  });

  it('enforces the key, value and body limits with clear codes', async () => {
    const long = await put('k'.repeat(17), 'v');
    expect([long.status, await error(long)]).toEqual([400, 'KEY_TOO_LONG']);
    const big = await put('k', 'v'.repeat(33));
    expect([big.status, await error(big)]).toEqual([413, 'VALUE_TOO_LARGE']);
    const huge = await put('k', 'v'.repeat(401));
    expect([huge.status, await error(huge)]).toEqual([413, 'BODY_TOO_LARGE']);
    expect(((await (await fetch(`${url}/v1/kv/k`)).json()) as { error: { code: string } }).error.code).toBe(
      'KEY_NOT_FOUND',
    );
  });

  it('compare-and-set on modRevision: 0 creates only, a stale revision is refused with the current one', async () => {
    const created = (await (await put('cas', 'a', '?cas=0')).json()) as { revision: number };
    const again = await put('cas', 'b', '?cas=0');
    expect(again.status).toBe(412);
    expect(await again.json()).toMatchObject({
      error: { code: 'COMPARE_FAILED', currentModRevision: created.revision },
    });
    expect((await put('cas', 'c', `?cas=${created.revision}`)).status).toBe(200);
    const del = await fetch(`${url}/v1/kv/cas?cas=1`, { method: 'DELETE' });
    expect(await error(del)).toBe('COMPARE_FAILED');
  });

  it('pages a prefix range without leaking neighbouring keys', async () => {
    for (const k of ['p/a', 'p/b', 'p/c', 'p0']) await put(k, k);
    const first = (await (await fetch(`${url}/v1/kv?prefix=p/&limit=2`)).json()) as {
      kvs: { key: string }[];
      more: boolean;
      next: string;
    };
    expect(first.kvs.map((k) => k.key)).toEqual(['p/a', 'p/b']);
    expect(first.more).toBe(true);
    const second = (await (await fetch(`${url}/v1/kv?prefix=p/&limit=2&after=${first.next}`)).json()) as {
      kvs: { key: string }[];
      more: boolean;
    };
    expect(second.kvs.map((k) => k.key)).toEqual(['p/c']);
    expect(second.more).toBe(false);
  });

  it('runs transactions and rejects malformed ones with the field named', async () => {
    const res = await fetch(`${url}/v1/txn`, {
      method: 'POST',
      body: JSON.stringify({
        compare: [{ key: 'text', target: 'value', op: '=', value: 'hello' }],
        success: [
          { type: 'put', key: 't1', value: 'AQI=', encoding: 'base64' },
          { type: 'get', key: 'text' },
        ],
      }),
    });
    expect(await res.json()).toMatchObject({
      succeeded: true,
      responses: [{ type: 'put' }, { type: 'get', kv: { value: 'hello' } }],
    });
    const bad = await fetch(`${url}/v1/txn`, {
      method: 'POST',
      body: JSON.stringify({ success: [{ type: 'nope' }] }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      error: { code: 'INVALID_REQUEST', message: expect.stringContaining('body.success.0') },
    });
    const notJson = await fetch(`${url}/v1/txn`, { method: 'POST', body: '{' });
    expect(await error(notJson)).toBe('INVALID_REQUEST');
  });

  it('long-polls a watch: immediate when events exist, after the write otherwise, 410 when too old', async () => {
    const { revision } = (await (await put('w/1', 'one')).json()) as { revision: number };
    const now = (await (await fetch(`${url}/v1/watch?prefix=w/&from_revision=${revision}`)).json()) as {
      events: { kv: { key: string } }[];
    };
    expect(now.events.map((e) => e.kv.key)).toEqual(['w/1']);
    const waiting = fetch(`${url}/v1/watch?key=w/2&from_revision=${revision + 1}&timeout_ms=5000`).then((r) =>
      r.json(),
    );
    await new Promise((r) => setTimeout(r, 50));
    await put('w/2', 'two');
    expect(((await waiting) as { events: { kv: { value: string } }[] }).events[0]?.kv.value).toBe('two');
    for (let i = 0; i < 6; i++) await put('churn', `${i}`);
    const gone = await fetch(`${url}/v1/watch?prefix=w/&from_revision=1`);
    expect(gone.status).toBe(410);
    expect(await gone.json()).toMatchObject({
      error: { code: 'COMPACTED', oldestRevision: expect.any(Number) },
    });
  });

  it('streams a watch over Server-Sent Events', async () => {
    const ac = new AbortController();
    const res = await fetch(`${url}/v1/watch?prefix=sse/`, {
      headers: { accept: 'text/event-stream' },
      signal: ac.signal,
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await put('sse/a', 'A');
    let text = '';
    while (!text.includes('event: put')) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    expect(text).toMatch(/id: \d+\.1\nevent: put\ndata: \{.*"key":"sse\/a".*"value":"A"/);
  });

  it('resumes an SSE stream after the Last-Event-ID, inside a transaction too', async () => {
    const events = async (headers: Record<string, string>, count: number) => {
      const ac = new AbortController();
      const res = await fetch(`${url}/v1/watch?prefix=tx/&from_revision=${start}`, {
        headers: { accept: 'text/event-stream', ...headers },
        signal: ac.signal,
      });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = '';
      const got = () => [...text.matchAll(/id: (\S+)\nevent: put\ndata: (.*)\n/g)];
      while (got().length < count) text += new TextDecoder().decode((await reader.read()).value);
      ac.abort();
      return got().map(([, id, data]) => ({
        id: id as string,
        key: (JSON.parse(data as string) as { kv: { key: string } }).kv.key,
      }));
    };
    const { revision: start } = (await (await put('tx/0', 'x')).json()) as { revision: number };
    await fetch(`${url}/v1/txn`, {
      method: 'POST',
      body: JSON.stringify({
        success: ['tx/a', 'tx/b', 'tx/c'].map((key) => ({ type: 'put', key, value: 'v' })),
      }),
    });
    const all = await events({}, 4);
    expect(all).toEqual([
      { id: `${start}.1`, key: 'tx/0' },
      { id: `${start + 1}.1`, key: 'tx/a' },
      { id: `${start + 1}.2`, key: 'tx/b' },
      { id: `${start + 1}.3`, key: 'tx/c' },
    ]);
    expect(await events({ 'last-event-id': `${start + 1}.1` }, 2)).toEqual(all.slice(2));
    expect(await events({ 'last-event-id': `${start}.1` }, 3)).toEqual(all.slice(1));
    await put('tx/z', 'later');
    expect(await events({ 'last-event-id': `${start + 1}.3` }, 1)).toEqual([
      { id: `${start + 2}.1`, key: 'tx/z' },
    ]);
    const bad = await fetch(`${url}/v1/watch?prefix=tx/`, {
      headers: { accept: 'text/event-stream', 'last-event-id': 'nope' },
    });
    expect(bad.status).toBe(400);
    expect(await error(bad)).toBe('INVALID_REQUEST');
  });

  it('answers unknown routes and bad queries from the catalogue', async () => {
    const res = await fetch(`${url}/v2/nothing`);
    expect([res.status, await error(res)]).toEqual([404, 'ROUTE_NOT_FOUND']);
    const q = await fetch(`${url}/v1/kv?limit=0`);
    expect([q.status, await error(q)]).toEqual([400, 'INVALID_REQUEST']);
  });

  it('reports health, readiness and Prometheus metrics', async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${url}/readyz`)).json()).toMatchObject({ ready: true, state: 'leader' });
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const name of [
      'conflux_raft_term',
      'conflux_raft_commit_index',
      'conflux_storage_fsync_seconds_bucket',
      'conflux_http_request_duration_seconds_bucket',
      'conflux_raft_proposals_total',
      'conflux_kv_apply_seconds_bucket',
    ]) {
      expect(text).toContain(name);
    }
  });
});

describe('rate limit', () => {
  it('answers 429 RATE_LIMITED beyond the configured rate', async () => {
    const { node, stop } = await single(['--rate-limit', '5']);
    try {
      const codes = await Promise.all(
        Array.from({ length: 12 }, () =>
          fetch(`${node.apiUrl}/v1/kv/x?consistency=serializable`).then((r) => r.status),
        ),
      );
      expect(codes).toContain(429);
      const res = await fetch(`${node.apiUrl}/v1/kv/x`);
      if (res.status === 429) expect(await res.json()).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    } finally {
      await stop();
    }
  });
});
