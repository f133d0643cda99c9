// Writing a bundle of PEM files: `ca.crt`/`ca.key`, `<node>.crt`/`<node>.key` per node and
// `<client>.crt`/`<client>.key` per client (for example `admin`).
//
// Invariants:
// - A private key file is 0600 from the moment it exists: it is created under a temporary name
//   with that mode (umask can only remove bits) and renamed into place.
// - Every file ends with a newline: concatenated CA files (a rotation's trust bundle) stay valid PEM.
// - Nothing is overwritten unless `overwrite` is set: replacing ca.key silently would orphan every
//   certificate an existing cluster uses. All names are checked before the first file is written.

import { randomBytes } from 'node:crypto';
import { access, chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CertError, invalid } from './errors.js';
import type { CertKeyPair } from './generate.js';
import { isFileStem } from './names.js';

export const KEY_FILE_MODE = 0o600;
export const CERT_FILE_MODE = 0o644;

export interface CertBundle {
  ca: CertKeyPair;
  /** Keyed by node id. */
  nodes: Record<string, CertKeyPair>;
  /** Keyed by file stem, e.g. `{ admin: ... }`. */
  clients?: Record<string, CertKeyPair>;
}

export interface WrittenFile {
  path: string;
  kind: 'certificate' | 'key';
  mode: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** PEM text ends with a newline, so that `cat a.crt b.crt` makes a bundle OpenSSL reads. */
export function withNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

async function writeAtomically(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export async function writeCertBundle(
  dir: string,
  bundle: CertBundle,
  options: { overwrite?: boolean } = {},
): Promise<WrittenFile[]> {
  const entries: [string, CertKeyPair][] = [['ca', bundle.ca]];
  const stems = new Set(['ca']);
  for (const [stem, pair] of [...Object.entries(bundle.nodes), ...Object.entries(bundle.clients ?? {})]) {
    if (!isFileStem(stem)) throw invalid(`not usable as a file name: ${JSON.stringify(stem)}`);
    if (stems.has(stem)) throw invalid(`two entries would both write ${stem}.crt`);
    stems.add(stem);
    entries.push([stem, pair]);
  }

  const planned: (WrittenFile & { data: string })[] = entries.flatMap(([stem, pair]) => [
    {
      path: join(dir, `${stem}.crt`),
      kind: 'certificate' as const,
      mode: CERT_FILE_MODE,
      data: withNewline(pair.certPem),
    },
    {
      path: join(dir, `${stem}.key`),
      kind: 'key' as const,
      mode: KEY_FILE_MODE,
      data: withNewline(pair.keyPem),
    },
  ]);

  await mkdir(dir, { recursive: true });
  if (!options.overwrite) {
    for (const file of planned) {
      if (await exists(file.path)) {
        throw new CertError('CERT_FILE_EXISTS', `${file.path} exists; refusing to overwrite it`);
      }
    }
  }
  for (const file of planned) await writeAtomically(file.path, file.data, file.mode);
  return planned.map(({ path, kind, mode }) => ({ path, kind, mode }));
}
