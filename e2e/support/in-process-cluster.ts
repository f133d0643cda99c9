// Test support: a cluster of nodes inside the test process (startNode), each with free ports and
// its own data directory, formed from a static initial cluster. Plain HTTP on loopback unless the
// caller passes TLS flags.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../node/config.js';
import { type RunningNode, startNode } from '../../node/server.js';
import { freePort, sleep } from './process-cluster.js';

export interface InProcessCluster {
  dir: string;
  nodes: RunningNode[];
  ports: { api: number; raft: number; admin: number }[];
  leader(): RunningNode | undefined;
  stop(): Promise<void>;
}

export interface InProcessOptions {
  /** More flags for one node (TLS files, limits...). */
  args?: (id: string, dir: string) => string[];
  /** Without it every node runs --dev-insecure. */
  tls?: boolean;
  tickMs?: number;
  dir?: string;
}

export interface NodeAddresses {
  api_address: string;
  raft_address: string;
  admin_address: string;
}

/**
 * One node with free ports (or `known` ones, to restart it where it was) and no cluster formation
 * flags: it waits to be initialized, restored or added.
 */
export async function startPristine(
  id: string,
  dir: string,
  extra: string[] = [],
  known?: NodeAddresses,
): Promise<RunningNode & { addresses: NodeAddresses }> {
  const addresses = known ?? {
    api_address: `127.0.0.1:${await freePort()}`,
    raft_address: `127.0.0.1:${await freePort()}`,
    admin_address: `127.0.0.1:${await freePort()}`,
  };
  const args = ['--dev-insecure', '--node-id', id, '--data-dir', join(dir, id), '--tick-ms', '10'];
  args.push('--api-addr', addresses.api_address, '--raft-addr', addresses.raft_address);
  args.push('--admin-addr', addresses.admin_address, ...extra);
  const node = await startNode(loadConfig(args, {}), pino({ level: 'silent' }));
  return Object.assign(node, { addresses });
}

export async function startInProcess(ids: string[], opts: InProcessOptions = {}): Promise<InProcessCluster> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'conflux-test-'));
  const ports = await Promise.all(
    ids.map(async () => ({ api: await freePort(), raft: await freePort(), admin: await freePort() })),
  );
  const initial = ids
    .map(
      (id, i) => `${id}=127.0.0.1:${ports[i]?.raft}/127.0.0.1:${ports[i]?.api}/127.0.0.1:${ports[i]?.admin}`,
    )
    .join(',');
  const nodes: RunningNode[] = [];
  for (const [i, id] of ids.entries()) {
    const p = ports[i] as { api: number; raft: number; admin: number };
    const args = [...(opts.tls ? [] : ['--dev-insecure']), '--node-id', id, '--data-dir', join(dir, id)];
    args.push(
      '--api-addr',
      `127.0.0.1:${p.api}`,
      '--raft-addr',
      `127.0.0.1:${p.raft}`,
      '--admin-addr',
      `127.0.0.1:${p.admin}`,
    );
    args.push(
      '--initial-cluster',
      initial,
      '--tick-ms',
      String(opts.tickMs ?? 10),
      ...(opts.args?.(id, dir) ?? []),
    );
    nodes.push(await startNode(loadConfig(args, {}), pino({ level: 'silent' })));
  }
  const leader = () => nodes.find((n) => n.raft.metrics().state === 'leader');
  for (let i = 0; i < 500 && !leader(); i++) await sleep(10);
  return {
    dir,
    nodes,
    ports,
    leader,
    async stop() {
      for (const n of nodes) await n.stop();
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
