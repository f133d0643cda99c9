// Test support: a throwaway PKI made with the openssl CLI (two CAs; node certificates for
// serverAuth and clientAuth with the SANs 127.0.0.1 and localhost).

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerTlsOptions } from '../../node/transport/options.js';

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface Pki {
  dir: string;
  /** A node certificate (serverAuth + clientAuth, SAN 127.0.0.1, O=conflux-node) signed by the named CA. */
  node(name: string, ca: 'ca1' | 'ca2'): PeerTlsOptions;
  /** An administrator's client certificate (O=conflux-admin) signed by ca1. */
  admin(name: string): PeerTlsOptions;
}

export function makePki(): Pki {
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
      return issue(name, ca, 'conflux-node');
    },
    admin(name) {
      return issue(name, 'ca1', 'conflux-admin');
    },
  };

  function issue(name: string, ca: 'ca1' | 'ca2', organization: string): PeerTlsOptions {
    run(
      'req',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/O=${organization}/CN=${name}`,
    );
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
  }
}
