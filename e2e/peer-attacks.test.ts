// Forged peer frames against real `conflux-node` processes. An attacker who can reach a peer port
// (any local process in dev mode; anyone with a certificate of the cluster CA under TLS) writes
// frames by hand: a heartbeat from a made-up node at the leader's term (read from a client
// response header), an append planting a value on one follower, an append whose index skips
// ahead, an acknowledgement of entries the leader never had, frames without a hello, or under
// another id than the hello's, and, with TLS, client, admin and misnamed node certificates. None may stop a node, change what any member applies, or
// keep a follower from restarting; each is counted in conflux_peer_protocol_errors_total.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InternalStatus, internalStatusSchema } from '../node/api/admin-contract.js';
import {
  type CertKeyPair,
  generateAdminCert,
  generateCa,
  generateClientCert,
  generateNodeCert,
} from '../node/certs/generate.js';
import { encodeCommand } from '../node/kv/commands.js';
import type { Message } from '../node/raft/types.js';
import { hello, type RawPeer, rawPeer } from '../node/transport/test-support.js';
import { call, eventually, ProcessCluster, sleep } from './support/process-cluster.js';
import { startTlsMembers, type TlsMember } from './support/tls-member.js';

const text = (s: string) => new TextEncoder().encode(s);

/**
 * Writes `frames` on a fresh connection and expects the node to hang up on it (a TLS refusal may
 * already end the connection during the handshake).
 */
async function refused(dialled: Promise<RawPeer>, ...frames: unknown[]): Promise<void> {
  let peer: RawPeer;
  try {
    peer = await dialled;
  } catch {
    return;
  }
  peer.send(...frames);
  const timeout = sleep(5_000).then(() => 'open');
  expect(await Promise.race([peer.closed.then(() => 'closed'), timeout])).toBe('closed');
  peer.destroy();
}

