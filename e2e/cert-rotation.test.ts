// Certificate rotation without downtime: three real node processes with mutual TLS take a
// continuous write load over HTTPS while their certificate files are replaced the way the kubelet
// replaces a mounted Secret (a new directory and an atomic symlink swap): first the leaf
// certificates, then the CA with an overlap (trust old + new, re-issue the leaves from the new
// CA, drop the old CA). No acknowledged write may be lost, the admin API must answer every poll,
// the peers must keep replicating, and once the old CA is dropped its certificates are refused.

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InternalStatus, internalStatusSchema } from '../node/api/admin-contract.js';
import { type CertKeyPair, generateAdminCert, generateCa, generateNodeCert } from '../node/certs/generate.js';
import { writeSecretDir } from '../node/certs/test-support.js';
import { fingerprintOf } from '../operator/platform/tls-rotation.js';
import { freePort, sleep } from './support/process-cluster.js';

const REPO = resolve(import.meta.dirname, '..');
const IDS = ['r1', 'r2', 'r3'] as const;
const SANS = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };

interface Member {
  id: string;
  api: number;
  raft: number;
  admin: number;
  proc: ChildProcess | null;
  exit: Promise<unknown> | null;
  secretDir: string;
}

/** What a client (the load, the admin poller) presents and trusts right now. */
interface ClientTls {
  cert?: string;
  key?: string;
  ca: string;
  agent: Agent;
}

/** CA certificates as one PEM bundle. */
function bundleOf(...cas: CertKeyPair[]): string {
  return cas.map((c) => `${c.certPem.trimEnd()}\n`).join('');
}

function clientTls(ca: string, pair?: CertKeyPair): ClientTls {
  return {
    ca,
    ...(pair ? { cert: pair.certPem, key: pair.keyPem } : {}),
    agent: new Agent({ keepAlive: true, maxSockets: 8 }),
  };
}

function call(
  url: string,
  client: ClientTls,
  method = 'GET',
  body?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const { agent, ...material } = client;
    const req = request(url, { method, agent, timeout: 10_000, ...material }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => ok({ status: res.statusCode ?? 0, body: text }));
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', fail);
    req.end(body);
  });
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

