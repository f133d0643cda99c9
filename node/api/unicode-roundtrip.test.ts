// Property: any well-formed Unicode key and any value (bytes, or text with a leading U+FEFF, NUL,
// combining marks, astral characters) comes back byte for byte from a real node: the raw answer,
// the JSON answers (GET, range, txn, long-poll watch) and the SSE watch stream; and a snapshot of
// the node's store, restored into a fresh store, holds the same keys and values, which the same
// JSON encoders (json.ts) answer identically (docs/ARCHITECTURE.md §5 and §6).

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcess } from '../../e2e/support/in-process-cluster.js';
import { isWellFormed } from '../kv/keys.js';
import { KvStore } from '../kv/store.js';
import type { KeyValue } from '../kv/types.js';
import type { SnapshotMeta } from '../raft/types.js';
import type { RunningNode } from '../server.js';
import { decodeValue, type Encoding, eventJson, type KeyValueJson, kvJson } from './json.js';

const SPECIAL = [
  '\uFEFF',
  '\u0000',
  '\u0301',
  '\u0308',
  '\u0327',
  '\u{1F600}',
  '\u{1D11E}',
  '\u200B',
  '\uFFFF',
  '\uFFFD',
  'e',
  '/',
];

const piece = fc.oneof(
  fc.constantFrom(...SPECIAL),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }),
  fc.string({ unit: 'grapheme-composite', minLength: 1, maxLength: 2 }),
);

// A path segment `.` or `..` is resolved away by every URL parser (fetch, curl without
// --path-as-is) before it reaches the node, so such keys cannot be named in a URL path.
const addressable = (key: string) => key.split('/').every((s) => s !== '.' && s !== '..');

const keyArb = fc
  .tuple(fc.boolean(), fc.array(piece, { minLength: 1, maxLength: 5 }))
  .map(([bom, parts]) => (bom ? '\uFEFF' : '') + parts.join(''))
  .filter((k) => isWellFormed(k) && addressable(k) && Buffer.byteLength(k) <= 200);

const textValue = fc
  .tuple(fc.boolean(), fc.array(piece, { maxLength: 6 }))
  .map(([bom, parts]) => Buffer.from((bom ? '\uFEFF' : '') + parts.join(''), 'utf8'));
const valueArb = fc.oneof(
  textValue,
  fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b)),
  // Text that is one byte away from UTF-8: a leading BOM then an invalid byte.
  fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf, 0xff]), b])),
);

const keyPath = (key: string) => `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`;

/** The bytes a JSON answer's value stands for. */
const bytesOf = (j: { value: string; encoding: Encoding }) => Buffer.from(decodeValue(j.value, j.encoding));

const meta = (index: number): SnapshotMeta => ({
  index,
  term: 1,
  membership: { configs: [['solo']], learners: [], retired: [], nodes: {}, cluster: null },
  sizeBytes: 0,
  id: `roundtrip-${index}`,
});

/** Read SSE events until `count` arrived. */
async function sseEvents(url: string, count: number): Promise<{ id: string; data: unknown }[]> {
  const res = await fetch(url, { headers: { accept: 'text/event-stream' } });
  expect(res.status).toBe(200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const events: { id: string; data: unknown }[] = [];
  let text = '';
  try {
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
        const frame = text.slice(0, end);
        text = text.slice(end + 2);
        const fields = new Map<string, string>();
        for (const line of frame.split('\n')) {
          const i = line.indexOf(': ');
          if (i > 0) fields.set(line.slice(0, i), line.slice(i + 2));
        }
        const data = fields.get('data');
        if (fields.get('event') === 'put' && data !== undefined)
          events.push({ id: fields.get('id') ?? '', data: JSON.parse(data) });
      }
    }
  } finally {
    await reader.cancel();
  }
  return events;
}

