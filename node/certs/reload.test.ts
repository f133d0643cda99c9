import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CertKeyPair, generateCa, generateClientCert, generateNodeCert } from './generate.js';
import { TlsReloader } from './reload.js';
import { writeSecretDir } from './test-support.js';
import { parseTlsMaterial, splitPemCertificates } from './tls-material.js';

const logger = pino({ level: 'silent' });
const names = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };

let caA: CertKeyPair;
let caB: CertKeyPair;
let leafA1: CertKeyPair;
let leafA2: CertKeyPair;
let leafB: CertKeyPair;
const dirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-reload-'));
  dirs.push(dir);
  return dir;
}

beforeAll(async () => {
  [caA, caB] = await Promise.all([
    generateCa({ commonName: 'ca-a', validDays: 30 }),
    generateCa({ commonName: 'ca-b', validDays: 30 }),
  ]);
  [leafA1, leafA2, leafB] = await Promise.all([
    generateNodeCert(caA, { nodeId: 'n1', ...names, validDays: 1 }),
    generateNodeCert(caA, { nodeId: 'n1', ...names, validDays: 2 }),
    generateNodeCert(caB, { nodeId: 'n1', ...names, validDays: 2 }),
  ]);
});

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const secret = (leaf: CertKeyPair, ...cas: CertKeyPair[]) => ({
  'tls.crt': leaf.certPem,
  'tls.key': leaf.keyPem,
  'ca.crt': cas.map((c) => c.certPem).join(''),
});

