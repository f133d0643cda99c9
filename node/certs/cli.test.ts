// The certificate CLI and writeCertBundle: files, modes, refusals. One test runs the real entry
// point through tsx; the rest call runCli in process.

import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { writeCertBundle } from './bundle.js';
import { parseCliArgs } from './cli-args.js';
import { CertError } from './errors.js';
import { generateCa } from './generate.js';
import { isAdminCertificate } from './roles.js';
import { runCli } from './run-cli.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-certs-'));
  dirs.push(dir);
  return dir;
}

function captureIo() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (l: string) => out.push(l), stderr: (l: string) => err.push(l) } };
}

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

describe('certs CLI', () => {
  it('writes the CA, one pair per node and the admin pair; keys are 0600', async () => {
    const dir = join(await tempDir(), 'pki');
    const { out, err, io } = captureIo();
    const code = await runCli(
      ['--out', dir, '--nodes', 'n1,n2,n3', '--ip', '10.0.0.5', '--dns', 'db.example'],
      io,
    );
    expect(err).toEqual([]);
    expect(code).toBe(0);
    const stems = ['ca', 'n1', 'n2', 'n3', 'admin'];
    expect(out).toHaveLength(stems.length * 2);
    for (const stem of stems) {
      expect(await mode(join(dir, `${stem}.key`))).toBe(0o600);
      expect(await mode(join(dir, `${stem}.crt`))).toBe(0o644);
      expect(out).toContain(`wrote ${join(dir, `${stem}.key`)} (key, mode 600)`);
    }
    const ca = new X509Certificate(await readFile(join(dir, 'ca.crt')));
    const n2 = new X509Certificate(await readFile(join(dir, 'n2.crt')));
    expect(n2.checkIssued(ca)).toBe(true);
    expect(n2.subjectAltName).toBe(
      'DNS:n2, DNS:localhost, DNS:db.example, IP Address:127.0.0.1, IP Address:10.0.0.5',
    );
    expect(isAdminCertificate(await readFile(join(dir, 'admin.crt'), 'utf8'))).toBe(true);
  });

  it('refuses to overwrite an existing bundle unless --force', async () => {
    const dir = await tempDir();
    const { io } = captureIo();
    expect(await runCli(['--out', dir, '--nodes', 'a'], io)).toBe(0);
    const caBefore = await readFile(join(dir, 'ca.crt'), 'utf8');
    const second = captureIo();
    expect(await runCli(['--out', dir, '--nodes', 'a'], second.io)).toBe(1);
    expect(second.err.join('\n')).toMatch(/exists; refusing to overwrite/);
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(caBefore);
    expect(await runCli(['--out', dir, '--nodes', 'a', '--force'], captureIo().io)).toBe(0);
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).not.toBe(caBefore);
    expect(await mode(join(dir, 'a.key'))).toBe(0o600);
  });

  it.each([
    [[], /--out DIR is required/],
    [['--out', 'x'], /--nodes/],
    [['--out', 'x', '--nodes', ''], /--nodes/],
    [['--out', 'x', '--nodes', 'a,a'], /twice/],
    [['--out', 'x', '--nodes', 'a,../b'], /invalid node id/],
    [['--out', 'x', '--nodes', 'ca'], /reserved/],
    [['--out', 'x', '--nodes', 'admin'], /reserved/],
    [['--out', 'x', '--nodes', 'a', '--ip', 'nope'], /--ip/],
    [['--out', 'x', '--nodes', 'a', '--dns', 'a b'], /--dns/],
    [['--out', 'x', '--nodes', 'a', '--days', '0'], /--days/],
    [['--out', 'x', '--nodes', 'a', '--days', '1.5'], /--days/],
    [['--out', 'x', '--nodes', 'a', '--bogus'], /bogus/],
    [['--out', 'x', '--nodes', 'a', 'extra'], /extra|positional/i],
  ])('refuses %j with exit 2 and a message', async (argv, message) => {
    const { out, err, io } = captureIo();
    expect(await runCli(argv, io)).toBe(2);
    expect(out).toEqual([]);
    expect(err[0]).toMatch(/^error: /);
    expect(err[0]).toMatch(message);
  });

  it('parses repeatable and comma-separated --ip/--dns, with defaults', () => {
    expect(
      parseCliArgs(['--out', 'd', '--nodes', 'a, b', '--ip', '10.0.0.1,::1', '--ip', '127.0.0.1']),
    ).toEqual({
      kind: 'run',
      options: {
        outDir: 'd',
        nodeIds: ['a', 'b'],
        ipAddresses: ['127.0.0.1', '10.0.0.1', '::1'],
        dnsNames: [],
        validDays: 365,
        force: false,
      },
    });
    expect(parseCliArgs(['--help'])).toEqual({ kind: 'help' });
  });

  it('`conflux certs --help` names the command users type', async () => {
    const run = promisify(execFile);
    const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');
    const conflux = join(import.meta.dirname, '..', '..', 'operator', 'cli.ts');
    const help = await run(tsx, [conflux, 'certs', '--help']);
    expect(help.stdout).toMatch(/^usage: conflux certs --out DIR --nodes/);
    expect(help.stdout).not.toContain('tsx');
  }, 30_000);

  it('runs as `tsx node/certs/cli.ts`: exit 0 with files, exit 2 on bad arguments', async () => {
    const dir = await tempDir();
    const run = promisify(execFile);
    const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');
    const cli = join(import.meta.dirname, 'cli.ts');
    const ok = await run(tsx, [cli, '--out', dir, '--nodes', 'n1', '--days', '2']);
    expect(ok.stdout).toContain(`wrote ${join(dir, 'n1.key')}`);
    expect(await mode(join(dir, 'n1.key'))).toBe(0o600);
    const bad = await run(tsx, [cli, '--nodes', 'n1']).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--out DIR is required/);
  }, 30_000);
});

