// The cost of client authorization, part of `npm run bench` (alone: npx tsx bench/client-auth.ts
// [--seconds 5] [--concurrency 16]): client throughput of one Conflux node over TLS with client
// authorization off, then on (a user whose role grants readwrite on /app/, among 50 other roles
// with a permission each), in alternating rounds (off, on, off, on) so a noisy machine affects
// both alike. Each round: `concurrency` keep-alive HTTPS clients with a
// client certificate, each doing PUT then linearizable GET of its own /app/ key for `seconds`.
// Reports ops/s per round and the ratio of on to off (means of the rounds); the target is ≥ 0.9.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { freePort } from '../e2e/support/process-cluster.js';
import { generateAdminCert, generateCa, generateClientCert, generateNodeCert } from '../node/certs/index.js';
import { loadConfig } from '../node/config.js';
import { startNode } from '../node/server.js';

export type AuthCost = { seconds: number; concurrency: number; off: number[]; on: number[]; ratio: number };

export async function runClientAuthBench(seconds: number, concurrency: number): Promise<AuthCost> {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-bench-auth-'));
  const ca = await generateCa({ commonName: 'bench-ca', validDays: 1 });
  const server = await generateNodeCert(ca, {
    nodeId: 'solo',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    validDays: 1,
  });
  const admin = await generateAdminCert(ca, { commonName: 'sre', validDays: 1 });
  const user = await generateClientCert(ca, { commonName: 'bench', validDays: 1 });
  writeFileSync(join(dir, 'ca.crt'), ca.certPem);
  writeFileSync(join(dir, 'solo.crt'), server.certPem);
  writeFileSync(join(dir, 'solo.key'), server.keyPem, { mode: 0o600 });
  const [api, raft, adminPort] = [await freePort(), await freePort(), await freePort()];
  const node = await startNode(
    loadConfig(
      [
        ...['--node-id', 'solo', '--data-dir', join(dir, 'data'), '--api-addr', `127.0.0.1:${api}`],
        ...['--raft-addr', `127.0.0.1:${raft}`, '--admin-addr', `127.0.0.1:${adminPort}`],
        ...['--initial-cluster', `solo=127.0.0.1:${raft}/127.0.0.1:${api}`, '--tick-ms', '10'],
        ...[
          '--tls-cert',
          join(dir, 'solo.crt'),
          '--tls-key',
          join(dir, 'solo.key'),
          '--tls-ca',
          join(dir, 'ca.crt'),
        ],
      ],
      {},
    ),
    pino({ level: 'silent' }),
  );
  for (let i = 0; i < 500 && node.raft.metrics().state !== 'leader'; i++)
    await new Promise((r) => setTimeout(r, 10));

  function call(url: string, method: string, body: string | undefined, as: typeof user, agent?: Agent) {
    return new Promise<number>((ok, fail) => {
      const req = request(
        url,
        { method, ca: ca.certPem, cert: as.certPem, key: as.keyPem, ...(agent ? { agent } : {}) },
        (res) => {
          res.resume();
          res.on('end', () => ok(res.statusCode ?? 0));
        },
      );
      req.on('error', fail);
      req.end(body);
    });
  }

  async function authChanges(changes: unknown[]): Promise<void> {
    const status = await call(
      `https://127.0.0.1:${adminPort}/_cluster/auth`,
      'POST',
      JSON.stringify({ changes }),
      admin,
    );
    if (status !== 200) throw new Error(`POST /_cluster/auth answered ${status}`);
  }

  const others = Array.from({ length: 50 }, (_, i) => [
    { op: 'role-add', role: `team-${i}` },
    { op: 'role-grant', role: `team-${i}`, permission: { prefix: `/team-${i}/`, access: 'readwrite' } },
    { op: 'user-grant-role', user: 'bench', role: `team-${i}` },
  ]).flat();
  await authChanges([
    { op: 'user-add', user: 'ops' },
    { op: 'user-grant-role', user: 'ops', role: 'root' },
    { op: 'user-add', user: 'bench' },
    ...others,
    { op: 'role-add', role: 'app' },
    { op: 'role-grant', role: 'app', permission: { prefix: '/app/', access: 'readwrite' } },
    { op: 'user-grant-role', user: 'bench', role: 'app' },
  ]);

  async function round(): Promise<number> {
    const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
    const end = Date.now() + seconds * 1000;
    let ops = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, w) => {
        const url = `https://127.0.0.1:${api}/v1/kv//app/k-${w}`;
        for (let i = 0; Date.now() < end; i++) {
          const put = await call(url, 'PUT', String(i), user, agent);
          const get = await call(url, 'GET', undefined, user, agent);
          if (put !== 200 || get !== 200) throw new Error(`answered ${put} / ${get}`);
          ops += 2;
        }
      }),
    );
    agent.destroy();
    return ops / seconds;
  }

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const off: number[] = [];
  const on: number[] = [];
  await round(); // warm-up
  for (let r = 0; r < 2; r++) {
    await authChanges([{ op: 'disable' }]);
    off.push(await round());
    await authChanges([{ op: 'enable' }]);
    on.push(await round());
  }
  await node.stop();
  rmSync(dir, { recursive: true, force: true });
  return { seconds, concurrency, off, on, ratio: mean(on) / mean(off) };
}

export function renderAuthCost(c: AuthCost): string {
  return [
    `Client authorization (one TLS node, ${c.concurrency} clients, PUT + linearizable GET, rounds of ${c.seconds} s):`,
    `  off: ${c.off.map((x) => x.toFixed(0)).join(', ')} ops/s`,
    `  on:  ${c.on.map((x) => x.toFixed(0)).join(', ')} ops/s (a user with 51 roles)`,
    `  ratio on/off (means): ${c.ratio.toFixed(3)} (target ≥ 0.9)`,
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { values } = parseArgs({
    options: { seconds: { type: 'string', default: '5' }, concurrency: { type: 'string', default: '16' } },
  });
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  if (!(seconds > 0)) throw new Error(`--seconds must be positive, got ${values.seconds}`);
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new Error(`--concurrency must be a positive integer, got ${values.concurrency}`);
  console.log(renderAuthCost(await runClientAuthBench(seconds, concurrency)));
}
