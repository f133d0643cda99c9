// The metrics listener (--metrics-addr): /metrics, /healthz and /readyz in plain HTTP on their own
// address, nothing else there, and /metrics gone from the client port.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcess } from '../../e2e/support/in-process-cluster.js';
import { freePort } from '../../e2e/support/process-cluster.js';
import { loadConfig } from '../config.js';
import type { RunningNode } from '../server.js';

describe('the metrics listener', () => {
  let node: RunningNode;
  let metricsUrl: string;
  let stop: () => Promise<void>;
  beforeAll(async () => {
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}`;
    const cluster = await startInProcess(['solo'], { args: () => ['--metrics-addr', `127.0.0.1:${port}`] });
    node = cluster.nodes[0] as RunningNode;
    stop = () => cluster.stop();
  });
  afterAll(async () => {
    await stop();
  });

  it('serves /metrics and the probes, and nothing of the data', async () => {
    const metrics = await fetch(`${metricsUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('conflux_');
    expect((await fetch(`${metricsUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${metricsUrl}/readyz`);
    expect([ready.status, ((await ready.json()) as { state: string }).state]).toEqual([200, 'leader']);
    for (const [method, path] of [
      ['GET', '/v1/kv/k'],
      ['PUT', '/v1/kv/k'],
      ['POST', '/metrics'],
    ]) {
      const res = await fetch(`${metricsUrl}${path}`, { method, ...(method === 'PUT' ? { body: 'v' } : {}) });
      const body = (await res.json()) as { error: { code: string } };
      expect([res.status, body.error.code]).toEqual([404, 'ROUTE_NOT_FOUND']);
    }
  });

  it('takes /metrics off the client port, which keeps the probes', async () => {
    expect((await fetch(`${node.apiUrl}/metrics`)).status).toBe(404);
    expect((await fetch(`${node.apiUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${node.apiUrl}/readyz`)).status).toBe(200);
  });

  it('is plain HTTP, so --dev-insecure refuses it off loopback', () => {
    const base = ['--dev-insecure', '--node-id', 'n1', '--bootstrap-expect', '1'];
    expect(() => loadConfig([...base, '--metrics-addr', '0.0.0.0:9090'], {})).toThrow(
      /metrics-addr|metricsAddr/,
    );
    expect(loadConfig([...base, '--metrics-addr', '127.0.0.1:9090'], {}).metricsAddr).toBe('127.0.0.1:9090');
  });
});
