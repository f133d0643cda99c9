// Real TLS handshakes (node:https, requestCert) with certificates from this module: who gets in,
// who is refused, and what isAdminCertificate says about those who got in.
//
// Node's server destroys a socket whose client certificate fails verification without any event,
// so each refusal is checked twice: the enforcing server (rejectUnauthorized) refuses the request,
// and an inspecting server (same certificates, rejectUnauthorized: false) reports the verification
// error, proving the refusal happened for the expected reason.

import { once } from 'node:events';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertKeyPair,
  generateAdminCert,
  generateCa,
  generateClientCert,
  generateNodeCert,
} from './generate.js';
import { isAdminCertificate, isAuthorizedAdmin } from './roles.js';
import { statefulSetSans } from './sans.js';

interface Answer {
  authorized: boolean;
  authorizationError: string | null;
  admin: boolean;
  authorizedAdmin: boolean;
  cn: string | null;
}

const DAY_MS = 24 * 3600 * 1000;
let ca: CertKeyPair;
let otherCa: CertKeyPair;
const servers: Server[] = [];
let enforcingPort: number;
let inspectingPort: number;

async function startServer(node: CertKeyPair, rejectUnauthorized: boolean): Promise<number> {
  const server = createServer(
    { cert: node.certPem, key: node.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      const answer: Answer = {
        authorized: socket.authorized,
        authorizationError: socket.authorizationError ? String(socket.authorizationError) : null,
        admin: isAdminCertificate(peer),
        authorizedAdmin: isAuthorizedAdmin(socket),
        cn: peer.subject ? String(peer.subject.CN) : null,
      };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(answer));
    },
  );
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  ca = await generateCa({ commonName: 'conflux-test-ca', validDays: 1 });
  otherCa = await generateCa({ commonName: 'mallory-ca', validDays: 1 });
  const sans = statefulSetSans({
    name: 'conflux',
    namespace: 'db',
    headlessService: 'conflux-hl',
    ordinal: 0,
  });
  const node = await generateNodeCert(ca, { nodeId: 'conflux-0', ...sans, validDays: 1 });
  enforcingPort = await startServer(node, true);
  inspectingPort = await startServer(node, false);
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

interface CallOptions {
  port?: number;
  /** The name the server certificate must match (SNI and identity check); the connection goes to loopback. */
  servername?: string;
  trust?: string;
}

function call(client: CertKeyPair | undefined, options: CallOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: options.port ?? enforcingPort,
        ...(options.servername ? { servername: options.servername } : {}),
        path: '/',
        ca: options.trust ?? ca.certPem,
        cert: client?.certPem,
        key: client?.keyPem,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve(JSON.parse(body) as Answer));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const ADMITTED = { authorized: true, authorizationError: null };

describe('mutual TLS with generated certificates', () => {
  it('admits an admin client of the cluster CA, and isAdminCertificate says so', async () => {
    const admin = await generateAdminCert(ca, { commonName: 'alice', validDays: 1 });
    expect(await call(admin)).toEqual({ ...ADMITTED, admin: true, authorizedAdmin: true, cn: 'alice' });
  });

  it('admits a non-admin client of the cluster CA, but isAdminCertificate is false', async () => {
    const client = await generateClientCert(ca, { commonName: 'bob', validDays: 1 });
    expect(await call(client)).toEqual({ ...ADMITTED, admin: false, authorizedAdmin: false, cn: 'bob' });
  });

  it('admits a peer node presenting its node certificate as a client (clientAuth)', async () => {
    const peer = await generateNodeCert(ca, {
      nodeId: 'conflux-1',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      validDays: 1,
    });
    expect(await call(peer)).toEqual({ ...ADMITTED, admin: false, authorizedAdmin: false, cn: 'conflux-1' });
  });

  it('serves a certificate valid for the names statefulSetSans gave it, and no others', async () => {
    const admin = await generateAdminCert(ca, { commonName: 'alice', validDays: 1 });
    await expect(call(admin, { servername: 'localhost' })).resolves.toMatchObject({ admin: true });
    await expect(
      call(admin, { servername: 'conflux-0.conflux-hl.db.svc.cluster.local' }),
    ).resolves.toMatchObject({ admin: true });
    await expect(call(admin, { servername: 'conflux-1.conflux-hl.db' })).rejects.toThrow(/altnames/i);
  });

  it('refuses an admin certificate signed by another CA', async () => {
    const mallory = await generateAdminCert(otherCa, { commonName: 'mallory', validDays: 1 });
    await expect(call(mallory)).rejects.toThrow();
    const seen = await call(mallory, { port: inspectingPort });
    expect(seen).toMatchObject({ authorized: false, authorizedAdmin: false, admin: true });
    expect(seen.authorizationError).toMatch(/ISSUER|LEAF_SIGNATURE/);
  });

  it('refuses an expired admin certificate of the right CA', async () => {
    const notBefore = new Date(Date.now() - 10 * DAY_MS);
    const expired = await generateAdminCert(ca, { commonName: 'old', validDays: 1, notBefore });
    await expect(call(expired)).rejects.toThrow();
    const seen = await call(expired, { port: inspectingPort });
    expect(seen).toMatchObject({
      authorized: false,
      authorizationError: 'CERT_HAS_EXPIRED',
      authorizedAdmin: false,
    });
  });

  it('refuses a client certificate that is not valid yet', async () => {
    const notBefore = new Date(Date.now() + DAY_MS);
    const early = await generateAdminCert(ca, { commonName: 'early', validDays: 1, notBefore });
    await expect(call(early)).rejects.toThrow();
    const seen = await call(early, { port: inspectingPort });
    expect(seen).toMatchObject({ authorized: false, authorizationError: 'CERT_NOT_YET_VALID' });
  });

  it('refuses a client without a certificate', async () => {
    await expect(call(undefined)).rejects.toThrow();
  });

  it('a client that trusts only another CA refuses the server', async () => {
    const admin = await generateAdminCert(ca, { commonName: 'alice', validDays: 1 });
    await expect(call(admin, { trust: otherCa.certPem })).rejects.toThrow(/certificate/i);
  });
});
