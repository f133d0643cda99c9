// Each builder of startNode on its own: the durable core without any HTTP, the client API over a
// core, and the admin services and listener over those, on loopback with plain HTTP.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, sleep } from '../../e2e/support/process-cluster.js';
import { loadConfig, type NodeConfig } from '../config.js';
import { NodeMetrics } from '../metrics.js';
import { buildAdminServices } from './admin-services.js';
import { startClientApi } from './client-api.js';
import { type NodeCore, startCore } from './core.js';
import { startAdminApi } from './listeners.js';

const log = pino({ level: 'silent' });
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function config(id: string, dataDir?: string): Promise<NodeConfig> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'conflux-wiring-'));
  dirs.push(dir);
  const addr = async () => `127.0.0.1:${await freePort()}`;
  const args = ['--dev-insecure', '--node-id', id, '--data-dir', dir, '--tick-ms', '10'];
  args.push('--api-addr', await addr(), '--raft-addr', await addr(), '--admin-addr', await addr());
  return loadConfig(args, {});
}

/** Initializes a one-member cluster and waits until the node leads it. */
async function leadAlone(core: NodeCore): Promise<void> {
  await core.raft.initialize([core.id], {
    nodes: { [core.id]: core.self },
    cluster: { id: 'c-wiring', restoredFrom: null },
  });
  const deadline = Date.now() + 10_000;
  while (core.raft.metrics().currentLeader !== core.id) {
    if (Date.now() > deadline) throw new Error('no leader');
    await sleep(10);
  }
}

describe('startCore', () => {
  it('opens storage and starts Raft without any HTTP, and keeps what it persisted', async () => {
    const first = await config('w1');
    const metrics = new NodeMetrics(false);
    const core = await startCore(first, { id: 'w1', log, metrics });
    await leadAlone(core);
    const term = core.raft.metrics().currentTerm;
    expect(term).toBeGreaterThan(0);
    await core.stop();

    const again = await startCore(await config('w1', first.dataDir), { id: 'w1', log, metrics });
    expect(again.raft.metrics().currentTerm).toBeGreaterThanOrEqual(term);
    expect(again.raft.metrics().membership.cluster?.id).toBe('c-wiring');
    await again.stop();
  });
});

describe('startClientApi and the admin services over a core', () => {
  it('serves a write and a read, and the status documents name this node as leader', async () => {
    const c = await config('w2');
    const metrics = new NodeMetrics(false);
    const core = await startCore(c, { id: 'w2', log, metrics });
    const client = await startClientApi(c, core, { metrics, log });
    try {
      await leadAlone(core);
      const put = await fetch(`${client.apiUrl}/v1/kv/app/x`, { method: 'PUT', body: 'hello' });
      expect(put.status).toBe(200);
      const got = await fetch(`${client.apiUrl}/v1/kv/app/x?raw=1`);
      expect(await got.text()).toBe('hello');

      const services = buildAdminServices(c, core, { metrics, log, quota: client.quota });
      expect(services.context.internalStatus()).toMatchObject({ node_id: 'w2' });
      const { admin, adminUrl } = await startAdminApi(c, services, { log });
      try {
        const status = (await (await fetch(`${adminUrl}/_cluster/status`)).json()) as Record<string, unknown>;
        expect(status).toMatchObject({ cluster_id: 'c-wiring', leader_id: 'w2' });
      } finally {
        await admin.close();
      }
    } finally {
      await client.api.close();
      await core.stop();
    }
  });
});
