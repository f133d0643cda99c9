#!/usr/bin/env node
// `npm start`: build Conflux, then run the embedded default (operator/local.ts): a local
// three-node cluster kept in shape by the operator's reconciler on this machine, data under
// .conflux/ (kept between runs), until Ctrl-C. Ports start at CONFLUX_BASE_PORT (default 7101):
// Raft on BASE+i, client API on BASE+100+i, admin API on BASE+200+i, the control endpoint on BASE-1.

import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// Another npm start on the same data: say so before rebuilding the code it runs from (operator/local.ts
// checks the lock again, and takes it).
const { values } = parseArgs({ options: { root: { type: 'string', default: '.conflux' } }, strict: false });
const dataDir = resolve(root, String(values.root));
const holder = runningHolder(join(dataDir, 'conflux.lock'));
if (holder) {
  console.error(
    `Conflux is already running on ${dataDir} (pid ${holder}); stop it first (Ctrl-C in its terminal, or kill ${holder}), or give another --root.`,
  );
  process.exit(1);
}

console.log('Building Conflux…');
const build = spawnSync(
  process.execPath,
  [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')],
  { stdio: 'inherit' },
);
if (build.status !== 0) process.exit(build.status ?? 1);

const child = spawn(process.execPath, [join(root, 'dist/operator/local.js'), ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
// Ctrl-C reaches the child through the terminal's process group; pass on a plain SIGTERM too.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

/** The pid in the lock file when it is a live npm start, else undefined. */
function runningHolder(lock) {
  try {
    const pid = Number(readFileSync(lock, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0);
    return /operator[/\\]local\.[jt]s/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8')) ? pid : undefined;
  } catch {
    return undefined;
  }
}
