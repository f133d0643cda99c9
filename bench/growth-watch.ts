// Watch fan-out: WATCHERS concurrent watch streams on one key, spread over the members; then
// ROUNDS puts of that key through the leader, one at a time, and for each the time from sending
// the put until each stream delivered its event. Conflux streams are Server-Sent Events (GET
// /v1/watch); etcd's are its gateway's POST /v3/watch, one JSON message per line.

import { type ClientRequest, request } from 'node:http';
import { b64 } from './etcd.js';
import type { Cluster, Member } from './load.js';
import { percentile } from './load.js';
import { httpCall, waitUntil } from './proc.js';

export const WATCHERS = 1000;
export const ROUNDS = 5;
const KEY = 'g/watched';

export interface FanOutResult {
  watchers: number;
  rounds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Deliveries that did not arrive within the round's deadline. */
  missed: number;
  /** Time to open every stream. */
  setupMs: number;
}

/** One open stream: when it delivered the event of each round (the put's value names the round). */
interface Stream {
  req: ClientRequest;
  ready: boolean;
  seenAt: Map<number, number>;
}

const roundOf = (value: string) => Number(/^round-(\d+)$/.exec(value)?.[1] ?? Number.NaN);

function open(c: Cluster, m: Member, s: Stream): ClientRequest {
  const onText = (text: string) => {
    if (c.system === 'conflux') {
      if (text.includes(': watching')) s.ready = true;
      for (const block of text.split('\n\n')) {
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!block.includes('event: put') || !data) continue;
        s.seenAt.set(
          roundOf((JSON.parse(data) as { kv?: { value?: string } }).kv?.value ?? ''),
          performance.now(),
        );
      }
      return;
    }
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const doc = JSON.parse(line) as {
        result?: { created?: boolean; events?: { kv?: { value?: string } }[] };
      };
      if (doc.result?.created) s.ready = true;
      for (const e of doc.result?.events ?? [])
        s.seenAt.set(roundOf(Buffer.from(e.kv?.value ?? '', 'base64').toString()), performance.now());
    }
  };
  const conflux = c.system === 'conflux';
  const req = request({
    host: m.host,
    port: m.port,
    agent: false,
    method: conflux ? 'GET' : 'POST',
    path: conflux ? `/v1/watch?key=${encodeURIComponent(KEY)}` : '/v3/watch',
    headers: conflux ? { accept: 'text/event-stream' } : { 'content-type': 'application/json' },
  });
  req.on('response', (res) => {
    let buf = '';
    const sep = conflux ? '\n\n' : '\n';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buf += chunk;
      const cut = buf.lastIndexOf(sep);
      if (cut < 0) return;
      onText(buf.slice(0, cut + sep.length));
      buf = buf.slice(cut + sep.length);
    });
    res.on('error', () => {});
  });
  req.on('error', () => {});
  // etcd's stream stays open as long as the request body does.
  if (conflux) req.end();
  else req.write(JSON.stringify({ create_request: { key: b64(KEY) } }));
  return req;
}

function putRequest(c: Cluster, leader: Member, round: number): Promise<void> {
  const value = `round-${round}`;
  const url =
    c.system === 'conflux'
      ? `http://${leader.host}:${leader.port}/v1/kv/${KEY}`
      : `http://${leader.host}:${leader.port}/v3/kv/put`;
  const body = c.system === 'conflux' ? value : JSON.stringify({ key: b64(KEY), value: b64(value) });
  return httpCall(url, c.system === 'conflux' ? 'PUT' : 'POST', body, 10_000).then((r) => {
    if (r.status !== 200)
      throw new Error(`${c.system} put of the watched key: HTTP ${r.status} ${r.body.slice(0, 200)}`);
  });
}

export async function watchFanOut(c: Cluster, watchers = WATCHERS, rounds = ROUNDS): Promise<FanOutResult> {
  const leader = await c.findLeader();
  const streams: Stream[] = [];
  const t0 = performance.now();
  try {
    for (let i = 0; i < watchers; i++) {
      const s = { ready: false, seenAt: new Map() } as Omit<Stream, 'req'> as Stream;
      s.req = open(c, c.members[i % c.members.length] as Member, s);
      streams.push(s);
    }
    await waitUntil(`${c.system}: ${watchers} watch streams open`, 60_000, async () => {
      const ready = streams.filter((s) => s.ready).length;
      return ready === watchers || `${ready} of ${watchers} open`;
    });
    const setupMs = performance.now() - t0;
    const latencies: number[] = [];
    let missed = 0;
    for (let r = 1; r <= rounds; r++) {
      const sent = performance.now();
      await putRequest(c, leader, r);
      const deadline = performance.now() + 10_000;
      while (performance.now() < deadline && streams.some((s) => !s.seenAt.has(r)))
        await new Promise((resolve) => setTimeout(resolve, 5));
      for (const s of streams) {
        const at = s.seenAt.get(r);
        if (at === undefined) missed++;
        else latencies.push(at - sent);
      }
    }
    const sorted = Float64Array.from(latencies).sort();
    return {
      watchers,
      rounds,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN,
      missed,
      setupMs,
    };
  } finally {
    for (const s of streams) s.req.destroy();
  }
}
