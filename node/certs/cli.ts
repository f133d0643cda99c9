// Entry point of `conflux certs` on its own (`npx tsx node/certs/cli.ts`, the same arguments):
// `--out DIR --nodes n1,n2,n3 [--ip ..] [--dns ..] [--days N]`.

import { runCli } from './run-cli.js';

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
});
