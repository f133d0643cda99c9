// A member that missed the entry adding a node must still follow that node once it leads. Real
// `conflux-node` processes, in dev mode and with mutual TLS (one node certificate for every
// member, as the operator issues): voters a, b, c; one follower is paused (SIGSTOP) while d is
// added (the admin API's add flow: learner, then voter) and leadership moves to d; it resumes
// knowing only a, b and c, and must still apply what d commits, within seconds. Once removed, its
// id is refused by the peer port for good.

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CertKeyPair, generateAdminCert, generateCa, generateNodeCert } from '../node/certs/generate.js';
import { DEFAULT_CONFIG } from '../node/raft/raft.js';
import { hello, rawPeer } from '../node/transport/test-support.js';
import { eventually, freePort } from './support/process-cluster.js';

const REPO = resolve(import.meta.dirname, '..');
/** Appends a leader keeps in flight to one follower (DEFAULT_CONFIG.maxInflight). */
const MAX_INFLIGHT = DEFAULT_CONFIG.maxInflight;

interface Proc {
  id: string;
  api: number;
  raft: number;
  admin: number;
  proc: ChildProcess | null;
  exit: Promise<unknown> | null;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  text: string;
  location: string | undefined;
}

for (const mode of ['dev', 'tls'] as const) {
  describe(`a member that missed a node's addition follows it as leader (${mode === 'tls' ? 'mutual TLS' : 'dev mode'})`, () => {
    const dir = mkdtempSync(join(tmpdir(), `conflux-lagging-${mode}-`));
    const procs = new Map<string, Proc>();
    let ca: CertKeyPair;
    let admin: CertKeyPair;

    const member = (id: string) => procs.get(id) as Proc;

    /** One JSON call (client API or admin API), with the admin certificate under TLS. */
    const call = (port: number, path: string, method = 'GET', body?: string): Promise<Answer> =>
      new Promise((ok, fail) => {
        const send = mode === 'tls' ? httpsRequest : httpRequest;
        const tls = mode === 'tls' ? { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem } : {};
        const req = send({ host: '127.0.0.1', port, path, method, timeout: 10_000, ...tls }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => {
            let parsed: Record<string, unknown> = {};
            try {
              parsed = JSON.parse(text);
            } catch {
              // not JSON
            }
            ok({ status: res.statusCode ?? 0, body: parsed, text, location: res.headers.location });
          });
        });
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', fail);
        req.end(body);
      });
    const api = (id: string, path: string, method?: string, body?: string) =>
      call(member(id).api, path, method, body);
    const adminApi = (id: string, path: string, method?: string, body?: string) =>
      call(member(id).admin, path, method, body);
    /** What one member serves for `key` from its own state. */
    const localValue = async (id: string, key: string) => {
      const res = await api(id, `/v1/kv/${key}?consistency=serializable`);
      return res.status === 200 ? (res.body.value as string) : null;
    };
    const leaderOf = (ids: string[]) =>
      eventually(
        'a leader',
        async () => {
          for (const id of ids) {
            const res = await api(id, '/readyz');
            if (res.status === 200 && res.body.state === 'leader') return id;
          }
          return undefined;
        },
        60_000,
      );

    function start(id: string, formation: string[]): void {
      const m = member(id);
      const args = ['--import', 'tsx', 'node/main.ts', '--node-id', id, '--data-dir', join(dir, id)];
      args.push('--api-addr', `127.0.0.1:${m.api}`, '--raft-addr', `127.0.0.1:${m.raft}`);
      args.push('--admin-addr', `127.0.0.1:${m.admin}`, '--tick-ms', '20', '--catch-up-stable-ms', '300');
      if (mode === 'dev') args.push('--dev-insecure');
      else args.push('--tls-cert', join(dir, 'node.crt'), '--tls-key', join(dir, 'node.key'));
      if (mode === 'tls') args.push('--tls-ca', join(dir, 'ca.crt'));
      args.push(...formation);
      const proc = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
      const log = createWriteStream(join(dir, `${id}.log`), { flags: 'a' });
      proc.stdout?.pipe(log);
      proc.stderr?.pipe(log);
      m.proc = proc;
      m.exit = new Promise((done) => proc.once('exit', done));
    }

    beforeAll(async () => {
      if (mode === 'tls') {
        // The operator's way: one node certificate for every member, naming the peer host.
        ca = await generateCa({ commonName: 'conflux-ca', validDays: 1 });
        admin = await generateAdminCert(ca, { commonName: 'sre', validDays: 1 });
        const node = await generateNodeCert(ca, {
          nodeId: 'lagging',
          dnsNames: ['localhost'],
          ipAddresses: ['127.0.0.1'],
          validDays: 1,
        });
        writeFileSync(join(dir, 'ca.crt'), ca.certPem);
        writeFileSync(join(dir, 'node.crt'), node.certPem);
        writeFileSync(join(dir, 'node.key'), node.keyPem, { mode: 0o600 });
      }
      for (const id of ['a', 'b', 'c', 'd'])
        procs.set(id, {
          id,
          api: await freePort(),
          raft: await freePort(),
          admin: await freePort(),
          proc: null,
          exit: null,
        });
      const initial = ['a', 'b', 'c']
        .map(member)
        .map((m) => `${m.id}=127.0.0.1:${m.raft}/127.0.0.1:${m.api}/127.0.0.1:${m.admin}`)
        .join(',');
      for (const id of ['a', 'b', 'c']) start(id, ['--initial-cluster', initial]);
      await leaderOf(['a', 'b', 'c']);
    }, 120_000);

    afterAll(async () => {
      for (const m of procs.values()) {
        m.proc?.kill('SIGCONT');
        m.proc?.kill('SIGTERM');
      }
      await Promise.all([...procs.values()].map((m) => m.exit));
      if (!process.env.CONFLUX_KEEP_E2E) rmSync(dir, { recursive: true, force: true });
    });

    it('catches up from a leader it never heard of, within seconds', async () => {
      const first = await leaderOf(['a', 'b', 'c']);
      expect((await api(first, '/v1/kv/before', 'PUT', 'x')).status).toBe(200);
      // The lagging member: a follower, paused before d exists.
      const lagging = ['a', 'b', 'c'].find((id) => id !== first) as string;
      await eventually(`${lagging} applies the first write`, async () =>
        (await localValue(lagging, 'before')) === 'x' ? true : undefined,
      );
      member(lagging).proc?.kill('SIGSTOP');
      // A paused process still receives into its socket buffers, where a partition would lose
      // what is sent. The leader stops sending to a member that acknowledges nothing once its
      // window of appends is full: fill it, so the entries adding d never reach the paused member.
      for (let i = 0; i < MAX_INFLIGHT + 50; i++)
        expect((await api(first, `/v1/kv/fill-${i}`, 'PUT', 'f')).status).toBe(200);

      start('d', []);
      const d = member('d');
      const addresses = {
        node_id: 'd',
        api_address: `127.0.0.1:${d.api}`,
        raft_address: `127.0.0.1:${d.raft}`,
        admin_address: `127.0.0.1:${d.admin}`,
      };
      const add = await eventually('the add accepted', async () => {
        const res = await adminApi(first, '/_cluster/nodes', 'POST', JSON.stringify(addresses));
        return res.status === 202 ? res : undefined;
      });
      await eventually(
        'd a voter',
        async () => {
          const op = (await adminApi(first, add.location as string)).body;
          if (op.state === 'failed') throw new Error(`add failed: ${JSON.stringify(op.error)}`);
          return op.state === 'succeeded' ? true : undefined;
        },
        60_000,
      );
      const moved = await adminApi(first, '/_cluster/leader/transfer', 'POST', '{"target_node_id":"d"}');
      expect([moved.status, moved.body.leader_id]).toEqual([200, 'd']);
      expect((await api('d', '/v1/kv/while-paused', 'PUT', 'y')).status).toBe(200);

      member(lagging).proc?.kill('SIGCONT');
      expect((await api('d', '/v1/kv/after', 'PUT', 'z')).status).toBe(200);
      await eventually(
        `${lagging} applies what d committed`,
        async () => ((await localValue(lagging, 'after')) === 'z' ? true : undefined),
        10_000,
      );
      expect(await localValue(lagging, 'while-paused')).toBe('y');
      const status = await eventually('the cluster status shows the member caught up', async () => {
        const res = await adminApi('d', '/_cluster/status');
        const nodes = res.body.nodes as Record<string, { lag: number | null; is_reachable: boolean }>;
        const view = nodes?.[lagging];
        return view?.is_reachable && view.lag !== null && view.lag <= 2 ? res.body : undefined;
      });
      expect(status.leader_id).toBe('d');
      expect(status.fault_tolerance).toBe(1); // four voters, all in step: one may fail
    }, 180_000);

    it('refuses a removed member’s id for good, whatever it presents', async () => {
      const victim = ['a', 'b', 'c'].find((id) => id !== 'd' && member(id).proc) as string;
      const removal = await adminApi('d', `/_cluster/nodes/${victim}`, 'DELETE');
      expect(removal.status).toBe(202);
      await eventually('the removal done', async () => {
        const op = (await adminApi('d', removal.location as string)).body;
        if (op.state === 'failed') throw new Error(`removal failed: ${JSON.stringify(op.error)}`);
        return op.state === 'succeeded' ? true : undefined;
      });
      const v = member(victim);
      v.proc?.kill('SIGTERM');
      await v.exit;
      v.proc = null;
      const clusterId = (await adminApi('d', '/_internal/status')).body.cluster_id as string;
      const refusals = async () => {
        const line = (await api('d', '/metrics')).text
          .split('\n')
          .find((l) => l.startsWith('conflux_peer_protocol_errors_total{reason="not-a-member"}'));
        return line ? Number(line.split(' ').at(-1)) : 0;
      };
      const before = await refusals();
      const material =
        mode === 'tls'
          ? {
              cert: readFileSync(join(dir, 'node.crt')),
              key: readFileSync(join(dir, 'node.key')),
              ca: ca.certPem,
            }
          : undefined;
      const peer = await rawPeer(`127.0.0.1:${member('d').raft}`, material);
      peer.send(hello(victim, clusterId, `127.0.0.1:${v.raft}`), {
        type: 'heartbeat',
        from: victim,
        to: 'd',
        term: 1,
        commit: 0,
        readSeq: 0,
      });
      await peer.closed;
      expect(await refusals()).toBe(before + 1);
    }, 60_000);
  });
}
