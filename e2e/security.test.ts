// Hardening of a node, against real `conflux-node` processes: what only the node's user may read
// (data directory 0700, its files 0600, narrowed at start when wider), what a backup or restore
// request may not make a node do (back up into its own data directory, read a "manifest" that is
// a symlink to /dev/zero), what --dev-insecure refuses to dial, and, with TLS, that the admin port
// believes nothing but the certificate: a member certificate naming itself a forwarder is refused,
// a follower redirects leader-only calls, and the audit line names the certificate that called.

import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertKeyPair,
  generateAdminCert,
  generateCa,
  generateClientCert,
  generateNodeCert,
} from '../node/certs/generate.js';
import { call, eventually, ProcessCluster } from './support/process-cluster.js';
import { startTlsMembers, type TlsMember } from './support/tls-member.js';

const REPO = resolve(import.meta.dirname, '..');
const mode = (p: string) => statSync(p).mode & 0o777;

describe('a dev-mode node of real processes keeps its data and its backups to itself', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.create(1);
    await cluster.start();
    await cluster.leader();
  }, 60_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('creates its data 0700/0600 and narrows wider modes at the next start, saying so', async () => {
    const m = cluster.member('n1');
    expect((await call(`${cluster.url('n1')}/v1/kv/secret`, 'PUT', 'v')).status).toBe(200);
    const wal = join(m.dataDir, 'wal');
    expect([mode(m.dataDir), mode(wal), mode(join(m.dataDir, 'snap'))]).toEqual([0o700, 0o700, 0o700]);
    const segments = readdirSync(wal).map((f) => join(wal, f));
    expect(segments.length).toBeGreaterThan(0);
    for (const f of segments) expect(mode(f)).toBe(0o600);

    await cluster.stop();
    chmodSync(m.dataDir, 0o755);
    chmodSync(wal, 0o777);
    for (const f of segments) chmodSync(f, 0o644);
    cluster.spawn('n1');
    await cluster.waitReady('n1');
    expect([mode(m.dataDir), mode(wal)]).toEqual([0o700, 0o700]);
    for (const f of segments) expect(mode(f)).toBe(0o600);
    const narrowed = readFileSync(m.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('narrowed its mode'));
    expect(narrowed.some((l) => l.includes(`"path":"${m.dataDir}"`) && l.includes('"was":"0755"'))).toBe(
      true,
    );
    expect(narrowed.length).toBe(2 + segments.length);
  }, 60_000);

  it('refuses a backup destination that is its data directory or inside it', async () => {
    await cluster.leader();
    const m = cluster.member('n1');
    for (const dir of [m.dataDir, join(m.dataDir, 'backups')]) {
      const res = await call(
        `${cluster.adminUrl('n1')}/_cluster/backup`,
        'POST',
        JSON.stringify({ destination: `file://${dir}` }),
      );
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({
        code: 'INVALID_REQUEST',
        message: expect.stringMatching(/backups must be kept elsewhere/),
      });
    }
    expect(readdirSync(m.dataDir)).not.toContain('backups');
    const elsewhere = join(cluster.dir, 'backups');
    const ok = await call(
      `${cluster.adminUrl('n1')}/_cluster/backup`,
      'POST',
      JSON.stringify({ destination: `file://${elsewhere}` }),
    );
    expect(ok.status).toBe(200);
    expect(mode(elsewhere)).toBe(0o700);
    for (const f of readdirSync(elsewhere)) expect(mode(join(elsewhere, f))).toBe(0o600);
  }, 60_000);

  it('answers a restore whose manifest is a symlink to /dev/zero with BACKUP_CORRUPT, without growing', async () => {
    const evil = join(cluster.dir, 'evil');
    mkdirSync(evil);
    const name = 'conflux-c0ffee-20260101T000000Z-7.snap';
    writeFileSync(join(evil, name), 'data');
    symlinkSync('/dev/zero', join(evil, `${name}.manifest.json`));
    const fresh = await cluster.addMember('fresh', []);
    cluster.spawn(fresh.id);
    await eventually('the fresh node listening', async () =>
      (await fetch(`${cluster.url(fresh.id)}/healthz`)).ok ? true : undefined,
    );
    const started = Date.now();
    const res = await call(
      `${cluster.adminUrl(fresh.id)}/_cluster/restore`,
      'POST',
      JSON.stringify({ snapshot_uri: `file://${evil}/${name}` }),
    );
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({
      code: 'BACKUP_CORRUPT',
      message: expect.stringMatching(/is not a regular file/),
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    const rss = Number(
      /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${fresh.proc?.pid}/status`, 'utf8'))?.[1] ?? 0,
    );
    expect(rss).toBeLessThan(400 * 1024);
    expect((await fetch(`${cluster.url(fresh.id)}/healthz`)).status).toBe(200);
  }, 60_000);

  it('--dev-insecure refuses to dial or advertise a non-loopback address in plain text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conflux-insecure-dial-'));
    try {
      const run = (extra: string[]) =>
        new Promise<{ code: number | null; out: string }>((done) => {
          const args = ['--import', 'tsx', 'node/main.ts', '--dev-insecure', '--data-dir', join(dir, 'd')];
          const proc: ChildProcess = spawn(process.execPath, [...args, ...extra], { cwd: REPO });
          let out = '';
          proc.stdout?.on('data', (c) => (out += c));
          proc.stderr?.on('data', (c) => (out += c));
          proc.once('exit', (code) => done({ code, out }));
        });
      const join10 = await run(['--join', '10.0.0.1:8443']);
      expect(join10.code).not.toBe(0);
      expect(join10.out).toMatch(/refuses the non-loopback address 10\.0\.0\.1:8443 in --join/);
      const advertised = await run(['--advertise-raft-addr', 'db-0.db.svc:7000']);
      expect(advertised.code).not.toBe(0);
      expect(advertised.out).toMatch(/db-0\.db\.svc:7000 in --advertise-raft-addr/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

// -- TLS ------------------------------------------------------------------------------------------

describe('the admin port of a TLS cluster of real processes believes only certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-security-tls-'));
  const members: TlsMember[] = [];
  let ca: CertKeyPair;
  let admin: CertKeyPair;
  let client: CertKeyPair;

  const https = (
    url: string,
    as: CertKeyPair,
    method = 'GET',
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: string; location?: string }> =>
    new Promise((ok, fail) => {
      const req = request(
        url,
        { method, ca: ca.certPem, cert: as.certPem, key: as.keyPem, headers, timeout: 10_000 },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () =>
            ok({
              status: res.statusCode ?? 0,
              body: text,
              ...(res.headers.location ? { location: res.headers.location } : {}),
            }),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', fail);
      req.end(body);
    });

  async function leaderOf(timeoutMs = 20_000): Promise<TlsMember> {
    return eventually(
      'a leader everyone follows',
      async () => {
        const views = await Promise.all(
          members.map(async (m) => {
            const res = await https(`https://127.0.0.1:${m.api}/readyz`, client);
            return JSON.parse(res.body) as { state: string; leader: string | null };
          }),
        );
        const leader = members.find((_m, i) => views[i]?.state === 'leader');
        return leader && views.every((v) => v.leader === leader.id) ? leader : undefined;
      },
      timeoutMs,
    );
  }

  beforeAll(async () => {
    ca = await generateCa({ commonName: 'conflux-ca', validDays: 1 });
    admin = await generateAdminCert(ca, { commonName: 'sre-alice', validDays: 1 });
    client = await generateClientCert(ca, { commonName: 'app', validDays: 1 });
    writeFileSync(join(dir, 'ca.crt'), ca.certPem);
    members.push(...(await startTlsMembers(ca, dir, ['s1', 's2', 's3'])));
    await leaderOf(50_000);
  }, 60_000);

  afterAll(async () => {
    for (const m of members) m.proc?.kill('SIGTERM');
    await Promise.all(members.map((m) => m.exit));
    if (!process.env.CONFLUX_KEEP_E2E) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a member certificate that calls itself a forwarder, on the follower and on the leader', async () => {
    const leader = await leaderOf();
    const follower = members.find((m) => m !== leader) as TlsMember;
    const other = members.find((m) => m !== leader && m !== follower) as TlsMember;
    const member = await generateNodeCert(ca, {
      nodeId: follower.id,
      dnsNames: [follower.id],
      ipAddresses: ['127.0.0.1'],
      validDays: 1,
    });
    const forged = { 'x-conflux-forwarded-by': follower.id, 'x-conflux-forwarded-for': 'sre-alice' };
    const body = JSON.stringify({ target_node_id: other.id });
    for (const m of [leader, follower]) {
      const res = await https(
        `https://127.0.0.1:${m.admin}/_cluster/leader/transfer`,
        member,
        'POST',
        body,
        forged,
      );
      expect([res.status, JSON.parse(res.body).error.code]).toEqual([403, 'FORBIDDEN']);
    }
    const backup = await https(
      `https://127.0.0.1:${leader.admin}/_cluster/backup`,
      member,
      'POST',
      JSON.stringify({ destination: `file://${join(dir, 'stolen')}` }),
      forged,
    );
    expect(backup.status).toBe(403);
    expect((await leaderOf()).id).toBe(leader.id);
  });

  it('redirects a leader-only call to the leader, where the caller repeats it with its own certificate', async () => {
    const leader = await leaderOf();
    const follower = members.find((m) => m !== leader) as TlsMember;
    const body = JSON.stringify({ destination: `file://${join(dir, 'backups')}` });
    const first = await https(`https://127.0.0.1:${follower.admin}/_cluster/backup`, admin, 'POST', body);
    expect(first.status).toBe(307);
    expect(first.location).toBe(`https://127.0.0.1:${leader.admin}/_cluster/backup`);
    expect(JSON.parse(first.body).error).toMatchObject({ code: 'NOT_LEADER', leader: leader.id });
    const done = await https(first.location as string, admin, 'POST', body);
    expect(done.status).toBe(200);
    // The leader's audit line names the certificate that called: subject, serial, fingerprint.
    const audit = await eventually('the audit line', async () =>
      readFileSync(join(dir, `${leader.id}.log`), 'utf8')
        .split('\n')
        .filter((l) => l.includes('"audit":true') && l.includes('"path":"/_cluster/backup"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === 'admin request'),
    );
    expect(audit).toMatchObject({ caller: 'sre-alice', remote: '127.0.0.1' });
    expect(String(audit.fingerprint)).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(audit).not.toHaveProperty('forwardedBy');
  });
});
