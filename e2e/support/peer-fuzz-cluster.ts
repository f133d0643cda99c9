// The peer-frame fuzzer's cluster: three `conflux-node` processes with mutual TLS on 127.0.0.1,
// the certificates an attacker and the test hold, and HTTPS calls to the members' ports.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type InternalStatus, internalStatusSchema } from '../../node/api/admin-contract.js';
import {
  type CertKeyPair,
  generateAdminCert,
  generateCa,
  generateClientCert,
} from '../../node/certs/generate.js';
import { eventually } from './process-cluster.js';
import { httpsText, startTlsMembers, type TlsMember } from './tls-member.js';

export type FuzzMember = TlsMember;

export interface Answer {
  status: number;
  body: string;
}

/** Requests slower than this count as unanswered (the outcome of a write is then unknown). */
const REQUEST_TIMEOUT_MS = 4_000;

export class FuzzCluster {
  readonly members: FuzzMember[] = [];
  private ca!: CertKeyPair;
  private client!: CertKeyPair;
  private admin!: CertKeyPair;
  /** A genuine node certificate and key of the cluster (t2's), as a thief would hold it. */
  stolen!: { cert: string; key: string; ca: string };
  private readonly agents = new Map<string, Agent>();

  private constructor(readonly dir: string) {}

  /** Starts three members with `flags` added (production timing unless they say otherwise). */
  static async start(flags: string[] = []): Promise<FuzzCluster> {
    const c = new FuzzCluster(mkdtempSync(join(tmpdir(), 'conflux-peer-fuzz-')));
    c.ca = await generateCa({ commonName: 'conflux-ca', validDays: 1 });
    c.client = await generateClientCert(c.ca, { commonName: 'fuzz-writer', validDays: 1 });
    c.admin = await generateAdminCert(c.ca, { commonName: 'fuzz-admin', validDays: 1 });
    writeFileSync(join(c.dir, 'ca.crt'), c.ca.certPem);
    c.members.push(...(await startTlsMembers(c.ca, c.dir, ['t1', 't2', 't3'], flags)));
    c.stolen = {
      cert: readFileSync(join(c.dir, 't2.crt'), 'utf8'),
      key: readFileSync(join(c.dir, 't2.key'), 'utf8'),
      ca: c.ca.certPem,
    };
    await c.leader();
    return c;
  }

  member(id: string): FuzzMember {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  apiUrl(id: string): string {
    return `https://127.0.0.1:${this.member(id).api}`;
  }

  /** One HTTPS request with the writer's client certificate (or the admin's). */
  call(url: string, method = 'GET', body?: string, as: 'client' | 'admin' = 'client'): Promise<Answer> {
    const pair = as === 'admin' ? this.admin : this.client;
    let agent = this.agents.get(as);
    if (!agent) {
      agent = new Agent({ keepAlive: true, ca: this.ca.certPem, cert: pair.certPem, key: pair.keyPem });
      this.agents.set(as, agent);
    }
    return httpsText(url, agent, {
      method,
      ...(body === undefined ? {} : { body }),
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
  }

  async status(id: string): Promise<InternalStatus> {
    const res = await this.call(
      `https://127.0.0.1:${this.member(id).admin}/_internal/status`,
      'GET',
      undefined,
      'admin',
    );
    if (res.status !== 200) throw new Error(`${id}: /_internal/status answered ${res.status}`);
    return internalStatusSchema.parse(JSON.parse(res.body));
  }

  /** The member every member follows, once there is one. */
  async leader(timeoutMs = 30_000): Promise<string> {
    return eventually(
      'a leader every member follows',
      async () => {
        const all = await Promise.all(this.members.map((m) => this.status(m.id)));
        const leader = all.find((s) => s.status === 'Leader')?.node_id;
        return leader && all.every((s) => s.leader_id === leader) ? leader : undefined;
      },
      timeoutMs,
    );
  }

  /** conflux_peer_protocol_errors_total of one member, summed over its reasons. */
  async protocolErrors(id: string): Promise<number> {
    const text = (await this.call(`${this.apiUrl(id)}/metrics`)).body;
    return text
      .split('\n')
      .filter((l) => l.startsWith('conflux_peer_protocol_errors_total{'))
      .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
  }

  async destroy(keep = false): Promise<void> {
    for (const m of this.members) m.proc?.kill('SIGTERM');
    await Promise.all(this.members.map((m) => m.exit));
    for (const agent of this.agents.values()) agent.destroy();
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}