async function reloaderIn(dir: string, files: Record<string, string>): Promise<TlsReloader> {
  await writeSecretDir(dir, files);
  return new TlsReloader(
    { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') },
    { intervalMs: 10_000, logger },
  );
}

const fingerprint = (pem: string) =>
  parseTlsMaterial({
    cert: Buffer.from(pem),
    key: Buffer.from(leafKeyOf(pem)),
    ca: Buffer.from(caA.certPem + caB.certPem),
  }).summary.cert.fingerprint_sha256;
function leafKeyOf(pem: string): string {
  return [leafA1, leafA2, leafB].find((l) => l.certPem === pem)?.keyPem ?? '';
}

describe('parseTlsMaterial', () => {
  it('accepts a matching set and trusts every CA of a bundle', () => {
    const m = parseTlsMaterial({
      cert: Buffer.from(leafB.certPem),
      key: Buffer.from(leafB.keyPem),
      ca: Buffer.from(caA.certPem + caB.certPem),
    });
    expect(m.ca).toHaveLength(2);
    expect(m.summary.ca.map((c) => c.subject)).toEqual(['CN=ca-a', 'CN=ca-b']);
    expect(m.summary.cert).toMatchObject({ subject: 'CN=n1, O=conflux-node', issuer: 'CN=ca-b' });
    expect(m.summary.cert.fingerprint_sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    [
      'a key of another certificate',
      () => ({ cert: leafA1.certPem, key: leafA2.keyPem, ca: caA.certPem }),
      /key does not belong/,
    ],
    [
      'a certificate from a CA outside the bundle',
      () => ({ cert: leafB.certPem, key: leafB.keyPem, ca: caA.certPem }),
      /not issued by any CA in the bundle/,
    ],
    [
      'an empty CA file',
      () => ({ cert: leafA1.certPem, key: leafA1.keyPem, ca: '' }),
      /CA bundle holds no PEM certificate/,
    ],
    [
      'a leaf in the CA bundle',
      () => ({ cert: leafA1.certPem, key: leafA1.keyPem, ca: caA.certPem + leafA2.certPem }),
      /certificate 2 of the CA bundle .* is not a CA/,
    ],
    [
      'a truncated certificate',
      () => ({ cert: leafA1.certPem.slice(0, 200), key: leafA1.keyPem, ca: caA.certPem }),
      /holds no PEM certificate/,
    ],
    [
      'a truncated key',
      () => ({ cert: leafA1.certPem, key: leafA1.keyPem.slice(0, 60), ca: caA.certPem }),
      /not a readable private key/,
    ],
  ])('refuses %s', (_, files, reason) => {
    const f = files();
    expect(() =>
      parseTlsMaterial({ cert: Buffer.from(f.cert), key: Buffer.from(f.key), ca: Buffer.from(f.ca) }),
    ).toThrow(reason);
  });

  it('splits a bundle into its certificates', () => {
    expect(splitPemCertificates(`junk\n${caA.certPem}\n${caB.certPem}`)).toHaveLength(2);
  });
});

describe('TlsReloader', () => {
  it('refuses to start on unusable files', async () => {
    const dir = tempDir();
    await expect(reloaderIn(dir, { ...secret(leafA1, caA), 'tls.key': leafA2.keyPem })).rejects.toThrow(
      /key does not belong/,
    );
  });

  it('applies files swapped in the way the kubelet does, once per change', async () => {
    const dir = tempDir();
    const reloader = await reloaderIn(dir, secret(leafA1, caA));
    const seen: string[] = [];
    reloader.onChange((m) => seen.push(m.summary.cert.fingerprint_sha256));
    expect(await reloader.check()).toBe('unchanged');

    await writeSecretDir(dir, secret(leafA2, caA, caB));
    expect(await reloader.check()).toBe('applied');
    expect(await reloader.check()).toBe('unchanged');
    expect(seen).toEqual([fingerprint(leafA2.certPem)]);
    expect(reloader.status()).toMatchObject({ reloads: 1, reload_failures: 0, last_error: null });
    expect(reloader.status().ca).toHaveLength(2);
    expect(reloader.current.cert.toString()).toBe(leafA2.certPem);
  });

  it('keeps the previous material when the new files do not fit together, until they are fixed', async () => {
    const dir = tempDir();
    const reloader = await reloaderIn(dir, secret(leafA1, caA));
    const seen: string[] = [];
    reloader.onChange((m) => seen.push(m.summary.cert.fingerprint_sha256));

    // The new certificate with the old key: a Secret caught between two writes.
    await writeSecretDir(dir, { ...secret(leafB, caA, caB), 'tls.key': leafA1.keyPem });
    expect(await reloader.check()).toBe('refused');
    expect(await reloader.check()).toBe('unchanged'); // the same bad files are judged once
    expect(reloader.current.cert.toString()).toBe(leafA1.certPem);
    expect(reloader.status()).toMatchObject({ reloads: 0, reload_failures: 1 });
    expect(reloader.status().last_error).toMatch(/key does not belong/);

    // A CA bundle that does not parse.
    await writeSecretDir(dir, {
      ...secret(leafB, caB),
      'ca.crt': '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
    });
    expect(await reloader.check()).toBe('refused');
    expect(reloader.status().reload_failures).toBe(2);

    await writeSecretDir(dir, secret(leafB, caA, caB));
    expect(await reloader.check()).toBe('applied');
    expect(reloader.status()).toMatchObject({ reloads: 1, reload_failures: 2, last_error: null });
    expect(seen).toEqual([fingerprint(leafB.certPem)]);
  });

  it('a file rewritten in place in two steps is refused while half-written', async () => {
    const dir = tempDir();
    const reloader = await reloaderIn(dir, secret(leafA1, caA));
    writeFileSync(join(dir, '..data', 'tls.crt'), leafA2.certPem); // the key is still the old one
    expect(await reloader.check()).toBe('refused');
    writeFileSync(join(dir, '..data', 'tls.key'), leafA2.keyPem);
    expect(await reloader.check()).toBe('applied');
    expect(reloader.current.cert.toString()).toBe(leafA2.certPem);
  });

  it('a TLS server given the new context presents the new certificate and trusts the new CA', async () => {
    const dir = tempDir();
    const reloader = await reloaderIn(dir, secret(leafA1, caA));
    const m = reloader.current;
    const server = tls.createServer({
      cert: m.cert,
      key: m.key,
      ca: m.ca,
      requestCert: true,
      rejectUnauthorized: true,
    });
    server.on('secureConnection', (s) => s.end('ok'));
    reloader.onChange((next) => server.setSecureContext({ cert: next.cert, key: next.key, ca: next.ca }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const clientB = await generateClientCert(caB, { commonName: 'c', validDays: 1 });
    const connect = (ca: string, client: CertKeyPair) =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca, cert: client.certPem, key: client.keyPem });
        socket.on('secureConnect', () => {
          const fp = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
          socket.on('data', () => {
            socket.destroy();
            resolve(fp);
          });
        });
        socket.on('error', reject);
      });
    try {
      // Before: a client certificate from CA B is refused.
      await expect(connect(caA.certPem + caB.certPem, clientB)).rejects.toThrow();
      await writeSecretDir(dir, secret(leafB, caA, caB));
      expect(await reloader.check()).toBe('applied');
      const fp = await connect(caB.certPem, clientB);
      expect(fp.replaceAll(':', '').toLowerCase()).toBe(fingerprint(leafB.certPem));
    } finally {
      server.close();
    }
  });
});
