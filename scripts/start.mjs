#!/usr/bin/env node
// `npm start`: build Conflux and run a local three-node cluster on loopback, data under
// .conflux/ (kept between runs), until Ctrl-C. Ports start at CONFLUX_BASE_PORT (default 7101):
// Raft on BASE+i, client API on BASE+100+i.

import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const base = Number(process.env.CONFLUX_BASE_PORT ?? 7101);
const dataRoot = join(root, '.conflux');

console.log('Building Conflux…');
const build = spawnSync(
  process.execPath,
  [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')],
  {
    stdio: 'inherit',
  },
);
if (build.status !== 0) process.exit(build.status ?? 1);

const ids = ['n1', 'n2', 'n3'];
const member = (id, i) => ({
  id,
  raft: `127.0.0.1:${base + i}`,
  api: `127.0.0.1:${base + 100 + i}`,
  admin: `127.0.0.1:${base + 200 + i}`,
});
const members = ids.map(member);
const initial = members.map((m) => `${m.id}=${m.raft}/${m.api}/${m.admin}`).join(',');
mkdirSync(dataRoot, { recursive: true });

const children = members.map((m) => {
  const log = createWriteStream(join(dataRoot, `${m.id}.log`), { flags: 'a' });
  const child = spawn(
    process.execPath,
    [
      join(root, 'dist/node/main.js'),
      '--dev-insecure',
      '--node-id',
      m.id,
      '--data-dir',
      join(dataRoot, m.id),
      '--api-addr',
      m.api,
      '--raft-addr',
      m.raft,
      '--admin-addr',
      m.admin,
      '--initial-cluster',
      initial,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  child.on('exit', (code, signal) => {
    if (!stopping) console.error(`${m.id} exited (${signal ?? code}); see .conflux/${m.id}.log`);
  });
  return child;
});

let stopping = false;
async function ready() {
  for (let i = 0; i < 200; i++) {
    const states = await Promise.all(
      members.map((m) =>
        fetch(`http://${m.api}/readyz`).then(
          (r) => r.json(),
          () => null,
        ),
      ),
    );
    if (states.every((s) => s?.ready)) return states;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the cluster did not become ready; see the logs in .conflux/');
}

ready().then(
  (states) => {
    const leader = states.find((s) => s.state === 'leader')?.node;
    console.log('\nConflux is running: a three-node cluster on this machine (plain HTTP, loopback only).\n');
    for (const m of members) {
      console.log(
        `  ${m.id}${m.id === leader ? ' (leader)' : '         '}  client API http://${m.api}   admin http://${m.admin}   metrics http://${m.api}/metrics`,
      );
    }
    console.log(`\n  data and logs: ${dataRoot}`);
    console.log('\nTry:');
    console.log(`  curl -X PUT http://${members[0].api}/v1/kv/app/greeting -d 'hello'`);
    console.log(`  curl http://${members[1].api}/v1/kv/app/greeting`);
    console.log(`  curl http://${members[0].admin}/_cluster/leader`);
    console.log(`  curl -N -H 'accept: text/event-stream' 'http://${members[2].api}/v1/watch?prefix=app/'`);
    console.log('\nCtrl-C stops the cluster.');
  },
  (err) => {
    console.error(err.message);
    shutdown(1);
  },
);

function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  console.log('\nStopping…');
  let left = children.length;
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) left--;
    else c.once('exit', () => --left === 0 && process.exit(code));
    c.kill('SIGTERM');
  }
  if (left === 0) process.exit(code);
}
process.on('SIGINT', () => shutdown());
process.on('SIGTERM', () => shutdown());