/** conflux_peer_protocol_errors_total{reason} in a /metrics text (0 when absent). */
function protocolErrors(metrics: string, reason: string): number {
  const line = metrics
    .split('\n')
    .find((l) => l.startsWith(`conflux_peer_protocol_errors_total{reason="${reason}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('forged peer frames against a dev-mode cluster of real processes', () => {
  let cluster: ProcessCluster;
  let clusterId: string;

  const internal = async (id: string): Promise<InternalStatus> =>
    internalStatusSchema.parse((await call(`${cluster.adminUrl(id)}/_internal/status`)).body);
  const metrics = async (id: string) => (await fetch(`${cluster.url(id)}/metrics`)).text();
  const dial = (id: string) => rawPeer(`127.0.0.1:${cluster.member(id).raftPort}`);
  const put = (id: string, key: string, value: string) =>
    call(`${cluster.url(id)}/v1/kv/${key}`, 'PUT', value);
  /** What one member serves for `key` from its own state (null: not found). */
  const localValue = async (id: string, key: string) => {
    const res = await call(`${cluster.url(id)}/v1/kv/${key}?consistency=serializable`);
    return res.status === 404 ? null : (res.body as { value?: string }).value;
  };

  /**
   * Quiet and in step: every member follows one leader and holds the same log, so the next
   * entry the leader appends lands at the index after every follower's last. The leader's term
   * is taken the way an attacker gets it: from a client response header.
   */
  async function settled() {
    const leader = await cluster.leader();
    const followers = cluster.members.map((m) => m.id).filter((id) => id !== leader);
    const res = await fetch(`${cluster.url(leader)}/v1/kv/probe`, { method: 'PUT', body: 'x' });
    const term = Number(res.headers.get('x-conflux-term'));
    await eventually('members in step', async () => {
      const all = await Promise.all(cluster.members.map((m) => internal(m.id)));
      const same = all.every(
        (s) =>
          s.leader_id === leader && s.log_index === all[0]?.log_index && s.last_applied_log === s.log_index,
      );
      return same ? true : undefined;
    });
    return { leader, followers: followers as [string, string], term };
  }

  /** The leader still leads in the same term, is ready, and takes writes every member applies. */
  async function leaderServes(leader: string, term: number, key: string): Promise<void> {
    const s = await internal(leader);
    expect([s.status, s.current_term]).toEqual(['Leader', term]);
    expect((await fetch(`${cluster.url(leader)}/readyz`)).status).toBe(200);
    expect((await put(leader, key, 'ok')).status).toBe(200);
    for (const m of cluster.members)
      await eventually(`${m.id} applies ${key}`, async () =>
        (await localValue(m.id, key)) === 'ok' ? true : undefined,
      );
  }

  beforeAll(async () => {
    cluster = await ProcessCluster.create(3);
    await cluster.start();
    clusterId = (await internal(await cluster.leader())).cluster_id ?? '';
    expect(clusterId).not.toBe('');
  }, 60_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('a heartbeat at the leader’s current term from a made-up node, or under a follower’s id, does not stop the leader', async () => {
    const { leader, followers, term } = await settled();
    const forged = (from: string): Message => ({
      type: 'heartbeat',
      from,
      to: leader,
      term,
      commit: 0,
      readSeq: 0,
    });
    // A node id not known yet is admitted (a member that missed a node's addition must follow it
    // when it leads), and dev mode authenticates nobody: a follower's id can be claimed too. Either
    // way a second leader in the leader's own term is refused as impossible instead of stopping it.
    await refused(dial(leader), hello('n9', clusterId), forged('n9'));
    await refused(dial(leader), hello(followers[0], clusterId), forged(followers[0]));
    await leaderServes(leader, term, 'after-forged-heartbeat');
    const text = await metrics(leader);
    expect(protocolErrors(text, 'conflicting-leader')).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('an append planting a value on one follower is refused, and every member applies the real entry', async () => {
    const { leader, followers, term } = await settled();
    const [victim, other] = followers;
    const s = await internal(victim);
    const plant = (from: string): Message => ({
      type: 'append',
      from,
      to: victim,
      term,
      prevIndex: s.log_index,
      prevTerm: s.last_log_term ?? 0,
      entries: [
        {
          type: 'normal',
          index: s.log_index + 1,
          term,
          data: encodeCommand({ type: 'put', key: 'planted', value: text('evil') }),
        },
      ],
      commit: s.log_index + 1,
    });
    await refused(dial(victim), hello('n9', clusterId), plant('n9'));
    await refused(dial(victim), hello(other, clusterId), plant(other));
    // The leader's next entry takes exactly the index the forgery aimed at.
    expect((await put(leader, 'real', 'value')).status).toBe(200);
    for (const m of cluster.members) {
      await eventually(`${m.id} applies the real entry`, async () =>
        (await localValue(m.id, 'real')) === 'value' ? true : undefined,
      );
      expect(await localValue(m.id, 'planted')).toBeNull();
    }
    expect((await internal(leader)).current_term).toBe(term);
    expect(protocolErrors(await metrics(victim), 'conflicting-leader')).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('an append whose index skips ahead is refused; the follower keeps applying and restarts', async () => {
    const { leader, followers, term } = await settled();
    const victim = followers[0];
    const s = await internal(victim);
    const gap = (from: string): Message => ({
      type: 'append',
      from,
      to: victim,
      term,
      prevIndex: s.log_index,
      prevTerm: s.last_log_term ?? 0,
      entries: [
        {
          type: 'normal',
          index: s.log_index + 1001,
          term,
          data: encodeCommand({ type: 'put', key: 'gap', value: text('evil') }),
        },
      ],
      commit: 0,
    });
    // Under the leader's own id (dev mode cannot tell), so only the structural check stands in the way.
    await refused(dial(victim), hello(leader, clusterId), gap(leader));
    expect(protocolErrors(await metrics(victim), 'invalid-message')).toBeGreaterThanOrEqual(1);
    expect((await put(leader, 'after-gap', 'ok')).status).toBe(200);
    await eventually('the follower applies on', async () =>
      (await localValue(victim, 'after-gap')) === 'ok' ? true : undefined,
    );

    await cluster.kill(victim);
    cluster.spawn(victim);
    await cluster.waitReady(victim);
    expect(cluster.member(victim).proc?.exitCode).toBeNull();
    expect(await localValue(victim, 'after-gap')).toBe('ok');
    expect(await localValue(victim, 'gap')).toBeNull();
    await leaderServes(leader, term, 'after-restart');
  }, 90_000);

  it('an acknowledgement of entries the leader never had does not stop it', async () => {
    const { leader, followers, term } = await settled();
    const s = await internal(leader);
    const ack: Message = {
      type: 'append-response',
      from: followers[0],
      to: leader,
      term,
      index: s.log_index + 1000,
      reject: false,
      hintIndex: 0,
      hintTerm: 0,
    };
    await refused(dial(leader), hello(followers[0], clusterId), ack);
    expect(protocolErrors(await metrics(leader), 'ack-beyond-log')).toBe(1);
    await leaderServes(leader, term, 'after-forged-ack');
  }, 60_000);

  it('a connection whose first frame is not a hello is closed before anything reaches the engine', async () => {
    const { leader, followers, term } = await settled();
    const forged: Message = {
      type: 'heartbeat',
      from: followers[0],
      to: leader,
      term,
      commit: 0,
      readSeq: 0,
    };
    await refused(dial(leader), forged);
    await refused(dial(leader), { type: 'ping' }, hello(followers[0], clusterId), forged);
    expect(protocolErrors(await metrics(leader), 'no-hello')).toBeGreaterThanOrEqual(2);
    await leaderServes(leader, term, 'after-no-hello');
  }, 60_000);

  it('a message whose `from` is not the id of the hello is dropped with its connection', async () => {
    const { leader, followers, term } = await settled();
    const forged: Message = { type: 'heartbeat', from: 'n9', to: leader, term, commit: 0, readSeq: 0 };
    await refused(dial(leader), hello(followers[0], clusterId), forged);
    expect(protocolErrors(await metrics(leader), 'from-mismatch')).toBe(1);
    await leaderServes(leader, term, 'after-from-mismatch');
  }, 60_000);
});

// -- TLS ------------------------------------------------------------------------------------------

describe('forged peer frames against a cluster of real processes with mutual TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-peer-attacks-tls-'));
  const members: TlsMember[] = [];
  let ca: CertKeyPair;
  let client: CertKeyPair;

  const https = (
    url: string,
    method = 'GET',
    body?: string,
    as: CertKeyPair = client,
  ): Promise<{ status: number; body: string; term: number }> =>
    new Promise((ok, fail) => {
      const req = request(
        url,
        { method, ca: ca.certPem, cert: as.certPem, key: as.keyPem, timeout: 10_000 },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () =>
            ok({ status: res.statusCode ?? 0, body: text, term: Number(res.headers['x-conflux-term']) }),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', fail);
      req.end(body);
    });
  const apiUrl = (m: TlsMember) => `https://127.0.0.1:${m.api}`;

  async function readyz(m: TlsMember): Promise<{ state: string; leader: string | null; term: number }> {
    const res = await https(`${apiUrl(m)}/readyz`);
    if (res.status !== 200) throw new Error(`${m.id} not ready`);
    return JSON.parse(res.body);
  }

  async function leaderOf(): Promise<TlsMember> {
    return eventually('a leader everyone follows', async () => {
      const views = await Promise.all(members.map(readyz));
      const leader = members.find((_m, i) => views[i]?.state === 'leader');
      return leader && views.every((v) => v.leader === leader.id) ? leader : undefined;
    });
  }

  beforeAll(async () => {
    ca = await generateCa({ commonName: 'conflux-ca', validDays: 1 });
    client = await generateClientCert(ca, { commonName: 'app', validDays: 1 });
    writeFileSync(join(dir, 'ca.crt'), ca.certPem);
    members.push(...(await startTlsMembers(ca, dir, ['t1', 't2', 't3'])));
    await leaderOf();
  }, 60_000);

  afterAll(async () => {
    for (const m of members) m.proc?.kill('SIGTERM');
    await Promise.all(members.map((m) => m.exit));
    if (!process.env.CONFLUX_KEEP_E2E) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses client and admin certificates, node certificates naming another node, and forgeries under new ids', async () => {
    const leader = await leaderOf();
    const follower = members.find((m) => m !== leader) as TlsMember;
    const { term } = await https(`${apiUrl(leader)}/v1/kv/probe`, 'PUT', 'x');
    expect(term).toBeGreaterThan(0);
    const heartbeat = (from: string): Message => ({
      type: 'heartbeat',
      from,
      to: leader.id,
      term,
      commit: 0,
      readSeq: 0,
    });
    const admin = await generateAdminCert(ca, { commonName: follower.id, validDays: 1 });
    const status = await https(`https://127.0.0.1:${leader.admin}/_internal/status`, 'GET', undefined, admin);
    const clusterId = internalStatusSchema.parse(JSON.parse(status.body)).cluster_id;
    const material = (pair: CertKeyPair) => ({ cert: pair.certPem, key: pair.keyPem, ca: ca.certPem });
    const dial = (pair: CertKeyPair) => rawPeer(`127.0.0.1:${leader.raft}`, material(pair));

    // An ordinary client certificate, then an admin one: refused at the handshake.
    await refused(dial(client), hello('n9', clusterId), heartbeat('n9'));
    await refused(dial(admin), hello(follower.id, clusterId), heartbeat(follower.id));
    // A node certificate of this CA that names neither the claimed member nor its address.
    const intruder = await generateNodeCert(ca, {
      nodeId: 'intruder',
      dnsNames: ['intruder'],
      ipAddresses: [],
      validDays: 1,
    });
    await refused(dial(intruder), hello(follower.id, clusterId), heartbeat(follower.id));
    // A genuine node certificate claiming a node not known yet: admitted (it could be a node added
    // while this one lagged), but its heartbeat in the leader's term is refused as impossible.
    const stolen = await generateNodeCert(ca, {
      nodeId: 't9',
      dnsNames: ['t9'],
      ipAddresses: ['127.0.0.1'],
      validDays: 1,
    });
    await refused(dial(stolen), hello('t9', clusterId), heartbeat('t9'));

    const after = await readyz(leader);
    expect([after.state, after.term]).toEqual(['leader', term]);
    expect((await https(`${apiUrl(follower)}/v1/kv/after-tls-attacks`, 'PUT', 'ok')).status).toBe(200);
    for (const m of members) {
      await eventually(`${m.id} applies`, async () => {
        const res = await https(`${apiUrl(m)}/v1/kv/after-tls-attacks?consistency=serializable`);
        return res.status === 200 && JSON.parse(res.body).value === 'ok' ? true : undefined;
      });
    }
    const text = (await https(`${apiUrl(leader)}/metrics`)).body;
    expect(protocolErrors(text, 'certificate')).toBeGreaterThanOrEqual(2);
    expect(protocolErrors(text, 'identity')).toBeGreaterThanOrEqual(1);
    expect(protocolErrors(text, 'conflicting-leader')).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
