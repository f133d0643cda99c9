// The API's limits in process: strict base64, backup URIs refused as bad requests, Node's own
// refusals in the catalogue's shape, the watch and quota bookkeeping, and the rate limit keyed by
// the original client of a forwarded request, which a client cannot forge (plain and TLS).

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessCluster, startInProcess } from '../../e2e/support/in-process-cluster.js';
import { hasOpenssl, makePki, type Pki } from '../../e2e/support/openssl-pki.js';
import type { KvCommand } from '../kv/commands.js';
import { storedBytes } from '../kv/state.js';
import type { RunningNode } from '../server.js';
import { FORWARDED_BY, FORWARDED_FOR } from './forward.js';
import { isBase64 } from './json.js';
import { AcceptRate, serverOptions, WatcherLimits } from './limits.js';
import { defaultQuotaBytes, StorageQuota } from './quota.js';

const errorCode = (body: string) => (JSON.parse(body) as { error: { code: string } }).error.code;

describe('strict base64', () => {
  it.each([
    ['', true],
    ['QQ==', true],
    ['QQ', true],
    ['QUJD', true],
    ['/+8=', true],
    ['QR==', false], // non-canonical: the trailing bits are not zero
    ['QQ=', false],
    ['Q', false],
    ['QQ==QQ==', false],
    ['QQ ==', false],
    ['!!!!', false],
    ['-_8=', false], // base64url is another alphabet
  ])('%j is valid: %s', (text, valid) => {
    expect(isBase64(text)).toBe(valid);
  });
});

describe('server options', () => {
  const limits = {
    maxConnections: 10,
    maxConnectionsPerClient: 5,
    readHeaderTimeoutMs: 2_000,
    readTimeoutMs: 3_000,
    idleTimeoutMs: 4_000,
  };

  it("apply Node's read timeouts, checked often enough to matter, over HTTP and HTTPS", () => {
    const node = { headersTimeout: 2_000, requestTimeout: 3_000, connectionsCheckingInterval: 500 };
    expect(serverOptions(limits, undefined)).toMatchObject({
      connectionTimeout: 4_000,
      keepAliveTimeout: 4_000,
      requestTimeout: 3_000,
      http: node,
    });
    // A TLS handshake is bounded by the header timeout as well (Node would wait 120 s).
    expect(serverOptions(limits, { cert: 'c' }).https).toEqual({
      cert: 'c',
      ...node,
      handshakeTimeout: 2_000,
    });
  });

  it('never cut an admin request in progress (a backup may take minutes), only idle keep-alive', () => {
    expect(serverOptions(limits, undefined, true)).toMatchObject({
      connectionTimeout: 0,
      keepAliveTimeout: 4_000,
    });
  });
});

describe('accept rate', () => {
  it('accepts a quarter second of connections at once, then its rate, and never saves up beyond that', () => {
    const rate = new AcceptRate(400, 0);
    const taken = (nowMs: number, n: number) =>
      Array.from({ length: n }, () => rate.take(nowMs)).filter(Boolean);
    expect(taken(0, 150)).toHaveLength(100);
    expect(rate.take(1)).toBe(false);
    // 400 a second: 40 in the next 100 ms.
    expect(taken(101, 100)).toHaveLength(40);
    // An hour of silence still allows only the burst.
    expect(taken(3_600_000, 1_000)).toHaveLength(100);
    expect(new AcceptRate(1, 0).burst).toBe(1);
  });
});

describe('watch bookkeeping', () => {
  it('refuses beyond the node limit and the per-client limit, and counts releases once', () => {
    const w = new WatcherLimits(3, 2);
    const a1 = w.acquire('a');
    w.acquire('a');
    expect(() => w.acquire('a')).toThrow(expect.objectContaining({ code: 'TOO_MANY_WATCHERS' }));
    const b1 = w.acquire('b');
    expect(() => w.acquire('c')).toThrow(/limit of 3 watches/);
    a1();
    a1();
    expect(w.count).toBe(2);
    w.acquire('c');
    b1();
    w.acquire('a');
    expect(w.count).toBe(3);
  });
});

