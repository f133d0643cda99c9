import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CertKeyPair, generateCa, generateNodeCert } from '../certs/generate.js';
import type { Message } from '../raft/types.js';
import type { PeerTlsOptions } from './options.js';
import { PeerTransport } from './peer-transport.js';
import { admitAll, startTlsNode, waitFor } from './test-support.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

let oldCa: CertKeyPair;
let newCa: CertKeyPair;

beforeAll(async () => {
  [oldCa, newCa] = await Promise.all([
    generateCa({ commonName: 'old', validDays: 1 }),
    generateCa({ commonName: 'new', validDays: 1 }),
  ]);
});

async function material(id: string, issuer: CertKeyPair, ...trusted: CertKeyPair[]): Promise<PeerTlsOptions> {
  const leaf = await generateNodeCert(issuer, {
    nodeId: id,
    dnsNames: [],
    ipAddresses: ['127.0.0.1'],
    validDays: 1,
  });
  return { cert: leaf.certPem, key: leaf.keyPem, ca: trusted.map((c) => c.certPem) };
}

const startNode = (selfId: string, tls: PeerTlsOptions) => startTlsNode(selfId, tls, cleanups);

const ping = (from: string, to: string, term: number): Message => ({ type: 'timeout-now', from, to, term });

describe('PeerTransport.setTls (certificates and CAs replaced while running)', () => {
  it('keeps both directions flowing through a CA rotation with an overlap', async () => {
    const a = await startNode('a', await material('a', oldCa, oldCa));
    const b = await startNode('b', await material('b', oldCa, oldCa));
    a.transport.setPeers({ b: b.address });
    b.transport.setPeers({ a: a.address });
    let term = 0;
    // Messages are best effort (one in flight on a connection being replaced is lost, and Raft
    // resends): like Raft, send again until both sides got one.
    const exchange = async (what: string) => {
      term++;
      const resend = setInterval(() => {
        a.transport.send([ping('a', 'b', term)]);
        b.transport.send([ping('b', 'a', term)]);
      }, 50);
      try {
        await waitFor(
          what,
          () => a.inbox.some((m) => m.term === term) && b.inbox.some((m) => m.term === term),
        );
      } finally {
        clearInterval(resend);
      }
    };
    await exchange('the first exchange');

    // Both trust old + new; then a serves a leaf of the new CA; then the old CA is dropped.
    a.transport.setTls(await material('a', oldCa, oldCa, newCa));
    b.transport.setTls(await material('b', oldCa, oldCa, newCa));
    await exchange('an exchange over the bundle');
    a.transport.setTls(await material('a', newCa, newCa, oldCa));
    b.transport.setTls(await material('b', newCa, newCa, oldCa));
    await exchange('an exchange with new leaves');
    a.transport.setTls(await material('a', newCa, newCa));
    b.transport.setTls(await material('b', newCa, newCa));
    await exchange('an exchange with the new CA alone');
    // Each replacement re-established the outbound connection.
    expect(a.logs.warnings('peer connection lost').length).toBeGreaterThanOrEqual(3);
  });

  it('after the old CA is dropped, a peer still using an old-CA certificate is refused', async () => {
    const b = await startNode('b', await material('b', oldCa, oldCa, newCa));
    const stale = await startNode('s', await material('s', oldCa, oldCa, newCa));
    stale.transport.setPeers({ b: b.address });
    stale.transport.send([ping('s', 'b', 1)]);
    await waitFor('the overlap admits it', () => b.inbox.length === 1);

    // b drops the old CA: the stale peer's connection, verified under the old trust, is cut,
    // and its redial is refused.
    b.transport.setTls(await material('b', newCa, newCa));
    await waitFor('refusal logged', () => b.logs.warnings('refused a TLS peer connection').length > 0);
    stale.transport.send([ping('s', 'b', 2)]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(b.inbox.map((m) => m.term)).toEqual([1]);
  });

  it('a plain-TCP transport cannot switch to TLS', async () => {
    const t = new PeerTransport({ selfId: 'p', admission: admitAll, onMessage: () => undefined });
    cleanups.push(() => t.close());
    expect(() => t.setTls({ cert: '', key: '', ca: [] })).toThrow(/plain TCP/);
  });
});
