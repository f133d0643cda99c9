// Users and roles on the client API, against real node processes with TLS everywhere: nothing
// changes until authorization is enabled; then every request is checked on the node that receives
// it (a follower's forwarding to the leader is trusted only from its node certificate, never from
// a header), and the users and roles survive a restart of every member and reach a new member by
// snapshot install.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CertKeyPair, generateAdminCert, generateCa, generateClientCert } from '../node/certs/index.js';
import { conflux } from './support/cli-run.js';
import { eventually, freePort } from './support/process-cluster.js';
import { spawnTlsMember, writeNodeCert } from './support/tls-member.js';

interface Member {
  id: string;
  api: number;
  raft: number;
  admin: number;
  formation: string[];
  proc: ChildProcess | null;
  exit: Promise<unknown> | null;
}

type Answer = {
  status: number;
  body: string;
  json: () => Record<string, unknown> & { error?: { code: string } };
};

describe('client authorization with users and roles, over TLS, on real processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-client-auth-'));
  const members: Member[] = [];
  let ca: CertKeyPair;
  const as: Record<string, CertKeyPair | undefined> = {};

  const https = (url: string, method = 'GET', body?: string, who?: CertKeyPair, headers = {}) =>
    new Promise<Answer>((ok, fail) => {
      const creds = who ? { cert: who.certPem, key: who.keyPem } : {};
      const req = request(url, { method, ca: ca.certPem, timeout: 15_000, headers, ...creds }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => ok({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) }));
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', fail);
      req.end(body);
    });
  const api = (m: Member, path: string) => `https://127.0.0.1:${m.api}${path}`;
  const admin = (m: Member, path: string) => `https://127.0.0.1:${m.admin}${path}`;
  const authChanges = (m: Member, changes: unknown[]) =>
    https(admin(m, '/_cluster/auth'), 'POST', JSON.stringify({ changes }), as.sre, {
      'content-type': 'application/json',
    });

  async function addMember(id: string): Promise<Member> {
    const m = { id, api: await freePort(), raft: await freePort(), admin: await freePort() };
    await writeNodeCert(ca, dir, id);
    const member: Member = { ...m, formation: [], proc: null, exit: null };
    members.push(member);
    return member;
  }

  function start(m: Member): void {
    Object.assign(m, spawnTlsMember(dir, m, [...m.formation, '--tick-ms', '20', '--snapshot-entries', '20']));
  }

  async function stop(m: Member): Promise<void> {
    m.proc?.kill('SIGTERM');
    await m.exit;
    m.proc = null;
  }

  async function leader(): Promise<Member> {
    return eventually('a leader everyone running follows', async () => {
      const running = members.filter((m) => m.proc);
      const views = await Promise.all(
        running.map((m) =>
          https(api(m, '/readyz'))
            .then((r) => (r.status === 200 ? (r.json() as { state: string; leader: string }) : undefined))
            .catch(() => undefined),
        ),
      );
      const l = running.find((_m, i) => views[i]?.state === 'leader');
      return l && views.every((v) => v?.leader === l.id) ? l : undefined;
    });
  }
  const follower = async () => {
    const l = await leader();
    return members.find((m) => m.proc && m !== l) as Member;
  };

  beforeAll(async () => {
    ca = await generateCa({ commonName: 'conflux-ca', validDays: 1 });
    const other = await generateCa({ commonName: 'other-ca', validDays: 1 });
    writeFileSync(join(dir, 'ca.crt'), ca.certPem);
    as.sre = await generateAdminCert(ca, { commonName: 'sre', validDays: 1 });
    as.ops = await generateClientCert(ca, { commonName: 'ops', validDays: 1 });
    as.alice = await generateClientCert(ca, { commonName: 'alice', validDays: 1 });
    as.mallory = await generateClientCert(ca, { commonName: 'mallory', validDays: 1 });
    // The CN of the root user, from a CA the cluster does not trust.
    as.foreign = await generateClientCert(other, { commonName: 'ops', validDays: 1 });
    for (const id of ['a1', 'a2', 'a3']) await addMember(id);
    const initial = members
      .map((m) => `${m.id}=127.0.0.1:${m.raft}/127.0.0.1:${m.api}/127.0.0.1:${m.admin}`)
      .join(',');
    for (const m of members) {
      m.formation = ['--initial-cluster', initial];
      start(m);
    }
    await leader();
  }, 90_000);

  afterAll(async () => {
    await Promise.all(members.map(stop));
    if (!process.env.CONFLUX_KEEP_E2E) rmSync(dir, { recursive: true, force: true });
  });

  it('changes nothing until it is enabled: anyone reads and writes', async () => {
    const f = await follower();
    expect((await https(api(f, '/v1/kv/app/x'), 'PUT', 'one')).status).toBe(200);
    expect((await https(api(f, '/v1/kv/other/y'), 'PUT', 'two', as.alice)).status).toBe(200);
    expect((await https(api(f, '/v1/kv/app/x'))).json()).toMatchObject({ value: 'one' });
    const status = await https(admin(await leader(), '/_cluster/auth'), 'GET', undefined, as.sre);
    expect(status.json()).toEqual({ enabled: false, users: [], roles: [] });
  }, 30_000);

  it('refuses to enable without a root user, and a bad change, with clear errors (nothing applied)', async () => {
    const l = await leader();
    const noRoot = await authChanges(l, [{ op: 'user-add', user: 'ops' }, { op: 'enable' }]);
    expect([noRoot.status, noRoot.json().error?.code]).toEqual([400, 'INVALID_REQUEST']);
    expect(noRoot.body).toMatch(/root/);
    const bad = await authChanges(l, [{ op: 'user-add', user: 'has space' }]);
    expect([bad.status, bad.json().error?.code]).toEqual([400, 'INVALID_REQUEST']);
    const status = await https(admin(l, '/_cluster/auth'), 'GET', undefined, as.sre);
    expect(status.json()).toMatchObject({ enabled: false, users: [] });
    // A follower redirects, like every leader-only admin call.
    const f = await follower();
    const redirected = await authChanges(f, [{ op: 'user-add', user: 'ops' }]);
    expect(redirected.status).toBe(307);
    // A client certificate is not an admin.
    const notAdmin = await https(admin(l, '/_cluster/auth'), 'GET', undefined, as.ops);
    expect(notAdmin.status).toBe(403);
  }, 30_000);

  it('enables with a root user; a user with read on /app/ reads it and nothing more', async () => {
    const l = await leader();
    const enabled = await authChanges(l, [
      { op: 'user-add', user: 'ops' },
      { op: 'user-grant-role', user: 'ops', role: 'root' },
      { op: 'role-add', role: 'app-reader' },
      { op: 'role-grant', role: 'app-reader', permission: { prefix: '/app/', access: 'read' } },
      { op: 'user-add', user: 'alice' },
      { op: 'user-grant-role', user: 'alice', role: 'app-reader' },
      { op: 'enable' },
    ]);
    expect(enabled.status).toBe(200);
    expect(enabled.json()).toMatchObject({
      enabled: true,
      users: [
        { name: 'alice', roles: ['app-reader'] },
        { name: 'ops', roles: ['root'] },
      ],
    });
    const f = await follower();
    // Keys: '/app/x' below is the key "app/x" under the route; the users' prefixes name keys.
    expect((await https(api(l, '/v1/kv//app/x'), 'PUT', 'v', as.ops)).status).toBe(200);
    expect((await https(api(l, '/v1/kv//other/y'), 'PUT', 'w', as.ops)).status).toBe(200);
    for (const m of [l, f]) {
      const read = await https(api(m, '/v1/kv//app/x'), 'GET', undefined, as.alice); // f forwards
      expect([read.status, read.json().value]).toEqual([200, 'v']);
      const write = await https(api(m, '/v1/kv//app/x'), 'PUT', 'mine', as.alice);
      expect([write.status, write.json().error?.code]).toEqual([403, 'FORBIDDEN']);
      const other = await https(api(m, '/v1/kv//other/y'), 'GET', undefined, as.alice);
      expect([other.status, other.json().error?.code]).toEqual([403, 'FORBIDDEN']);
      const range = await https(api(m, '/v1/kv?prefix=%2Fapp%2F'), 'GET', undefined, as.alice);
      expect(range.status).toBe(200);
      const wide = await https(api(m, '/v1/kv?prefix=%2Fap'), 'GET', undefined, as.alice);
      expect(wide.status).toBe(403);
      const watch = await https(
        api(m, '/v1/watch?prefix=%2Fapp%2F&timeout_ms=0'),
        'GET',
        undefined,
        as.alice,
      );
      expect(watch.status).toBe(200);
      const widerWatch = await https(api(m, '/v1/watch?prefix=%2F&timeout_ms=0'), 'GET', undefined, as.alice);
      expect([widerWatch.status, widerWatch.json().error?.code]).toEqual([403, 'FORBIDDEN']);
      const anonymous = await https(api(m, '/v1/kv//app/x'));
      expect([anonymous.status, anonymous.json().error?.code]).toEqual([401, 'UNAUTHENTICATED']);
      const unknown = await https(api(m, '/v1/kv//app/x'), 'GET', undefined, as.mallory);
      expect(unknown.status).toBe(403);
      const foreign = await https(api(m, '/v1/kv//app/x'), 'GET', undefined, as.foreign);
      expect([foreign.status, foreign.json().error?.code]).toEqual([401, 'UNAUTHENTICATED']);
      // Probes and metrics stay open.
      expect((await https(api(m, '/readyz'))).status).toBe(200);
      expect((await https(api(m, '/metrics'))).status).toBe(200);
    }
    // A transaction touching one forbidden key is refused entirely.
    const txn = {
      compare: [],
      success: [
        { type: 'get', key: '/app/x' },
        { type: 'put', key: '/app/z', value: 'sneaky' },
      ],
      failure: [],
    };
    const refused = await https(api(f, '/v1/txn'), 'POST', JSON.stringify(txn), as.alice, {
      'content-type': 'application/json',
    });
    expect([refused.status, refused.json().error?.code]).toEqual([403, 'FORBIDDEN']);
    expect((await https(api(l, '/v1/kv//app/z'), 'GET', undefined, as.ops)).status).toBe(404);
    // Claiming to be a forwarding member in a header changes nothing: identity is the certificate.
    const forged = await https(api(l, '/v1/kv//app/x'), 'PUT', 'forged', as.alice, {
      'x-conflux-forwarded-by': f.id,
    });
    expect(forged.status).toBe(403);
    expect((await https(api(l, '/v1/kv//app/x'), 'GET', undefined, as.ops)).json()).toMatchObject({
      value: 'v',
    });
  }, 60_000);

  it('keeps the users and roles across a restart of every member', async () => {
    for (const m of members) await stop(m);
    for (const m of members) start(m);
    const l = await leader();
    const status = await https(admin(l, '/_cluster/auth'), 'GET', undefined, as.sre);
    expect(status.json()).toMatchObject({ enabled: true, users: [{ name: 'alice' }, { name: 'ops' }] });
    const f = await follower();
    expect((await https(api(f, '/v1/kv//app/x'), 'PUT', 'again', as.alice)).status).toBe(403);
    expect((await https(api(f, '/v1/kv//app/x'), 'GET', undefined, as.alice)).status).toBe(200);
    expect((await https(api(f, '/v1/kv//app/x'))).status).toBe(401);
  }, 90_000);

  it('is managed with conflux auth, through any member', async () => {
    writeFileSync(join(dir, 'sre.crt'), as.sre?.certPem ?? '');
    writeFileSync(join(dir, 'sre.key'), as.sre?.keyPem ?? '', { mode: 0o600 });
    const f = await follower(); // it redirects to the leader; the CLI follows
    const target = ['--admin', admin(f, ''), '--ca', join(dir, 'ca.crt')];
    target.push('--cert', join(dir, 'sre.crt'), '--key', join(dir, 'sre.key'));
    const added = await conflux(['auth', 'user', 'add', 'bob', ...target]);
    expect([added.code, added.err]).toEqual([0, '']);
    expect(added.out).toMatch(/user bob: \(no roles\)/);
    const granted = await conflux(['auth', 'user', 'grant', 'bob', 'app-reader', ...target]);
    expect(granted.out).toMatch(/user bob: app-reader/);
    const status = await conflux(['auth', 'status', '--json', ...target]);
    expect(JSON.parse(status.out)).toMatchObject({ enabled: true, roles: [{ name: 'app-reader' }] });
    const badAccess = await conflux(['auth', 'role', 'grant', 'app-reader', '/x/', 'all', ...target]);
    expect(badAccess.code).toBe(2);
    expect(badAccess.err).toMatch(/read, write or readwrite/);
    const lockout = await conflux(['auth', 'user', 'revoke', 'ops', 'root', ...target]);
    expect(lockout.code).not.toBe(0);
    expect(lockout.err).toMatch(/root/);
  }, 90_000);

  it('reaches a new member by snapshot install, which then enforces it on its own', async () => {
    const l = await leader();
    // More entries than --snapshot-entries: the log before them is compacted away.
    for (let i = 0; i < 45; i++) {
      expect((await https(api(l, `/v1/kv//app/fill-${i}`), 'PUT', String(i), as.ops)).status).toBe(200);
    }
    // The leader snapshotted (and compacted its log): a new member can only start from a snapshot.
    const snapshots = (await https(api(l, '/metrics'))).body
      .split('\n')
      .filter((line) => line.startsWith('conflux_snapshots_total'))
      .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
    expect(snapshots).toBeGreaterThanOrEqual(1);
    const joiner = await addMember('a4');
    joiner.formation = ['--join', `127.0.0.1:${l.admin}`];
    start(joiner);
    await eventually('a4 holds the data', async () => {
      const r = await https(
        api(joiner, '/v1/kv//app/fill-44?consistency=serializable'),
        'GET',
        undefined,
        as.ops,
      ).catch(() => undefined);
      return r?.status === 200 ? true : undefined;
    });
    const mine = await https(
      api(joiner, '/v1/kv//app/x?consistency=serializable'),
      'GET',
      undefined,
      as.alice,
    );
    expect(mine.status).toBe(200);
    const notMine = await https(
      api(joiner, '/v1/kv//other/y?consistency=serializable'),
      'GET',
      undefined,
      as.alice,
    );
    expect(notMine.status).toBe(403);
    expect((await https(api(joiner, '/v1/kv//app/x?consistency=serializable'))).status).toBe(401);
  }, 120_000);
});