describe('Unicode and binary keys and values round-trip byte for byte', () => {
  let node: RunningNode;
  let stop: () => Promise<void>;
  let url: string;
  beforeAll(async () => {
    const cluster = await startInProcess(['solo']);
    node = cluster.nodes[0] as RunningNode;
    stop = () => cluster.stop();
    url = node.apiUrl;
  });
  afterAll(async () => {
    await stop();
  });

  it('through put, raw, JSON, txn, watch (long-poll and SSE), snapshot and restore', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.tuple(keyArb, valueArb), { minLength: 1, maxLength: 4, selector: ([k]) => k }),
        async (pairs) => {
          let first = 0;
          for (const [key, value] of pairs) {
            const res = await fetch(`${url}${keyPath(key)}`, {
              method: 'PUT',
              body: value,
              headers: { 'content-type': 'application/octet-stream' },
            });
            expect(res.status, await res.clone().text()).toBe(200);
            const { revision } = (await res.json()) as { revision: number };
            first ||= revision;
          }
          for (const [key, value] of pairs) {
            const raw = await fetch(`${url}${keyPath(key)}?raw=1`);
            expect(Buffer.from(await raw.arrayBuffer())).toEqual(value);
            for (const q of ['', '?encoding=base64']) {
              const j = (await (await fetch(`${url}${keyPath(key)}${q}`)).json()) as KeyValueJson;
              expect(j.key).toBe(key);
              expect(bytesOf(j)).toEqual(value);
            }
          }
          const txn = (await (
            await fetch(`${url}/v1/txn`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ success: pairs.map(([key]) => ({ type: 'get', key })) }),
            })
          ).json()) as { responses: { kv: KeyValueJson }[] };
          txn.responses.forEach((r, i) => {
            const [key, value] = pairs[i] as [string, Buffer];
            expect(r.kv.key).toBe(key);
            expect(bytesOf(r.kv)).toEqual(value);
          });
          for (const [key, value] of pairs) {
            const range = (await (
              await fetch(`${url}/v1/kv?prefix=${encodeURIComponent(key)}&limit=10000`)
            ).json()) as { kvs: KeyValueJson[] };
            const hit = range.kvs.find((kv) => kv.key === key) as KeyValueJson;
            expect(bytesOf(hit)).toEqual(value);
          }
          // Both watch forms, from the first put: exactly these puts, in order.
          const poll = (await (
            await fetch(`${url}/v1/watch?prefix=&from_revision=${first}&limit=${pairs.length}`)
          ).json()) as { events: { kv: KeyValueJson }[] };
          const sse = await sseEvents(`${url}/v1/watch?prefix=&from_revision=${first}`, pairs.length);
          pairs.forEach(([key, value], i) => {
            const p = poll.events[i] as { kv: KeyValueJson };
            expect(p.kv.key).toBe(key);
            expect(bytesOf(p.kv)).toEqual(value);
            const s = sse[i]?.data as { kv: KeyValueJson };
            expect(s.kv.key).toBe(key);
            expect(bytesOf(s.kv)).toEqual(value);
          });

          // The node's whole store through a snapshot into a fresh one: the same keys, values,
          // and the same JSON answers.
          const snap = node.kv.snapshot();
          const restored = new KvStore();
          restored.restore(meta(snap.index), snap.data);
          for (const [key, value] of pairs) {
            const a = node.kv.get(key) as KeyValue;
            const b = restored.get(key) as KeyValue;
            expect(b.key).toBe(key);
            expect(Buffer.from(b.value)).toEqual(value);
            for (const enc of [undefined, 'base64'] as const) {
              expect(JSON.stringify(kvJson(b, enc))).toBe(JSON.stringify(kvJson(a, enc)));
              const event = { type: 'put' as const, revision: b.modRevision, kv: b };
              expect(JSON.stringify(eventJson(event, enc))).toBe(
                JSON.stringify(eventJson({ ...event, kv: a }, enc)),
              );
            }
          }
          const all = (s: KvStore) => s.range({ prefix: '', limit: 1_000_000 }).kvs;
          expect(all(restored)).toEqual(all(node.kv));
        },
      ),
      { numRuns: 40 },
    );
  }, 120_000);
});
