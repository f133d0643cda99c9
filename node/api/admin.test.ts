// The cluster-operations API: who may call it (mutual TLS with roles, every refusal a catalogued
// 401/403) and the leader endpoints on a three-node cluster.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessCluster, startInProcess } from '../../e2e/support/in-process-cluster.js';
import { freePort } from '../../e2e/support/process-cluster.js';
import {
  type CertKeyPair,
  generateAdminCert,
  generateCa,
  generateClientCert,
  generateNodeCert,
} from '../certs/index.js';
import { loadConfig } from '../config.js';
import { type RunningNode, startNode } from '../server.js';

const quiet = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function call(
  url: string,
  ca: string,
  client?: CertKeyPair,
): Promise<{ status: number; body: { error?: { code: string } } & Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const tls = client ? { cert: client.certPem, key: client.keyPem } : {};
    const req = request(url, { ca, ...tls }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admin API authentication (mutual TLS)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-admin-'));
  let node: RunningNode;
  let ca: CertKeyPair;
  const certs: Record<string, CertKeyPair> = {};

  beforeAll(async () => {
    ca = await generateCa({ commonName: 'cluster-ca', validDays: 1 });
    const other = await generateCa({ commonName: 'other-ca', validDays: 1 });
    const server = await generateNodeCert(ca, {
      nodeId: 'solo',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      validDays: 1,
    });
    certs.admin = await generateAdminCert(ca, { commonName: 'sre', validDays: 1 });
    certs.stranger = await generateAdminCert(other, { commonName: 'sre', validDays: 1 });
    certs.expired = await generateAdminCert(ca, {
      commonName: 'old',
      validDays: 1,
      notBefore: new Date(Date.now() - 3 * 86_400_000),
    });
    certs.client = await generateClientCert(ca, { commonName: 'app', validDays: 1 });
    certs.peer = await generateNodeCert(ca, {
      nodeId: 'peer',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      validDays: 1,
    });
    for (const [name, pem] of [
      ['ca.crt', ca.certPem],
      ['solo.crt', server.certPem],
      ['solo.key', server.keyPem],
    ] as const) {
      writeFileSync(join(dir, name), pem);
    }
    const [api, raft, admin] = [await freePort(), await freePort(), await freePort()];
    const args = [
      '--node-id',
      'solo',
      '--data-dir',
      join(dir, 'data'),
      '--api-addr',
      `127.0.0.1:${api}`,
      '--raft-addr',
      `127.0.0.1:${raft}`,
    ];
    args.push(
      '--admin-addr',
      `127.0.0.1:${admin}`,
      '--initial-cluster',
      `solo=127.0.0.1:${raft}/127.0.0.1:${api}`,
      '--tick-ms',
      '10',
    );
    args.push(
      '--tls-cert',
      join(dir, 'solo.crt'),
      '--tls-key',
      join(dir, 'solo.key'),
      '--tls-ca',
      join(dir, 'ca.crt'),
    );
    node = await startNode(loadConfig(args, {}), quiet);
    for (let i = 0; i < 200 && node.raft.metrics().state !== 'leader'; i++) await sleep(10);
  });
  afterAll(async () => {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const leader = (client?: CertKeyPair) => call(`${node.adminUrl}/_cluster/leader`, ca.certPem, client);

  it('answers an admin certificate of the cluster CA', async () => {
    expect(await leader(certs.admin)).toMatchObject({ status: 200, body: { leader_id: 'solo' } });
  });

  it.each([
    ['no certificate', undefined, 401, 'UNAUTHENTICATED'],
    ['a certificate from another CA', 'stranger', 401, 'UNAUTHENTICATED'],
    ['an expired certificate', 'expired', 401, 'UNAUTHENTICATED'],
    ['a certificate without the admin role', 'client', 403, 'FORBIDDEN'],
    ['a member node certificate on /_cluster', 'peer', 403, 'FORBIDDEN'],
  ])('refuses %s', async (_what, name, status, code) => {
    const res = await leader(name ? certs[name] : undefined);
    expect([res.status, res.body.error?.code]).toEqual([status, code]);
  });

  it('lets member nodes read /_internal/status, but not clients', async () => {
    expect((await call(`${node.adminUrl}/_internal/status`, ca.certPem, certs.peer)).status).toBe(200);
    expect((await call(`${node.adminUrl}/_internal/status`, ca.certPem, certs.client)).status).toBe(403);
  });
});

describe('leader endpoints', () => {
  let cluster: InProcessCluster;
  let nodes: RunningNode[];
  beforeAll(async () => {
    cluster = await startInProcess(['a', 'b', 'c']);
    nodes = cluster.nodes;
  });
  afterAll(async () => cluster.stop());

  const current = () => nodes.find((n) => n.raft.metrics().state === 'leader') as RunningNode;
  const transfer = (n: RunningNode, body?: unknown) =>
    fetch(`${n.adminUrl}/_cluster/leader/transfer`, {
      method: 'POST',
      ...(body ? { body: JSON.stringify(body) } : {}),
    });

  it('names the leader with its addresses from any node', async () => {
    const leader = current();
    for (const n of nodes) {
      const res = await fetch(`${n.adminUrl}/_cluster/leader`);
      expect(await res.json()).toMatchObject({
        leader_id: leader.id,
        term: leader.raft.metrics().currentTerm,
        api_address: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      });
    }
  });

  it('transfers leadership to the named voter and answers with the new leader', async () => {
    const from = current();
    const to = nodes.find((n) => n !== from) as RunningNode;
    const res = await transfer(from, { target_node_id: to.id });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ leader_id: to.id });
  });

  it('without a target picks the most up-to-date other voter', async () => {
    const from = current();
    const res = await transfer(from);
    const body = (await res.json()) as { leader_id: string };
    expect(res.status).toBe(200);
    expect(body.leader_id).not.toBe(from.id);
  });

  it('hands a transfer asked of a follower to the leader', async () => {
    const leader = current();
    const follower = nodes.find((n) => n !== leader) as RunningNode;
    const res = await transfer(follower, { target_node_id: follower.id });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ leader_id: follower.id });
  });

  it('refuses an unknown target and a malformed body, changing nothing', async () => {
    const leader = current();
    const term = leader.raft.metrics().currentTerm;
    const unknown = await transfer(leader, { target_node_id: 'zz' });
    expect([unknown.status, ((await unknown.json()) as { error: { code: string } }).error.code]).toEqual([
      400,
      'INVALID_TRANSFER_TARGET',
    ]);
    const bad = await fetch(`${leader.adminUrl}/_cluster/leader/transfer`, {
      method: 'POST',
      body: '{"target_node_id": 5}',
    });
    expect([bad.status, ((await bad.json()) as { error: { code: string } }).error.code]).toEqual([
      400,
      'INVALID_REQUEST',
    ]);
    expect(leader.raft.metrics()).toMatchObject({ state: 'leader', currentTerm: term });
  });
});
