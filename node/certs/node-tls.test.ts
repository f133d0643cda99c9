import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { generateCa, generateNodeCert } from './generate.js';
import { adminTlsOf, applyTlsReloads, type NodeTls, nodeTlsOf, openTlsReloader } from './node-tls.js';
import { writeSecretDir } from './test-support.js';

const logger = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'conflux-node-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const names = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };

describe('a node’s TLS reload wiring', () => {
  it('is off without TLS files', () => {
    expect(openTlsReloader({}, logger, new Registry())).toBeUndefined();
  });

  it('exports expiry gauges and reload counters, and applies changes to every target', async () => {
    const ca = await generateCa({ commonName: 'ca', validDays: 10 });
    const adminCa = await generateCa({ commonName: 'admin-ca', validDays: 10 });
    const first = await generateNodeCert(ca, { nodeId: 'n1', ...names, validDays: 1 });
    const second = await generateNodeCert(ca, { nodeId: 'n1', ...names, validDays: 2 });
    const secret = join(dir, 'tls');
    await writeSecretDir(secret, { 'tls.crt': first.certPem, 'tls.key': first.keyPem, 'ca.crt': ca.certPem });
    await writeSecretDir(join(dir, 'admin'), { 'ca.crt': adminCa.certPem });
    const registry = new Registry();
    const reloader = openTlsReloader(
      {
        tlsCert: join(secret, 'tls.crt'),
        tlsKey: join(secret, 'tls.key'),
        tlsCa: join(secret, 'ca.crt'),
        adminCa: join(dir, 'admin', 'ca.crt'),
        tlsReloadIntervalMs: 60_000,
      },
      logger,
      registry,
    );
    if (!reloader) throw new Error('expected a reloader');
    // The admin API trusts the admin CA as well; members and clients only the cluster CA.
    expect(nodeTlsOf(reloader.current).ca).toHaveLength(1);
    expect(adminTlsOf(reloader.current).ca).toHaveLength(2);

    const contexts: string[] = [];
    const server = (name: string) => ({ setSecureContext: () => contexts.push(name), on: () => undefined });
    const applied: NodeTls[] = [];
    const clientTls = nodeTlsOf(reloader.current);
    applyTlsReloads(
      reloader,
      {
        servers: [server('api') as never],
        adminServers: [server('admin') as never],
        transport: { setTls: (t) => applied.push(t) },
        clientTls,
      },
      logger,
    );
    try {
      await writeSecretDir(secret, {
        'tls.crt': second.certPem,
        'tls.key': first.keyPem,
        'ca.crt': ca.certPem,
      });
      expect(await reloader.check()).toBe('refused');
      expect(contexts).toEqual([]);
      await writeSecretDir(secret, {
        'tls.crt': second.certPem,
        'tls.key': second.keyPem,
        'ca.crt': ca.certPem,
      });
      expect(await reloader.check()).toBe('applied');
      expect(contexts).toEqual(['api', 'admin']);
      expect(applied.map((t) => t.cert.toString())).toEqual([second.certPem]);
      expect(clientTls.cert.toString()).toBe(second.certPem); // updated in place

      const text = await registry.metrics();
      expect(text).toMatch(/conflux_tls_reloads_total\{outcome="applied"\} 1/);
      expect(text).toMatch(/conflux_tls_reloads_total\{outcome="refused"\} 1/);
      const notAfter = Date.parse(reloader.status().cert.not_after) / 1000;
      expect(text).toContain(
        `conflux_tls_cert_not_after_seconds{role="cert",fingerprint="${reloader.status().cert.fingerprint_sha256.slice(0, 16)}"} ${notAfter}`,
      );
      expect(text).toMatch(/conflux_tls_cert_not_after_seconds\{role="ca",/);
    } finally {
      reloader.stop();
    }
  });
});