describe('CA files concatenated by hand (the rotation runbook)', () => {
  it('`cat old/ca.crt new/ca.crt` is a bundle OpenSSL and Node read both certificates of', async () => {
    const run = promisify(execFile);
    const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');
    const conflux = join(import.meta.dirname, '..', '..', 'operator', 'cli.ts');
    const [oldDir, newDir] = [await tempDir(), await tempDir()];
    await Promise.all(
      [oldDir, newDir].map((dir) =>
        run(tsx, [conflux, 'certs', '--out', dir, '--nodes', 'n1', '--days', '2']),
      ),
    );
    for (const name of ['ca.crt', 'ca.key', 'n1.crt', 'n1.key', 'admin.crt', 'admin.key'])
      expect((await readFile(join(oldDir, name), 'utf8')).endsWith('\n'), name).toBe(true);
    const bundle = join(oldDir, 'bundle.crt');
    await run('sh', ['-c', `cat "${oldDir}/ca.crt" "${newDir}/ca.crt" > "${bundle}"`]);

    // OpenSSL: every certificate of the file, and the first one alone.
    const p7 = await run('sh', [
      '-c',
      `openssl crl2pkcs7 -nocrl -certfile "${bundle}" | openssl pkcs7 -print_certs -noout`,
    ]);
    expect(p7.stdout.match(/^subject=/gm)).toHaveLength(2);
    await run('openssl', ['x509', '-in', bundle, '-noout', '-subject']);

    // Node: each PEM block parses, and they are the two CAs in file order.
    const text = await readFile(bundle, 'utf8');
    const blocks = text.match(/^-----BEGIN CERTIFICATE-----\n[\s\S]+?\n-----END CERTIFICATE-----$/gm) ?? [];
    expect(blocks).toHaveLength(2);
    const fingerprints = blocks.map((b) => new X509Certificate(b).fingerprint256);
    const expected = await Promise.all(
      [oldDir, newDir].map(
        async (d) => new X509Certificate(await readFile(join(d, 'ca.crt'))).fingerprint256,
      ),
    );
    expect(fingerprints).toEqual(expected);
  }, 30_000);
});

describe('writeCertBundle', () => {
  it('keeps a key 0600 even when it replaces a world-readable file', async () => {
    const dir = await tempDir();
    const ca = await generateCa({ commonName: 'ca', validDays: 1 });
    await writeFile(join(dir, 'ca.key'), 'old', { mode: 0o644 });
    await writeCertBundle(dir, { ca, nodes: {} }, { overwrite: true });
    expect(await mode(join(dir, 'ca.key'))).toBe(0o600);
    expect(await readFile(join(dir, 'ca.key'), 'utf8')).toBe(`${ca.keyPem.trimEnd()}\n`);
  });

  it('checks every name before writing anything', async () => {
    const dir = await tempDir();
    const ca = await generateCa({ commonName: 'ca', validDays: 1 });
    await expect(writeCertBundle(dir, { ca, nodes: { ca } })).rejects.toThrow(CertError);
    await expect(writeCertBundle(dir, { ca, nodes: { 'x/y': ca } })).rejects.toThrow(/file name/);
    await expect(writeCertBundle(dir, { ca, nodes: { a: ca }, clients: { a: ca } })).rejects.toThrow(
      /twice|both/,
    );
    await expect(stat(join(dir, 'ca.key'))).rejects.toThrow();
  });
});
