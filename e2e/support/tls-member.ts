// Test support: one `conflux-node` process with TLS on 127.0.0.1, for the suites that need the
// production path (certificates, no --dev-insecure) rather than the dev-mode ProcessCluster.

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { type Agent, request } from 'node:https';
import { join, resolve } from 'node:path';
import { type CertKeyPair, generateNodeCert } from '../../node/certs/generate.js';
import { freePort } from './process-cluster.js';

const REPO = resolve(import.meta.dirname, '../..');

export interface TlsMemberPorts {
  id: string;
  api: number;
  raft: number;
  admin: number;
}

/** A member's ports and, once spawnTlsMember started it, its process. */
export interface TlsMember extends TlsMemberPorts {
  proc: ChildProcess | null;
  exit: Promise<unknown> | null;
}

/** One HTTPS request through `agent` (which holds the CA and any client certificate); its status and text. */
export function httpsText(
  url: string,
  agent: Agent,
  opts: { method?: string; body?: string; timeoutMs?: number } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: opts.method ?? 'GET', agent, timeout: opts.timeoutMs ?? 10_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A node certificate for `id` (DNS names `id` and localhost, IP 127.0.0.1), as dir/<id>.crt and .key. */
export async function writeNodeCert(ca: CertKeyPair, dir: string, id: string): Promise<void> {
  const cert = await generateNodeCert(ca, {
    nodeId: id,
    dnsNames: [id, 'localhost'],
    ipAddresses: ['127.0.0.1'],
    validDays: 1,
  });
  writeFileSync(join(dir, `${id}.crt`), cert.certPem);
  writeFileSync(join(dir, `${id}.key`), cert.keyPem, { mode: 0o600 });
}

/**
 * Starts the member with its certificate from writeNodeCert and dir/ca.crt, its data in dir/<id>,
 * `flags` added (formation, tick, …), its output appended to `logFile`.
 */
export function spawnTlsMember(
  dir: string,
  m: TlsMemberPorts,
  flags: string[],
  logFile = join(dir, `${m.id}.log`),
): { proc: ChildProcess; exit: Promise<number | null> } {
  const args = ['--import', 'tsx', 'node/main.ts', '--node-id', m.id, '--data-dir', join(dir, m.id)];
  args.push('--api-addr', `127.0.0.1:${m.api}`, '--raft-addr', `127.0.0.1:${m.raft}`);
  args.push('--admin-addr', `127.0.0.1:${m.admin}`, ...flags);
  args.push('--tls-cert', join(dir, `${m.id}.crt`), '--tls-key', join(dir, `${m.id}.key`));
  args.push('--tls-ca', join(dir, 'ca.crt'));
  const proc = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(logFile, { flags: 'a' });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  return { proc, exit: new Promise((done) => proc.once('exit', done)) };
}

/**
 * Writes a node certificate for each id and starts them as one cluster (`--initial-cluster` of all
 * of them), `flags` added; dir must hold ca.crt. Each member logs to dir/<id>.log.
 */
export async function startTlsMembers(
  ca: CertKeyPair,
  dir: string,
  ids: string[],
  flags: string[] = ['--tick-ms', '20'],
): Promise<TlsMember[]> {
  const members: TlsMember[] = [];
  for (const id of ids) {
    members.push({
      id,
      api: await freePort(),
      raft: await freePort(),
      admin: await freePort(),
      proc: null,
      exit: null,
    });
    await writeNodeCert(ca, dir, id);
  }
  const initial = members
    .map((m) => `${m.id}=127.0.0.1:${m.raft}/127.0.0.1:${m.api}/127.0.0.1:${m.admin}`)
    .join(',');
  for (const m of members) Object.assign(m, spawnTlsMember(dir, m, ['--initial-cluster', initial, ...flags]));
  return members;
}
