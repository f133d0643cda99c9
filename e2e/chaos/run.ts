// npm run chaos -- --runs N --seed S --seconds T --nodes 3|5 --clients C
//
// Jepsen-style fault injection on real conflux-node processes in network namespaces (needs root,
// iproute2 and nftables). Each run i uses seed S+i; a failing run prints the command that replays
// its schedule. The last line sums up all runs; the exit code is 1 when anything was lost, any
// history was not linearizable, or the cluster did not recover.

import { Command } from 'commander';
import { z } from 'zod';
import { type RunResult, runOnce, teardownActive } from './run-once.js';

const optionsSchema = z.object({
  runs: z.coerce.number().int().min(1),
  seed: z.coerce
    .number()
    .int()
    .min(0)
    .max(2 ** 31),
  seconds: z.coerce.number().int().min(1),
  nodes: z.coerce.number().pipe(z.union([z.literal(3), z.literal(5)])),
  clients: z.coerce.number().int().min(1).max(64),
  net: z.coerce.number().int().min(1).max(250),
  reads: z.enum(['linearizable', 'serializable']),
});

const program = new Command('chaos')
  .description('fault injection on real Conflux processes in network namespaces')
  .option('--runs <n>', 'how many runs', '1')
  .option('--seed <s>', 'seed of the first run (run i uses seed + i)', String(Date.now() % 2 ** 31))
  .option('--seconds <t>', 'time budget of the fault schedule per run', '60')
  .option('--nodes <n>', 'cluster size: 3 or 5', '3')
  .option('--clients <c>', 'concurrent clients', '4')
  .option('--net <n>', 'subnet 10.77.<n>.0/24 and name prefix cfxc<n>-', '1')
  .option(
    '--reads <consistency>',
    'serializable reads may be stale: checks that the checker notices',
    'linearizable',
  );

function replay(r: RunResult, o: z.infer<typeof optionsSchema>): string {
  const reads = o.reads === 'linearizable' ? '' : ` --reads ${o.reads}`;
  return `npm run chaos -- --runs 1 --seed ${r.seed} --seconds ${o.seconds} --nodes ${o.nodes} --clients ${o.clients}${reads}`;
}

async function main(): Promise<void> {
  program.parse();
  const parsed = optionsSchema.safeParse(program.opts());
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ');
    process.stderr.write(`chaos: ${msg}\n`);
    process.exit(2);
  }
  const o = parsed.data;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      process.stderr.write(`chaos: ${sig}, tearing down\n`);
      teardownActive();
      process.exit(130);
    });
  }
  let faults = 0;
  let writes = 0;
  let lost = 0;
  let anomalies = 0;
  let failedRuns = 0;
  const t0 = Date.now();
  for (let i = 0; i < o.runs; i++) {
    const seed = o.seed + i;
    console.log(`chaos: run ${i + 1}/${o.runs}, seed ${seed}`);
    const r = await runOnce({
      seed,
      seconds: o.seconds,
      nodes: o.nodes as 3 | 5,
      clients: o.clients,
      net: o.net,
      readConsistency: o.reads,
      log: (line) => console.log(`  ${line}`),
    });
    faults += r.faults.length;
    writes += r.counters.acknowledged;
    lost += r.lost;
    anomalies += r.anomalies;
    const ineffective = r.faults.filter((f) => !f.effective).length;
    const reasons = [...r.counters.reasons].map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(
      `  seed ${seed}: ${r.faults.length} faults (${ineffective} not shown), ${r.operations} operations, ` +
        `${r.counters.acknowledged} acknowledged writes, ${r.counters.unknown} unknown, ` +
        `${r.counters.refused} refused (failed calls: ${reasons || 'none'}), ${r.lost} lost, ` +
        `${r.anomalies} anomalies, ` +
        `${(r.durationMs / 1000).toFixed(0)} s`,
    );
    for (const d of r.details) console.log(`  ${d}`);
    if (r.lost > 0 || r.anomalies > 0) {
      failedRuns += 1;
      console.log(`  FAILED: seed ${seed}; node logs in ${r.dir}`);
      console.log(`  replay: ${replay(r, o)}`);
    }
  }
  console.log(`chaos: total ${((Date.now() - t0) / 1000).toFixed(0)} s, ${failedRuns} failed run(s)`);
  console.log(
    `chaos: ${o.runs} runs, ${faults} faults, ${writes} acknowledged writes, ${lost} lost, ${anomalies} anomalies`,
  );
  process.exit(failedRuns > 0 ? 1 : 0);
}

main().catch((err: unknown) => {
  teardownActive();
  process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
