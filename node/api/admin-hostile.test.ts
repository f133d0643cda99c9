// Generated malformed and hostile requests at every admin endpoint of a one-node cluster: every
// answer is a success or a catalogued 4xx, never a 5xx or a crash, and the cluster itself (its
// voters, term, data, identity) never changes.

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessCluster, startInProcess } from '../../e2e/support/in-process-cluster.js';
import { ALL_ERROR_CODES } from '../errors.js';
import type { RunningNode } from '../server.js';

const ENDPOINTS: [string, string][] = [
  ['POST', '/_cluster/nodes'],
  ['DELETE', '/_cluster/nodes/'],
  ['GET', '/_cluster/operations/'],
  ['GET', '/_cluster/leader'],
  ['POST', '/_cluster/leader/transfer'],
  ['POST', '/_cluster/initialize'],
  ['POST', '/_cluster/backup'],
  ['POST', '/_cluster/restore'],
  ['GET', '/_cluster/status'],
  ['GET', '/_internal/status'],
  ['POST', '/_internal/prepare'],
  ['POST', '/_internal/join'],
];

const junk = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom('', '%', '%zz', '..%2f..', '%00', 'solo', 'n-1', 'A'.repeat(300), 'op-zz', '-x-'),
);
const address = fc.oneof(
  junk,
  fc.constantFrom('127.0.0.1:1', 'host:99999', '[::1]:5', 'a b:1', '127.0.0.1:', ':80'),
);
const uri = fc.oneof(
  junk,
  fc.constantFrom(
    's3://',
    's3://b/x.snap',
    'file:///nonexistent/x.snap',
    'file://relative',
    'http://x',
    'ftp://x/y',
  ),
);
const value = fc.oneof(junk, fc.integer(), fc.boolean(), fc.constant(null), fc.array(junk, { maxLength: 2 }));

/** Bodies shaped like the real ones, with any field replaced by something hostile. */
const shaped = fc.oneof(
  fc.record({
    node_id: fc.oneof(junk, value),
    api_address: address,
    raft_address: address,
    admin_address: address,
  }),
  fc.record({ target_node_id: fc.oneof(junk, value) }),
  fc.record({ members: fc.dictionary(junk, fc.oneof(value, fc.record({ api_address: address }))) }),
  fc.record({ destination: fc.oneof(uri, value), force: value }),
  fc.record({ snapshot_uri: fc.oneof(uri, value), expected_cluster_id: fc.oneof(junk, value) }),
  fc.record({ cluster_id: fc.oneof(junk, value), node_id: junk, members: fc.dictionary(junk, value) }),
);
const payload = fc.oneof(
  fc.constant(undefined),
  fc.string({ maxLength: 100 }),
  fc.json({ maxDepth: 3 }),
  shaped.map((b) => JSON.stringify(b)),
  fc.constantFrom('null', '[]', '{', '{"members":{}}', `{"node_id":"${'x'.repeat(5000)}"}`),
);

describe('hostile input at the admin API', () => {
  let cluster: InProcessCluster;
  let node: RunningNode;
  beforeAll(async () => {
    cluster = await startInProcess(['solo']);
    node = cluster.nodes[0] as RunningNode;
    await node.api.inject({ method: 'PUT', url: '/v1/kv/keep', payload: 'me' });
  });
  afterAll(async () => cluster.stop());

  it('answers every request with a success or a catalogued 4xx and changes nothing', async () => {
    const before = node.raft.metrics();
    const revision = node.kv.revision;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ENDPOINTS),
        junk,
        junk,
        payload,
        async ([method, path], suffix, query, body) => {
          const tail = path.endsWith('/') ? encodeURIComponent(suffix) : '';
          const url = `${path}${tail}?${encodeURIComponent(query)}=${encodeURIComponent(query)}`;
          const res = await node.admin.inject({
            method: method as 'GET',
            url,
            ...(body !== undefined && method !== 'GET' ? { payload: body } : {}),
          });
          expect(res.statusCode, `${method} ${url} ${body} -> ${res.statusCode} ${res.body}`).toBeLessThan(
            500,
          );
          if (res.statusCode >= 400) {
            const code = (JSON.parse(res.body) as { error: { code: string } }).error.code;
            expect(ALL_ERROR_CODES).toContain(code);
          }
        },
      ),
      { numRuns: 500 },
    );
    const after = node.raft.metrics();
    expect(after.membership.configs).toEqual(before.membership.configs);
    expect(after.membership.learners).toEqual([]);
    expect(after.membership.cluster).toEqual(before.membership.cluster);
    expect(after.currentTerm).toBe(before.currentTerm);
    expect(after.state).toBe('leader');
    expect(node.kv.revision).toBe(revision);
  }, 120_000);
});