describe('certificate rotation under load', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-cert-rotation-'));
  const members: Member[] = [];
  let oldCa: CertKeyPair;
  let newCa: CertKeyPair;
  let oldAdmin: CertKeyPair;
  let newAdmin: CertKeyPair;
  /** The load's and the admin poller's TLS, switched the way an operator switches its client. */
  let loadTls: ClientTls;
  let adminTls: ClientTls;

  const acked = new Map<string, string>();
  const failures: string[] = [];
  const adminFailures: string[] = [];
  let adminPolls = 0;
  let running = true;
  const loops: Promise<void>[] = [];

  const apiUrl = (m: Member) => `https://127.0.0.1:${m.api}`;
  const adminUrl = (m: Member) => `https://127.0.0.1:${m.admin}`;

  async function writeSecret(m: Member, leaf: CertKeyPair, ...cas: CertKeyPair[]): Promise<void> {
    const ca = bundleOf(...cas);
    await writeSecretDir(m.secretDir, { 'tls.crt': leaf.certPem, 'tls.key': leaf.keyPem, 'ca.crt': ca });
  }

  function spawnMember(m: Member): void {
    const cluster = members
      .map((x) => `${x.id}=127.0.0.1:${x.raft}/127.0.0.1:${x.api}/127.0.0.1:${x.admin}`)
      .join(',');
    const file = (name: string) => join(m.secretDir, name);
    const args = ['--import', 'tsx', 'node/main.ts', '--node-id', m.id, '--data-dir', join(dir, m.id)];
    args.push('--api-addr', `127.0.0.1:${m.api}`, '--raft-addr', `127.0.0.1:${m.raft}`);
    args.push('--admin-addr', `127.0.0.1:${m.admin}`, '--initial-cluster', cluster, '--tick-ms', '30');
    args.push('--tls-cert', file('tls.crt'), '--tls-key', file('tls.key'), '--tls-ca', file('ca.crt'));
    args.push('--tls-reload-interval-ms', '200');
    const proc = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(join(dir, `${m.id}.log`), { flags: 'a' });
    proc.stdout?.pipe(log);
    proc.stderr?.pipe(log);
    m.proc = proc;
    m.exit = new Promise((ok) => proc.once('exit', ok));
  }

  async function status(m: Member): Promise<InternalStatus> {
    const res = await call(`${adminUrl(m)}/_internal/status`, adminTls);
    if (res.status !== 200) throw new Error(`${m.id}: ${res.status} ${res.body}`);
    return internalStatusSchema.parse(JSON.parse(res.body));
  }

  /** Until every member reports TLS material that passes `ok`. */
  async function everyMemberLoaded(what: string, ok: (s: NonNullable<InternalStatus['tls']>) => boolean) {
    for (const m of members) {
      await waitFor(`${m.id} to load ${what}`, async () => {
        const s = (await status(m)).tls;
        return s && ok(s) ? true : undefined;
      });
    }
  }

  /** A write through one member that every member then serves from its own state. */
  async function replicatesEverywhere(key: string): Promise<void> {
    const put = await waitFor(`a write of ${key}`, async () => {
      const res = await call(`${apiUrl(members[0] as Member)}/v1/kv/${key}`, loadTls, 'PUT', key);
      return res.status === 200 ? res : undefined;
    });
    expect(put.status).toBe(200);
    for (const m of members) {
      await waitFor(`${m.id} to replicate ${key}`, async () => {
        const res = await call(`${apiUrl(m)}/v1/kv/${key}?consistency=serializable`, loadTls);
        return res.status === 200 && JSON.parse(res.body).value === key ? true : undefined;
      });
    }
  }

  /** The keys under `prefix` as one member holds them (serializable: its own state). */
  async function dump(m: Member): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    let after: string | undefined;
    for (;;) {
      const q = `prefix=load%2F&limit=10000&consistency=serializable${after ? `&after=${encodeURIComponent(after)}` : ''}`;
      const res = await call(`${apiUrl(m)}/v1/kv?${q}`, loadTls);
      if (res.status !== 200) throw new Error(`${m.id} range: ${res.status} ${res.body}`);
      const page = JSON.parse(res.body) as {
        kvs: { key: string; value: string }[];
        more: boolean;
        next?: string;
      };
      for (const kv of page.kvs) out.set(kv.key, kv.value);
      if (!page.more) return out;
      after = page.next;
    }
  }

  beforeAll(async () => {
    [oldCa, newCa] = await Promise.all([
      generateCa({ commonName: 'conflux-ca-old', validDays: 30 }),
      generateCa({ commonName: 'conflux-ca-new', validDays: 90 }),
    ]);
    oldAdmin = await generateAdminCert(oldCa, { commonName: 'operator', validDays: 2 });
    for (const id of IDS) {
      const m: Member = {
        id,
        api: await freePort(),
        raft: await freePort(),
        admin: await freePort(),
        proc: null,
        exit: null,
        secretDir: join(dir, `${id}-tls`),
      };
      members.push(m);
      await writeSecret(m, await generateNodeCert(oldCa, { nodeId: id, ...SANS, validDays: 1 }), oldCa);
    }
    loadTls = clientTls(oldCa.certPem);
    adminTls = clientTls(oldCa.certPem, oldAdmin);
    for (const m of members) spawnMember(m);
    await waitFor(
      'a leader',
      async () => {
        const views = await Promise.all(members.map((m) => status(m).catch(() => null)));
        return views.some((v) => v?.status === 'Leader') ? true : undefined;
      },
      60_000,
    );

    // The load: four writers round-robin over the members (followers forward over HTTPS).
    let seq = 0;
    for (let w = 0; w < 4; w++) {
      loops.push(
        (async () => {
          while (running) {
            const n = seq++;
            const key = `load/${String(n).padStart(6, '0')}`;
            const m = members[n % members.length] as Member;
            try {
              const res = await call(`${apiUrl(m)}/v1/kv/${key}`, loadTls, 'PUT', `v${n}`);
              if (res.status === 200) acked.set(key, `v${n}`);
              else failures.push(`${m.id} ${res.status} ${res.body.slice(0, 120)}`);
            } catch (err) {
              failures.push(`${m.id} ${(err as Error).message}`);
              await sleep(20);
            }
          }
        })(),
      );
    }
    // The admin poller: every member's admin API, all the time.
    loops.push(
      (async () => {
        while (running) {
          for (const m of members) {
            adminPolls++;
            await status(m).catch((err: Error) => adminFailures.push(`${m.id}: ${err.message}`));
          }
          await sleep(50);
        }
      })(),
    );
  }, 120_000);

  afterAll(async () => {
    running = false;
    await Promise.allSettled(loops);
    for (const m of members) m.proc?.kill('SIGTERM');
    await Promise.all(members.map((m) => m.exit));
    for (const c of [loadTls, adminTls]) c?.agent.destroy();
    if (!process.env.CONFLUX_KEEP_E2E) rmSync(dir, { recursive: true, force: true });
  });

  /** The load made progress in the last phase (writes keep being acknowledged). */
  async function loadProgresses(): Promise<void> {
    const before = acked.size;
    await waitFor('more acknowledged writes', async () => (acked.size >= before + 20 ? true : undefined));
  }

  it('refuses a mismatched certificate and key and keeps serving the old certificate', async () => {
    await loadProgresses();
    const m = members[0] as Member;
    const served = (await status(m)).tls?.cert.fingerprint_sha256;
    const other = await generateNodeCert(oldCa, { nodeId: m.id, ...SANS, validDays: 1 });
    const wrongKey = await generateNodeCert(oldCa, { nodeId: m.id, ...SANS, validDays: 1 });
    await writeSecretDir(m.secretDir, {
      'tls.crt': other.certPem,
      'tls.key': wrongKey.keyPem,
      'ca.crt': oldCa.certPem,
    });
    const refused = await waitFor('the refusal', async () => {
      const s = (await status(m)).tls;
      return s?.last_error ? s : undefined;
    });
    expect(refused.last_error).toMatch(/key does not belong to the certificate/);
    expect(refused.cert.fingerprint_sha256).toBe(served);
    expect(refused.reload_failures).toBe(1);
    await replicatesEverywhere('check/after-refusal');
  }, 180_000);

  it('(a) rotates the leaf certificates in place', async () => {
    const leaves = new Map<string, CertKeyPair>();
    for (const m of members) {
      const leaf = await generateNodeCert(oldCa, { nodeId: m.id, ...SANS, validDays: 2 });
      leaves.set(m.id, leaf);
      await writeSecret(m, leaf, oldCa);
    }
    const fingerprints = new Set([...leaves.values()].map((l) => fingerprintOf(l.certPem)));
    await everyMemberLoaded(
      'its new leaf',
      (s) => fingerprints.has(s.cert.fingerprint_sha256) && s.last_error === null,
    );
    await loadProgresses();
    await replicatesEverywhere('check/after-leaf-rotation');
  }, 180_000);

  it('(b1) trusts the bundle of old and new CA', async () => {
    // The operator's clients trust the bundle first, then the members get it.
    const bundle = bundleOf(oldCa, newCa);
    loadTls = clientTls(bundle);
    adminTls = clientTls(bundle, oldAdmin);
    const served = new Map<string, string | undefined>();
    for (const m of members) served.set(m.id, (await status(m)).tls?.cert.fingerprint_sha256);
    for (const m of members) await rewriteCa(m, bundle);
    const next = fingerprintOf(newCa.certPem);
    await everyMemberLoaded(
      'the bundle',
      (s) => s.ca.length === 2 && s.ca.some((c) => c.fingerprint_sha256 === next),
    );
    // The leaves did not change: only the trust grew.
    for (const m of members) expect((await status(m)).tls?.cert.fingerprint_sha256).toBe(served.get(m.id));
    await loadProgresses();
    await replicatesEverywhere('check/after-bundle');
  }, 180_000);

  it('(b2) re-issues the leaves from the new CA while both are trusted', async () => {
    newAdmin = await generateAdminCert(newCa, { commonName: 'operator', validDays: 2 });
    adminTls = clientTls(bundleOf(oldCa, newCa), newAdmin);
    const fingerprints = new Set<string>();
    for (const m of members) {
      const leaf = await generateNodeCert(newCa, { nodeId: m.id, ...SANS, validDays: 2 });
      fingerprints.add(fingerprintOf(leaf.certPem));
      await writeSecret(m, leaf, newCa, oldCa);
    }
    await everyMemberLoaded('a leaf of the new CA', (s) => fingerprints.has(s.cert.fingerprint_sha256));
    await loadProgresses();
    await replicatesEverywhere('check/after-new-leaves');
  }, 180_000);

  it('(b3) drops the old CA; its certificates are refused from then on', async () => {
    // An administrator with an old-CA certificate holds a keep-alive connection open across the drop.
    const m = members[1] as Member;
    const lingering = clientTls(bundleOf(oldCa, newCa), oldAdmin);
    expect((await call(`${adminUrl(m)}/_internal/status`, lingering)).status).toBe(200);

    for (const m of members) await rewriteCa(m, newCa.certPem);
    await everyMemberLoaded('the new CA alone', (s) => s.ca.length === 1 && s.last_error === null);
    loadTls = clientTls(newCa.certPem);
    adminTls = clientTls(newCa.certPem, newAdmin);
    await loadProgresses();
    await replicatesEverywhere('check/after-drop');

    // An administrator still holding an old-CA certificate is turned away by the admin API, on a
    // new connection and on the one kept alive from before (the member dropped it).
    const again = await call(`${adminUrl(m)}/_internal/status`, lingering);
    expect([again.status, JSON.parse(again.body).error?.code]).toEqual([401, 'UNAUTHENTICATED']);
    lingering.agent.destroy();
    const stale = await call(`${adminUrl(m)}/_internal/status`, clientTls(newCa.certPem, oldAdmin));
    expect(stale.status).toBe(401);
    expect(JSON.parse(stale.body).error.code).toBe('UNAUTHENTICATED');
    // A peer with an old-CA node certificate is dropped at the peer port, one with a new one is not.
    const oldNode = await generateNodeCert(oldCa, { nodeId: 'stale', ...SANS, validDays: 1 });
    const newNode = await generateNodeCert(newCa, { nodeId: 'fresh', ...SANS, validDays: 1 });
    expect(await peerConnectionSurvives(m.raft, oldNode)).toBe(false);
    expect(await peerConnectionSurvives(m.raft, newNode)).toBe(true);
  }, 180_000);

  it('lost no acknowledged write, and the admin API answered every poll', async () => {
    running = false;
    await Promise.allSettled(loops);
    expect(acked.size).toBeGreaterThan(100);
    for (const m of members) {
      const held = await waitFor(`${m.id} to hold every acknowledged write`, async () => {
        const d = await dump(m);
        return [...acked].every(([k, v]) => d.get(k) === v) ? d : undefined;
      });
      const missing = [...acked].filter(([k, v]) => held.get(k) !== v);
      expect(missing).toEqual([]);
    }
    // Failed writes were never acknowledged, so they lose nothing; none may be a TLS refusal.
    const tlsFailures = failures.filter((f) =>
      /certificate|SSL|TLS|alert|self.signed|unable to verify/i.test(f),
    );
    expect(tlsFailures).toEqual([]);
    expect(adminPolls).toBeGreaterThan(30);
    expect(adminFailures).toEqual([]);
    console.info(
      `cert rotation: ${acked.size} writes acknowledged, ${failures.length} refused or failed, ` +
        `${adminPolls} admin polls, 0 admin failures`,
    );
  }, 180_000);

  /** Rewrites a member's Secret with a new CA bundle and the leaf it already serves. */
  async function rewriteCa(m: Member, caPem: string): Promise<void> {
    const cert = await readFile(join(m.secretDir, 'tls.crt'), 'utf8');
    const key = await readFile(join(m.secretDir, 'tls.key'), 'utf8');
    await writeSecretDir(m.secretDir, { 'tls.crt': cert, 'tls.key': key, 'ca.crt': caPem });
  }
});

/**
 * Dials a member's peer port with `pair`: true when the connection is still open after a while
 * (the member accepted the certificate and waits for the hello), false when the member drops it.
 */
function peerConnectionSurvives(port: number, pair: CertKeyPair): Promise<boolean> {
  return new Promise((ok) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      cert: pair.certPem,
      key: pair.keyPem,
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      ok(true);
    }, 1_500);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      ok(false);
    });
  });
}
