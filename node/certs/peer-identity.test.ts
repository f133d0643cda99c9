// Which certificates may speak for a node id on the peer port: the ones Conflux issues pass as
// they are; client and admin certificates, and certificates naming someone else, do not.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertKeyPair,
  generateAdminCert,
  generateCa,
  generateClientCert,
  generateNodeCert,
} from './generate.js';
import { peerIdentityProblem } from './peer-identity.js';
import { isNodeCertificate } from './roles.js';
import { runCli } from './run-cli.js';
import { statefulSetSans } from './sans.js';

/** The certificate in the shape a TLS socket's getPeerCertificate() hands out. */
function asPeer(pem: string): PeerCertificate {
  return new X509Certificate(pem).toLegacyObject();
}

let ca: CertKeyPair;
const dir = mkdtempSync(join(tmpdir(), 'conflux-peer-identity-'));
beforeAll(async () => {
  ca = await generateCa({ commonName: 'ca', validDays: 1 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('peer identity of a certificate', () => {
  it('a node certificate naming the node id in a SAN speaks for that id only', async () => {
    const cert = await generateNodeCert(ca, {
      nodeId: 'n1',
      dnsNames: ['n1'],
      ipAddresses: [],
      validDays: 1,
    });
    expect(peerIdentityProblem(asPeer(cert.certPem), 'n1', undefined)).toBeNull();
    expect(peerIdentityProblem(asPeer(cert.certPem), 'n2', undefined)).toMatch(/does not name node n2/);
    expect(peerIdentityProblem(asPeer(cert.certPem), 'n2', '10.0.0.2')).toMatch(/neither node n2 nor/);
  });

  it('an operator certificate (wildcard over the headless Service) speaks for every pod’s address', async () => {
    // The SANs operator/platform/tls-secrets.ts issues: *.<headless> in every spelling, one certificate.
    const headless = [
      'demo-headless',
      'demo-headless.db',
      'demo-headless.db.svc',
      'demo-headless.db.svc.cluster.local',
    ];
    const cert = await generateNodeCert(ca, {
      nodeId: 'demo',
      dnsNames: [...headless.map((h) => `*.${h}`), ...headless, 'localhost'],
      ipAddresses: ['127.0.0.1'],
      validDays: 1,
    });
    const peer = asPeer(cert.certPem);
    // Node ids are random (demo-1-4f2a9c1e): the advertised peer address binds them.
    expect(peerIdentityProblem(peer, 'demo-1-4f2a9c1e', 'demo-1.demo-headless.db.svc')).toBeNull();
    expect(peerIdentityProblem(peer, 'demo-1-4f2a9c1e', 'demo-1.other-headless.db.svc')).toMatch(/neither/);
    expect(peerIdentityProblem(peer, 'demo-1-4f2a9c1e', undefined)).toMatch(/does not name/);
  });

  it('a per-pod StatefulSet certificate and `conflux certs --nodes` certificates pass as issued', async () => {
    const sans = statefulSetSans({
      name: 'demo',
      namespace: 'db',
      headlessService: 'demo-headless',
      ordinal: 2,
    });
    const pod = await generateNodeCert(ca, { nodeId: 'demo-2', ...sans, validDays: 1 });
    expect(
      peerIdentityProblem(asPeer(pod.certPem), 'demo-2-0a1b2c3d', 'demo-2.demo-headless.db.svc'),
    ).toBeNull();

    const out = join(dir, 'cli');
    const io = { stdout: () => {}, stderr: () => {} };
    expect(await runCli(['--out', out, '--nodes', 'n1,n2', '--ip', '10.1.2.3'], io)).toBe(0);
    const n1 = asPeer(readFileSync(join(out, 'n1.crt'), 'utf8'));
    expect(peerIdentityProblem(n1, 'n1', undefined)).toBeNull(); // its id is a DNS SAN
    expect(peerIdentityProblem(n1, 'n2', '10.1.2.3')).toBeNull(); // the shared --ip binds by address
    expect(peerIdentityProblem(n1, 'n2', '10.9.9.9')).toMatch(/neither/);
    const admin = asPeer(readFileSync(join(out, 'admin.crt'), 'utf8'));
    expect(peerIdentityProblem(admin, 'n1', undefined)).toMatch(/node role/);
  });

  it('client and admin certificates carry no node role, whatever they are named', async () => {
    const client = await generateClientCert(ca, { commonName: 'n1', validDays: 1 });
    const admin = await generateAdminCert(ca, { commonName: 'n1', validDays: 1 });
    for (const pair of [client, admin]) {
      expect(isNodeCertificate(pair.certPem)).toBe(false);
      expect(peerIdentityProblem(asPeer(pair.certPem), 'n1', '127.0.0.1')).toMatch(/node role/);
    }
  });
});
