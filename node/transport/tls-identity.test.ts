// The peer port with TLS admits member certificates only (O=conflux-node), and binds the node id
// a dialer claims to its certificate: a SAN must name the id or the member's advertised address
// (for a node the listener does not know yet, the address its hello announces).
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertKeyPair,
  generateAdminCert,
  generateCa,
  generateClientCert,
  generateNodeCert,
} from '../certs/generate.js';
import type { Message, NodeId } from '../raft/types.js';
import type { PeerAdmission, PeerTlsOptions, ProtocolErrorReason } from './options.js';
import { PeerTransport } from './peer-transport.js';
import { captureLogs, hello, rawPeer, startTlsNode, waitFor } from './test-support.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

let ca: CertKeyPair;
/** The listener "b": a node certificate for 127.0.0.1, so dialers can verify it. */
let serverTls: PeerTlsOptions;

beforeAll(async () => {
  ca = await generateCa({ commonName: 'cluster-ca', validDays: 1 });
  serverTls = tlsOf(
    await generateNodeCert(ca, { nodeId: 'b', dnsNames: ['b'], ipAddresses: ['127.0.0.1'], validDays: 1 }),
  );
});

const tlsOf = (pair: CertKeyPair): PeerTlsOptions => ({
  cert: pair.certPem,
  key: pair.keyPem,
  ca: ca.certPem,
});
const nodeCert = (dnsNames: string[], ipAddresses: string[] = []) =>
  generateNodeCert(ca, { nodeId: 'x', dnsNames, ipAddresses, validDays: 1 });

const beat = (from: NodeId): Message => ({
  type: 'heartbeat',
  from,
  to: 'b',
  term: 2,
  commit: 0,
  readSeq: 1,
});

/**
 * "b", of cluster c-1, knows a, c and demo-1-4f2a9c1e; a is advertised at 10.0.0.1, demo-1-… at
 * its pod name; old is retired.
 */
async function listener() {
  const addresses: Record<NodeId, string> = {
    a: '10.0.0.1:7000',
    c: '10.0.0.3:7000',
    'demo-1-4f2a9c1e': 'demo-1.demo-headless.db.svc:7000',
  };
  const admission: PeerAdmission = {
    isMember: (id) => id in addresses,
    isRetired: (id) => id === 'old',
    advertisedAddress: (id) => addresses[id],
  };
  const errors: ProtocolErrorReason[] = [];
  const inbox: Message[] = [];
  const logs = captureLogs();
  const transport = new PeerTransport({
    selfId: 'b',
    tls: serverTls,
    admission,
    clusterId: () => 'c-1',
    onMessage: (m) => inbox.push(m),
    logger: logs.logger,
    metrics: { protocolError: (reason) => errors.push(reason) },
  });
  cleanups.push(() => transport.close());
  const { port } = await transport.listen('127.0.0.1', 0);
  return { address: `127.0.0.1:${port}`, errors, inbox, logs };
}

