// Identities from real TLS connections: a client certificate names a user by its CN, a node
// certificate marks a member, and no certificate, a certificate of another CA or a plain socket
// is anonymous.

import { once } from 'node:events';
import { type AddressInfo, Socket } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CertKeyPair, generateCa, generateClientCert, generateNodeCert } from '../certs/generate.js';
import { type ClientIdentity, identityOf } from './identity.js';

describe('client identity from the TLS connection', () => {
  let ca: CertKeyPair;
  let other: CertKeyPair;
  let server: ReturnType<typeof createServer>;
  let port: number;
  const seen: ClientIdentity[] = [];

  beforeAll(async () => {
    ca = await generateCa({ commonName: 'conflux-ca', validDays: 1 });
    other = await generateCa({ commonName: 'other-ca', validDays: 1 });
    const serverCert = await generateNodeCert(ca, {
      nodeId: 'n1',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      validDays: 1,
    });
    server = createServer(
      {
        cert: serverCert.certPem,
        key: serverCert.keyPem,
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: false,
      },
      (socket: TLSSocket) => {
        seen.push(identityOf(socket));
        socket.end();
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => server?.close());

  async function as(pair?: CertKeyPair): Promise<ClientIdentity> {
    const before = seen.length;
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: ca.certPem,
      ...(pair ? { cert: pair.certPem, key: pair.keyPem } : {}),
    });
    socket.on('error', () => {});
    socket.resume();
    await once(socket, 'close');
    expect(seen.length).toBe(before + 1);
    return seen[before] as ClientIdentity;
  }

  it('names a user by the CN of a client certificate of the cluster CA', async () => {
    expect(await as(await generateClientCert(ca, { commonName: 'billing-app', validDays: 1 }))).toEqual({
      kind: 'user',
      name: 'billing-app',
    });
  });

  it('marks a node certificate as a member', async () => {
    const node = await generateNodeCert(ca, {
      nodeId: 'n2',
      dnsNames: ['n2'],
      ipAddresses: [],
      validDays: 1,
    });
    expect(await as(node)).toEqual({ kind: 'member', name: 'n2' });
  });

  it('calls no certificate, and one of another CA, anonymous', async () => {
    expect(await as()).toEqual({ kind: 'anonymous' });
    expect(await as(await generateClientCert(other, { commonName: 'billing-app', validDays: 1 }))).toEqual({
      kind: 'anonymous',
    });
  });

  it('calls a plain socket anonymous', () => {
    expect(identityOf(new Socket())).toEqual({ kind: 'anonymous' });
  });
});
