// The peer-frame fuzzer's long run: `npm run fuzz:peer -- --seconds N [--seed S] [--rounds R]`.
// Each round starts a fresh three-node TLS cluster, fuzzes its peer ports for N seconds under a
// write load (e2e/support/peer-fuzz-run.ts) and checks it; seeds S, S+1, … for R rounds. Prints
// one JSON line per round and a last line `fuzz:peer: R rounds, A attacks, W acknowledged
// writes, F failures`; exits 1 when F > 0, naming the seed that replays each failure.

import { parseArgs } from 'node:util';
import { FuzzCluster } from '../e2e/support/peer-fuzz-cluster.js';
import { fuzzPeers } from '../e2e/support/peer-fuzz-run.js';

const USAGE = 'usage: npm run fuzz:peer -- --seconds N [--seed S] [--rounds R] [--keep]';

function positive(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    console.error(`--${name} must be a positive integer, got ${JSON.stringify(text)}\n${USAGE}`);
    process.exit(2);
  }
  return value;
}

async function main(): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        seconds: { type: 'string' },
        seed: { type: 'string' },
        rounds: { type: 'string' },
        keep: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const seconds = positive('seconds', values.seconds as string | undefined, 60);
  const seed = positive('seed', values.seed as string | undefined, Date.now() % 1_000_000);
  const rounds = positive('rounds', values.rounds as string | undefined, 1);
  let attacks = 0;
  let acknowledged = 0;
  let failed = 0;
  for (let round = 0; round < rounds; round++) {
    const cluster = await FuzzCluster.start();
    try {
      const report = await fuzzPeers(cluster, seed + round, seconds);
      attacks += report.attacks;
      acknowledged += report.acknowledged;
      console.log(JSON.stringify({ ...report, linearizable: report.linearizable.ok }));
      if (report.failures.length > 0) {
        failed += report.failures.length;
        console.error(
          `seed ${report.seed} failed (logs: ${cluster.dir}); replay: npm run fuzz:peer -- --seconds ${seconds} --seed ${report.seed} --keep`,
        );
      }
      await cluster.destroy(Boolean(values.keep) || report.failures.length > 0);
    } catch (err) {
      await cluster.destroy(true);
      throw err;
    }
  }
  console.log(
    `fuzz:peer: ${rounds} rounds, ${attacks} attacks, ${acknowledged} acknowledged writes, ${failed} failures`,
  );
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
