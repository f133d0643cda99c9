// A cluster with TLS everywhere, as in production: HTTPS on the client API (and between a
// follower and the leader when it forwards) and mutual TLS between peers. A peer whose
// certificate comes from another CA is never let into the cluster.

import { rmSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../node/config.js';
import { type RunningNode, startNode } from '../node/server.js';
import { skipUnless } from './cluster/require.js';
import { type InProcessCluster, startInProcess } from './support/in-process-cluster.js';
import { hasOpenssl, makePki, type Pki } from './support/openssl-pki.js';
import { freePort, sleep } from './support/process-cluster.js';

function https(
  url: string,
  pki: Pki,
  method = 'GET',
  body?: string,
  client?: { cert: string | Buffer; key: string | Buffer },
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca: pki.node('client', 'ca1').ca, headers, ...client }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(skipUnless(hasOpenssl(), 'tls-cluster.test.ts', 'needs the openssl CLI'))(
  'a cluster with TLS everywhere',
  () => {
    let pki: Pki;
    let cluster: InProcessCluster;
    let nodes: RunningNode[] = [];
    let stranger: RunningNode | null = null;
    let ports: { api: number; raft: number }[] = [];

    beforeAll(async () => {
      pki = makePki();
      const tlsArgs = (id: string) => {
        pki.node(id, 'ca1');
        const file = (name: string) => join(pki.dir, name);
        return ['--tls-cert', file(`${id}.crt`), '--tls-key', file(`${id}.key`), '--tls-ca', file('ca1.crt')];
      };
      cluster = await startInProcess(['t1', 't2', 't3'], {
        tls: true,
        tickMs: 20,
        dir: pki.dir,
        args: tlsArgs,
      });
      ({ nodes, ports } = cluster);
    }, 60_000);

    afterAll(async () => {
      await stranger?.stop();
      await cluster.stop();
      rmSync(pki.dir, { recursive: true, force: true });
    });

    it('elects a leader over mutual TLS and serves HTTPS, forwarding from followers over HTTPS', async () => {
      const leader = nodes.find((n) => n.raft.metrics().state === 'leader');
      expect(leader).toBeDefined();
      const follower = nodes.find((n) => n !== leader) as RunningNode;
      expect(follower.apiUrl).toMatch(/^https:/);
      const put = await https(`${follower.apiUrl}/v1/kv/secure`, pki, 'PUT', 'yes');
      expect(put.status).toBe(200);
      const get = await https(`${nodes[2]?.apiUrl}/v1/kv/secure`, pki);
      expect(JSON.parse(get.body)).toMatchObject({ key: 'secure', value: 'yes' });
    });

    it('aggregates status and redirects leader-only admin requests to the leader over mutual TLS', async () => {
      const admin = pki.admin('sre');
      const follower = nodes.find((n) => n.raft.metrics().state !== 'leader') as RunningNode;
      const leader = nodes.find((n) => n.raft.metrics().state === 'leader') as RunningNode;
      const status = await https(`${follower.adminUrl}/_cluster/status`, pki, 'GET', undefined, admin);
      expect(JSON.parse(status.body)).toMatchObject({
        healthy: true,
        fault_tolerance: 1,
        nodes: { t1: { is_reachable: true }, t2: { is_reachable: true }, t3: { is_reachable: true } },
      });
      const body = JSON.stringify({ target_node_id: follower.id });
      const path = '/_cluster/leader/transfer';
      const redirected = await https(`${follower.adminUrl}${path}`, pki, 'POST', body, admin);
      expect(redirected.status).toBe(307);
      expect(JSON.parse(redirected.body).error).toMatchObject({ code: 'NOT_LEADER', leader: leader.id });
      const moved = await https(`${leader.adminUrl}${path}`, pki, 'POST', body, admin);
      expect([moved.status, JSON.parse(moved.body).leader_id]).toEqual([200, follower.id]);
      // A member's certificate never acts on /_cluster, whatever headers it sends.
      const member = pki.node('t9', 'ca1');
      const direct = await https(`${follower.adminUrl}${path}`, pki, 'POST', '{}', member, {
        'x-conflux-forwarded-by': 't1',
      });
      expect([direct.status, JSON.parse(direct.body).error.code]).toEqual([403, 'FORBIDDEN']);
    });

    it('a node with a certificate from another CA cannot join the peers', async () => {
      pki.node('rogue', 'ca2');
      const api = await freePort();
      const raft = await freePort();
      const leader = nodes.find((n) => n.raft.metrics().state === 'leader') as RunningNode;
      const term = leader.raft.metrics().currentTerm;
      // It claims to be t3 at a new address and campaigns: no peer may even read its messages.
      const real = ports.map((p, i) => `t${i + 1}=127.0.0.1:${p.raft}/127.0.0.1:${p.api}`).slice(0, 2);
      const initial = [...real, `t3=127.0.0.1:${raft}/127.0.0.1:${api}`].join(',');
      const args = [
        '--admin-addr',
        '127.0.0.1:0',
        '--node-id',
        't3',
        '--data-dir',
        join(pki.dir, 'rogue'),
        '--api-addr',
        `127.0.0.1:${api}`,
        '--raft-addr',
        `127.0.0.1:${raft}`,
      ];
      args.push(
        '--initial-cluster',
        initial,
        '--tls-cert',
        join(pki.dir, 'rogue.crt'),
        '--tls-key',
        join(pki.dir, 'rogue.key'),
        '--tls-ca',
        join(pki.dir, 'ca2.crt'),
      );
      stranger = await startNode(loadConfig(args, {}), pino({ level: 'silent' }));
      await sleep(1_000);
      // Its dials are refused at the handshake: no peer ever answers it, and the cluster is untouched.
      const peers = stranger.transport.stats().peers;
      expect([peers.t1?.connected, peers.t2?.connected]).toEqual([false, false]);
      expect(stranger.raft.metrics().currentLeader).toBeNull();
      expect(leader.raft.metrics()).toMatchObject({ state: 'leader', currentTerm: term });
    });
  },
);
