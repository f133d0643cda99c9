// Hostile and malformed input, generated: every answer is a catalogued 4xx (or a success), never a
// 5xx, never a crash, and nothing a refused request carried is ever written.

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessCluster, startInProcess } from '../../e2e/support/in-process-cluster.js';
import { ALL_ERROR_CODES } from '../errors.js';
import type { RunningNode } from '../server.js';

const METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'] as const;
const PATHS = [
  '/v1/kv/',
  '/v1/kv',
  '/v1/txn',
  '/v1/watch',
  '/_cluster/leader',
  '/_cluster/leader/transfer',
  '/_internal/status',
  '/nope',
];

const junk = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('%', '%zz', '..%2f..', '\u0000', '?a=1&a=2', '#frag', ' ', '//', '%00'),
);
const body = fc.oneof(
  fc.constant(undefined),
  fc.string({ maxLength: 200 }),
  fc.json({ maxDepth: 3 }),
  fc.constantFrom(
    '{"compare":[{"key":"","target":"value","op":"="}]}',
    '{"success":[{"type":"put","key":"k","value":"x","encoding":"base64"}]}',
    '{"target_node_id":[]}',
    'null',
    '[]',
  ),
);

describe('hostile input', () => {
  let cluster: InProcessCluster;
  let node: RunningNode;
  beforeAll(async () => {
    cluster = await startInProcess(['solo'], { args: () => ['--max-value-bytes', '64'] });
    node = cluster.nodes[0] as RunningNode;
  });
  afterAll(async () => cluster.stop());

  it('never answers 5xx, and every refusal carries a catalogued code', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...METHODS),
        fc.constantFrom(...PATHS),
        junk,
        junk,
        body,
        async (method, path, suffix, query, payload) => {
          const url = `${path}${encodeURI(suffix).replace(/%25/g, '%')}?${query}`;
          const app = path.startsWith('/_') ? node.admin : node.api;
          const res = await app.inject({
            method,
            url,
            ...(payload !== undefined && method !== 'GET' ? { payload } : {}),
          });
          expect(res.statusCode, `${method} ${url} -> ${res.statusCode} ${res.body}`).toBeLessThan(500);
          if (res.statusCode >= 400) {
            const code = (JSON.parse(res.body) as { error: { code: string } }).error.code;
            expect(ALL_ERROR_CODES).toContain(code);
          }
        },
      ),
      { numRuns: 400 },
    );
  }, 120_000);

  it('a refused write leaves no trace', async () => {
    const before = node.kv.revision;
    for (const url of ['/v1/kv/' + 'k'.repeat(2000), '/v1/kv/big']) {
      const res = await node.api.inject({ method: 'PUT', url, payload: 'v'.repeat(100) });
      expect(res.statusCode).toBeGreaterThanOrEqual(400);
    }
    const txn = await node.api.inject({
      method: 'POST',
      url: '/v1/txn',
      payload: '{"success":[{"type":"put","key":"refused/a","value":"1"}],"bogus":1}',
    });
    expect(txn.statusCode).toBe(400);
    // Invalid base64 was once stored as an empty value.
    const base64 = await node.api.inject({
      method: 'POST',
      url: '/v1/txn',
      payload: '{"success":[{"type":"put","key":"refused/a","value":"x","encoding":"base64"}]}',
    });
    expect(base64.statusCode).toBe(400);
    expect(base64.body).toContain('body.success.0.value: not valid base64');
    expect(node.kv.revision).toBe(before);
    expect(node.kv.get('refused/a')).toBeUndefined();
  });
});
