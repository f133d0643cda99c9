#!/usr/bin/env node
// The `conflux` CLI (docs/ARCHITECTURE.md §9): `npx conflux status`, `kv get|put|del|ls|watch`, `scale N`,
// `leader [transfer [ID]]`, `backup`, `restore URI`, `nodes add|remove`, `cluster get|apply|patch|delete|events`
// (npm start's ConfluxCluster), `certs`. The commands live
// in operator/cli/.

import { runConflux } from './cli/program.js';

const controller = new AbortController();
process.once('SIGINT', () => {
  controller.abort();
  process.exit(130);
});

process.exitCode = await runConflux(
  process.argv.slice(2),
  {
    stdout: (text) => process.stdout.write(`${text}\n`),
    stderr: (text) => process.stderr.write(`${text}\n`),
  },
  { signal: controller.signal },
);
