// npm run generate: writes the CRDs and RBAC manifests generated from operator/api.
// With --check it writes nothing and exits 1 when a file is missing or stale.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderManifests } from '../operator/api/manifests.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');

async function current(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

let stale = 0;
for (const [rel, content] of Object.entries(renderManifests())) {
  const path = join(root, rel);
  if ((await current(path)) === content) {
    console.log(`unchanged ${rel}`);
    continue;
  }
  stale++;
  if (check) {
    console.log(`stale     ${rel}`);
    continue;
  }
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  console.log(`wrote     ${rel}`);
}
if (check && stale > 0) {
  console.error(`${stale} generated file(s) out of date: run npm run generate`);
  process.exit(1);
}