describe('peer identity over mutual TLS', () => {
  it.each([
    ['an ordinary client certificate', () => generateClientCert(ca, { commonName: 'a', validDays: 1 })],
    ['an admin certificate', () => generateAdminCert(ca, { commonName: 'a', validDays: 1 })],
  ])('refuses %s at the handshake, before reading a byte', async (_name, make) => {
    const b = await listener();
    const peer = await rawPeer(b.address, tlsOf(await make()));
    cleanups.push(() => peer.destroy());
    peer.send(hello('a', 'c-1'), beat('a'));
    await peer.closed;
    expect(b.inbox).toEqual([]);
    expect(b.errors).toEqual(['certificate']);
    expect(String(b.logs.warnings('refused a TLS peer connection')[0]?.reason)).toMatch(/node role/);
  });

  it('admits a member whose certificate names its id, or the host of its advertised address', async () => {
    const b = await listener();
    const byId = await rawPeer(b.address, tlsOf(await nodeCert(['a'])));
    const byAddress = await rawPeer(b.address, tlsOf(await nodeCert([], ['10.0.0.3'])));
    const byPodName = await rawPeer(b.address, tlsOf(await nodeCert(['*.demo-headless.db.svc'])));
    cleanups.push(
      () => byId.destroy(),
      () => byAddress.destroy(),
      () => byPodName.destroy(),
    );
    byId.send(hello('a', 'c-1'), beat('a'));
    byAddress.send(hello('c', 'c-1'), beat('c'));
    byPodName.send(hello('demo-1-4f2a9c1e', 'c-1'), beat('demo-1-4f2a9c1e'));
    await waitFor('three deliveries', () => b.inbox.length === 3);
    expect(b.errors).toEqual([]);
  });

  it('refuses a member certificate claiming another member’s id', async () => {
    const b = await listener();
    // c's certificate (its address 10.0.0.3) says hello as a, advertised at 10.0.0.1.
    const peer = await rawPeer(b.address, tlsOf(await nodeCert(['c'], ['10.0.0.3'])));
    cleanups.push(() => peer.destroy());
    peer.send(hello('a', 'c-1'), beat('a'));
    await peer.closed;
    expect(b.inbox).toEqual([]);
    expect(b.errors).toEqual(['identity']);
    expect(String(b.logs.warnings('protocol error')[0]?.detail)).toMatch(
      /names neither node a nor .* 10\.0\.0\.1/,
    );
  });

  it('admits a node it does not know yet whose certificate names the address its hello announces', async () => {
    const b = await listener();
    const byAddress = await rawPeer(b.address, tlsOf(await nodeCert(['*.demo-headless.db.svc'])));
    const byId = await rawPeer(b.address, tlsOf(await nodeCert(['d2'])));
    cleanups.push(
      () => byAddress.destroy(),
      () => byId.destroy(),
    );
    byAddress.send(hello('demo-4-77aa', 'c-1', 'demo-4.demo-headless.db.svc:7000'), beat('demo-4-77aa'));
    byId.send(hello('d2', 'c-1'), beat('d2'));
    await waitFor('two deliveries', () => b.inbox.length === 2);
    expect(b.errors).toEqual([]);
  });

  it('refuses a node it does not know whose certificate names neither it nor its announced address', async () => {
    const b = await listener();
    const peer = await rawPeer(b.address, tlsOf(await nodeCert(['c'], ['10.0.0.3'])));
    cleanups.push(() => peer.destroy());
    peer.send(hello('d', 'c-1', '10.0.0.4:7000'), beat('d'));
    await peer.closed;
    expect(b.inbox).toEqual([]);
    expect(b.errors).toEqual(['identity']);
  });

  it('refuses a retired id whatever certificate it presents', async () => {
    const b = await listener();
    const peer = await rawPeer(b.address, tlsOf(await nodeCert(['old'], ['10.0.0.9'])));
    cleanups.push(() => peer.destroy());
    peer.send(hello('old', 'c-1', '10.0.0.9:7000'), beat('old'));
    await peer.closed;
    expect(b.inbox).toEqual([]);
    expect(b.errors).toEqual(['not-a-member']);
  });

  it('a dialer refuses a server whose certificate lacks the node role', async () => {
    const client = await generateClientCert(ca, { commonName: 'b', validDays: 1 });
    const impostor = await startTlsNode('b', tlsOf(client), cleanups);
    const logs = captureLogs();
    const a = new PeerTransport({
      selfId: 'a',
      tls: { ...tlsOf(await nodeCert(['a'], ['127.0.0.1'])), verifyServerName: false },
      admission: { isMember: () => true, isRetired: () => false, advertisedAddress: () => undefined },
      onMessage: () => {},
      logger: logs.logger,
    });
    cleanups.push(() => a.close());
    a.setPeers({ b: impostor.address });
    a.send([{ type: 'timeout-now', from: 'a', to: 'b', term: 1 }]);
    await waitFor('dial failure logged', () => logs.warnings('cannot connect to peer').length > 0);
    expect(String(logs.warnings('cannot connect to peer')[0]?.reason)).toMatch(/node role|purpose/);
    expect(impostor.inbox).toEqual([]);
  });
});
