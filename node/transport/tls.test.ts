import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from '../raft/types.js';
import type { PeerTlsOptions } from './options.js';
import { PeerTransport } from './peer-transport.js';
import { captureLogs, everyMessageType, normalizeBytes, waitFor } from './test-support.js';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface Pki {
  dir: string;
  /** A node certificate (serverAuth + clientAuth, SAN 127.0.0.1) signed by the named CA. */
  node(name: string, ca: 'ca1' | 'ca2'): PeerTlsOptions;
}

function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-transport-tls-'));
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  let serial = 1000;
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca1', 'ca2']) {
    run(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${ca}.key`,
      '-out',
      `${ca}.crt`,
      '-days',
      '1',
      '-subj',
      `/CN=${ca}`,
    );
  }
  writeFileSync(
    join(dir, 'node.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n',
  );
  return {
    dir,
    node(name, ca) {
      run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      const sign = ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`];
      run(
        ...sign,
        '-set_serial',
        String(++serial),
        '-days',
        '1',
        '-extfile',
        'node.ext',
        '-out',
        `${name}.crt`,
      );
      return {
        cert: readFileSync(join(dir, `${name}.crt`)),
        key: readFileSync(join(dir, `${name}.key`)),
        // Everyone trusts ca1 only: ca2's certificates are strangers.
        ca: readFileSync(join(dir, 'ca1.crt')),
      };
    },
  };
}

const opensslMissing = !hasOpenssl();
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function startNode(selfId: string, tls: PeerTlsOptions) {
  const inbox: Message[] = [];
  const logs = captureLogs();
  const transport = new PeerTransport({
    selfId,
    tls,
    onMessage: (m) => inbox.push(m),
    logger: logs.logger,
    backoffMsMin: 10,
    backoffMsMax: 50,
  });
  cleanups.push(() => transport.close());
  const info = await transport.listen('127.0.0.1', 0);
  return { transport, inbox, logs, address: `127.0.0.1:${info.port}` };
}

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