describe('storage quota', () => {
  it('defaults to 512 MiB, or to what a memory limit leaves room for', () => {
    const MiB = 1024 * 1024;
    expect(defaultQuotaBytes(undefined)).toBe(512 * MiB);
    expect(defaultQuotaBytes(2 ** 64)).toBe(512 * MiB); // no cgroup limit
    expect(defaultQuotaBytes(4096 * MiB)).toBe(512 * MiB);
    expect(defaultQuotaBytes(512 * MiB)).toBe(128 * MiB); // the sample cluster's pods
    expect(defaultQuotaBytes(1024 * MiB)).toBe(Math.floor((832 * MiB) / 2.5));
    expect(defaultQuotaBytes(128 * MiB)).toBe(16 * MiB);
  });

  const fake = (values: Record<string, number>) => ({
    get bytes() {
      return Object.entries(values).reduce((sum, [k, n]) => sum + storedBytes(k, n), 0);
    },
    valueBytes: (k: string) => values[k],
  });
  const put = (key: string, n: number): KvCommand => ({ type: 'put', key, value: new Uint8Array(n) });

  it('counts admitted writes in flight, so concurrent writers cannot overshoot', () => {
    const values: Record<string, number> = {};
    const q = new StorageQuota(fake(values), 1000);
    const first = q.admit(put('a', 600));
    expect(() => q.admit(put('b', 600))).not.toThrow(); // 728 in flight < 1000: the one that reaches it
    expect(() => q.admit(put('c', 10))).toThrow(expect.objectContaining({ code: 'NO_SPACE' }));
    first();
    expect(q.alarm).toBe(false);
  });

  it('refuses growth while the alarm is on, admits deletes and shrinking writes, and clears by itself', () => {
    const values: Record<string, number> = { a: 900 };
    const q = new StorageQuota(fake(values), 1000);
    expect(q.alarm).toBe(true);
    expect(() => q.admit(put('b', 1))).toThrow(/quota is used up/);
    expect(() => q.admit(put('a', 901))).toThrow(expect.objectContaining({ code: 'NO_SPACE' }));
    q.admit(put('a', 800))();
    q.admit({ type: 'delete', key: 'a' })();
    values.a = 800;
    expect(q.alarm).toBe(false);
    expect(() => q.admit(put('b', 1))).not.toThrow();
  });
});

/** One request from a chosen local address (127.0.0.x are all this machine). */
function call(
  url: string,
  opts: {
    method?: string;
    from?: string;
    headers?: Record<string, string>;
    tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  } = {},
): Promise<{ status: number; body: string }> {
  const send = opts.tls ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: opts.method ?? 'GET',
        headers: opts.headers ?? {},
        agent: false,
        ...(opts.from ? { localAddress: opts.from } : {}),
        ...(opts.tls ?? {}),
      },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/**
 * The rate limit (4 per second) counts the original clients of forwarded requests apart, and the
 * forwarding header counts only from a member: a client sending it itself is counted as itself.
 */
async function rateLimitByOriginalClient(
  cluster: InProcessCluster,
  tls?: { ca: Buffer; stranger: { cert: Buffer; key: Buffer } },
) {
  const leader = cluster.leader() as RunningNode;
  const follower = cluster.nodes.find((n) => n !== leader) as RunningNode;
  const opts = tls ? { tls: { ca: tls.ca } } : {};
  // Linearizable reads are forwarded to the leader: two clients, four each, all within a second.
  const forwarded = await Promise.all(
    ['127.0.0.2', '127.0.0.3'].flatMap((from) =>
      Array.from({ length: 4 }, () => call(`${follower.apiUrl}/v1/kv/missing`, { from, ...opts })),
    ),
  );
  expect(forwarded.map((r) => r.status)).toEqual(Array(8).fill(404));
  // A client claiming to be forwarded: every request names another client, yet the fifth is
  // refused, since the claim is not from a member.
  const forged = await Promise.all(
    Array.from({ length: 5 }, (_, i) =>
      call(`${leader.apiUrl}/v1/kv/missing`, {
        from: '127.0.0.4',
        headers: { [FORWARDED_BY]: follower.id, [FORWARDED_FOR]: `10.0.0.${i + 1}` },
        ...(tls ? { tls: { ca: tls.ca, ...tls.stranger } } : {}),
      }),
    ),
  );
  expect(forged.filter((r) => r.status === 429).map((r) => errorCode(r.body))).toEqual(['RATE_LIMITED']);
  // Probes are never throttled.
  const probes = await Promise.all(
    ['/healthz', '/readyz', '/metrics'].flatMap((path) =>
      Array.from({ length: 6 }, () => call(`${leader.apiUrl}${path}`, { from: '127.0.0.5', ...opts })),
    ),
  );
  expect(probes.map((r) => r.status)).toEqual(Array(18).fill(200));
  const limited = await Promise.all(
    Array.from({ length: 6 }, () => call(`${leader.apiUrl}/v1/kv/missing`, { from: '127.0.0.5', ...opts })),
  );
  expect(limited.filter((r) => r.status === 429)).toHaveLength(2);
}

