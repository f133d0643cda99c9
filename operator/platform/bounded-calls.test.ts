// Every Kubernetes API call the operator makes is bounded: a request to an API server that accepts
// the connection and never answers fails with a clear error after its timeout, and a leader whose
// Lease renewal hangs steps down by its renew deadline instead of acting on a stale lease.

import { createServer, type Server } from 'node:http';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackKubeConfig } from './fake-kube-api.js';
import { ApiTimeoutError, boundedApiClient } from './kube-client.js';
import { LeaderElector, type LeaseApi, type LeaseRecord } from './leader-election.js';

const silent = pino({ level: 'silent' });

describe('boundedApiClient', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    server = undefined;
  });

  /** An API server that accepts every request and answers none (or answers `body`). */
  async function apiServer(answer?: unknown): Promise<{ kc: KubeConfig; seen: string[] }> {
    const seen: string[] = [];
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (answer !== undefined) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      }
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    return { kc: loopbackKubeConfig(server), seen };
  }

  it('a request the API server never answers fails after the timeout, naming it', async () => {
    const { kc } = await apiServer();
    const core = boundedApiClient(kc, CoreV1Api, { timeoutMs: 150 });
    const started = performance.now();
    const err = await core.readNamespacedSecret({ name: 's', namespace: 'ns' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiTimeoutError);
    expect((err as Error).message).toBe(
      'Kubernetes API GET /api/v1/namespaces/ns/secrets/s did not answer within 150 ms',
    );
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('answers pass through, and every request is counted', async () => {
    const { kc, seen } = await apiServer({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' } });
    const counted: string[] = [];
    const core = boundedApiClient(kc, CoreV1Api, {
      timeoutMs: 2_000,
      onRequest: (method, url) => counted.push(`${method} ${new URL(url).pathname}`),
    });
    const secret = await core.readNamespacedSecret({ name: 's', namespace: 'ns' });
    expect(secret.metadata?.name).toBe('s');
    expect(counted).toEqual(['GET /api/v1/namespaces/ns/secrets/s']);
    expect(seen).toEqual(['GET /api/v1/namespaces/ns/secrets/s']);
  });
});

describe('LeaderElector with a renewal that hangs', () => {
  it('steps down by the renew deadline, though the request never returns', async () => {
    let record: LeaseRecord | null = null;
    let rv = 0;
    let hang = false;
    const never = new Promise<never>(() => undefined);
    const lease: LeaseApi = {
      get: async () => (hang ? never : record ? { record, resourceVersion: String(rv) } : null),
      create: async (r) => {
        record = r;
        return { record: r, resourceVersion: String(++rv) };
      },
      update: async (r) => {
        if (hang) return never;
        record = r;
        return { record: r, resourceVersion: String(++rv) };
      },
    };
    const log: string[] = [];
    const elector = new LeaderElector({
      lease,
      identity: 'a',
      leaseDurationMs: 600,
      renewDeadlineMs: 300,
      retryPeriodMs: 50,
      logger: silent,
      onStartedLeading: () => {
        log.push('started');
      },
      onStoppedLeading: () => {
        log.push(`stopped after ${Math.round(performance.now() - hungAt)} ms`);
      },
    });
    let hungAt = 0;
    elector.start();
    const deadline = Date.now() + 3_000;
    while (!elector.isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(elector.isLeader()).toBe(true);
    hang = true;
    hungAt = performance.now();
    while (elector.isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(elector.isLeader()).toBe(false);
    const stoppedMs = Number(log[1]?.match(/\d+/)?.[0]);
    // Within the renew deadline of the last renewal (plus a retry period of slack), well before
    // the lease duration after which another replica may take it over.
    expect(stoppedMs).toBeLessThan(600);
    // stop() returns too, although the last request is still hanging.
    await elector.stop();
    expect(log[0]).toBe('started');
  });
});
