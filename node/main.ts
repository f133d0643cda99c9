#!/usr/bin/env node
// conflux-node: one Conflux node. Configuration by flags or CONFLUX_* environment variables
// (see the README); a bad setting stops it at once with a message naming the setting.

import { pino } from 'pino';
import { ConfigError, loadConfig, usage } from './config.js';
import { startNode } from './server.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage());
    return;
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(argv, process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`conflux-node: ${err.message}\n(conflux-node --help lists every setting)\n`);
    process.exit(2);
  }
  const logger = pino({ level: config.logLevel, base: { service: 'conflux-node' } });
  if (config.devInsecure)
    logger.warn(
      '--dev-insecure: plain HTTP and TCP without TLS, loopback only; never use this in production',
    );
  const node = await startNode(config, logger);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    node.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e.code === 'EADDRINUSE') {
    // One line, naming the address: the usual cause is another program (or node) on the port.
    process.stderr.write(
      `conflux-node: listen EADDRINUSE: address already in use ${e.address}:${e.port} (another program holds the port)\n`,
    );
  } else process.stderr.write(`conflux-node: ${e.stack ?? String(err)}\n`);
  process.exit(1);
});