describe('a three-node cluster without TLS', () => {
  let cluster: InProcessCluster;
  let leader: RunningNode;
  beforeAll(async () => {
    cluster = await startInProcess(['a', 'b', 'c'], { args: () => ['--rate-limit', '4'] });
    leader = cluster.leader() as RunningNode;
  });
  afterAll(async () => cluster.stop());

  it('rate-limits by the original client of a forwarded request, and exempts probes', async () => {
    await rateLimitByOriginalClient(cluster);
  });

  it('refuses invalid base64 naming the field, and writes nothing', async () => {
    await new Promise((r) => setTimeout(r, 1100)); // a fresh rate-limit window
    const before = leader.kv.revision;
    const txn = (body: object) =>
      leader.api.inject({ method: 'POST', url: '/v1/txn', payload: JSON.stringify(body) });
    let res = await txn({ success: [{ type: 'put', key: 'k', value: 'not base64!', encoding: 'base64' }] });
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body).error).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(JSON.parse(res.body).error.message).toMatch(/body\.success\.0\.value: not valid base64/);
    res = await txn({
      compare: [{ key: 'k', target: 'value', op: '=', value: 'QR==', encoding: 'base64' }],
      failure: [{ type: 'get', key: 'k' }],
    });
    expect(JSON.parse(res.body).error.message).toMatch(/body\.compare\.0\.value/);
    expect(leader.kv.revision).toBe(before);
    res = await txn({ success: [{ type: 'put', key: 'k', value: '/+8=', encoding: 'base64' }] });
    expect(res.statusCode).toBe(200);
    expect([...(leader.kv.get('k')?.value ?? [])]).toEqual([0xff, 0xef]);
  });

  it('refuses backup URIs with NUL or an encoded slash as bad requests, not destination failures', async () => {
    for (const destination of [
      'file:///tmp/conflux%00x',
      'file:///tmp/a%2Fb',
      's3://bucket/a%2fb',
      's3://bucket/\u0000',
    ]) {
      const res = await leader.admin.inject({
        method: 'POST',
        url: '/_cluster/backup',
        payload: JSON.stringify({ destination }),
      });
      expect(res.statusCode, `${destination}: ${res.body}`).toBe(400);
      expect(errorCode(res.body)).toBe('INVALID_REQUEST');
    }
  });

  it("answers Node's own refusals in the catalogue's JSON shape, on both ports", async () => {
    for (const base of [leader.apiUrl, leader.adminUrl]) {
      const long = await call(`${base}/v1/kv/${'x'.repeat(20_000)}`);
      expect(long.status).toBe(431);
      expect(JSON.parse(long.body).error).toMatchObject({ code: 'HEADERS_TOO_LARGE' });
      const [host, port] = base.replace('http://', '').split(':') as [string, string];
      const garbage = await new Promise<string>((resolve) => {
        const socket = connect(Number(port), host, () => socket.end('NOT HTTP AT ALL\r\n\r\n'));
        let text = '';
        socket.on('data', (c) => {
          text += c;
        });
        socket.on('close', () => resolve(text));
      });
      expect(garbage).toMatch(/^HTTP\/1\.1 400 /);
      expect(errorCode(garbage.slice(garbage.indexOf('\r\n\r\n') + 4))).toBe('INVALID_REQUEST');
    }
  });
});

describe.skipIf(!hasOpenssl())('a three-node cluster with TLS', () => {
  let pki: Pki;
  let cluster: InProcessCluster;
  beforeAll(async () => {
    pki = makePki();
    cluster = await startInProcess(['t1', 't2', 't3'], {
      tls: true,
      tickMs: 20,
      dir: pki.dir,
      args: (id) => {
        pki.node(id, 'ca1');
        const file = (name: string) => join(pki.dir, name);
        return [
          '--tls-cert',
          file(`${id}.crt`),
          '--tls-key',
          file(`${id}.key`),
          '--tls-ca',
          file('ca1.crt'),
          '--rate-limit',
          '4',
        ];
      },
    });
  }, 60_000);
  afterAll(async () => cluster?.stop());

  it('believes a forwarded client address only from a node certificate of the cluster CA', async () => {
    // A node certificate from another CA does not verify: it speaks for nobody.
    const stranger = pki.node('stranger', 'ca2');
    await rateLimitByOriginalClient(cluster, {
      ca: pki.node('client', 'ca1').ca as Buffer,
      stranger: { cert: stranger.cert as Buffer, key: stranger.key as Buffer },
    });
  });
});
