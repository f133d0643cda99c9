#!/usr/bin/env node
// `npm start`: build Conflux, then run the embedded default (operator/local.ts): a local
// three-node cluster kept in shape by the operator's reconciler on this machine, data under
// .conflux/ (kept between runs), until Ctrl-C. Ports start at CONFLUX_BASE_PORT (default 7101):
// Raft on BASE+i, client API on BASE+100+i, admin API on BASE+200+i, the control endpoint on BASE-1.

import { spawn, spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

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
