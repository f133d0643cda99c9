import { rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hasOpenssl, makePki, type Pki } from '../../e2e/support/openssl-pki.js';
import type { PeerTlsOptions } from './options.js';
import { everyMessageType, normalizeBytes, startTlsNode, waitFor } from './test-support.js';

const opensslMissing = !hasOpenssl();
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const startNode = (selfId: string, tls: PeerTlsOptions) => startTlsNode(selfId, tls, cleanups);

describe.skipIf(opensslMissing)(
  'PeerTransport with mutual TLS (certificates made by the openssl CLI)',
  () => {
    let pki: Pki;
    beforeAll(() => {
      pki = makePki();
    });
    afterAll(() => {
      if (pki) rmSync(pki.dir, { recursive: true, force: true });
    });

    it('carries every message type between nodes whose certificates the cluster CA signed', async () => {
      const a = await startNode('a', pki.node('a', 'ca1'));
      const b = await startNode('b', pki.node('b', 'ca1'));
      a.transport.setPeers({ b: b.address });
      b.transport.setPeers({ a: a.address });
      a.transport.send(everyMessageType('a', 'b'));
      b.transport.send(everyMessageType('b', 'a'));
      const count = everyMessageType('a', 'b').length;
      await waitFor('both inboxes', () => a.inbox.length === count && b.inbox.length === count);
      expect(normalizeBytes(b.inbox)).toEqual(normalizeBytes(everyMessageType('a', 'b')));
      expect(normalizeBytes(a.inbox)).toEqual(normalizeBytes(everyMessageType('b', 'a')));
    });

    it('refuses, and logs, a client whose certificate another CA signed', async () => {
      const b = await startNode('b', pki.node('b', 'ca1'));
      const mallory = await startNode('m', pki.node('m', 'ca2'));
      mallory.transport.setPeers({ b: b.address });
      mallory.transport.send([{ type: 'timeout-now', from: 'm', to: 'b', term: 99 }]);
      await waitFor('refusal logged', () => b.logs.warnings('refused a TLS peer connection').length > 0);
      const refusal = b.logs.warnings('refused a TLS peer connection')[0];
      expect(refusal?.remote).toMatch(/^127\.0\.0\.1:\d+$/);
      // Several redials later, still nothing got through.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(b.inbox).toHaveLength(0);
      expect(b.transport.stats().received).toBe(0);
      // The dialer never counts itself connected, and says so once, not on every redial.
      expect(mallory.transport.stats().peers.b?.connected).toBe(false);
      expect(mallory.logs.warnings('cannot connect to peer')).toHaveLength(1);
      expect(mallory.logs.warnings('peer connection lost')).toHaveLength(0);
    });

    it('refuses, and logs, a server whose certificate another CA signed', async () => {
      const a = await startNode('a', pki.node('a2', 'ca1'));
      const impostor = await startNode('b', pki.node('impostor', 'ca2'));
      a.transport.setPeers({ b: impostor.address });
      a.transport.send([{ type: 'timeout-now', from: 'a', to: 'b', term: 1 }]);
      await waitFor('dial failure logged', () => a.logs.warnings('cannot connect to peer').length > 0);
      expect(String(a.logs.warnings('cannot connect to peer')[0]?.reason)).toMatch(/certificate/i);
      expect(impostor.inbox).toHaveLength(0);
      expect(a.transport.stats().peers.b?.connected).toBe(false);
    });
  },
);
