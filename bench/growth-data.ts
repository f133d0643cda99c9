// The data set of the growth bench and the bulk loader both systems get: N keys with 100-byte
// values, written as transactions of BATCH puts (the most either system takes in one transaction
// by default) with IN_FLIGHT transactions outstanding, on keep-alive connections to the leader.

import { randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import { type Member, type RequestSpec, send, type Workload } from './load.js';

export const VALUE_BYTES = 100;
/** Puts per transaction: Conflux's and etcd's default transaction limit (128). */
export const BATCH = 128;
export const IN_FLIGHT = 16;
/** One failed batch is retried this many times before the load fails. */
const RETRIES = 3;
const NO_CHECK: Workload = { requests: [] };

/** A 200-character printable pool; value i is the 100 characters at offset i mod 100. */
const POOL = Buffer.from(randomBytes(150).toString('base64'));

export const keyAt = (i: number) => `g/k${String(i).padStart(8, '0')}`;
export const valueAt = (i: number) => POOL.subarray(i % 100, (i % 100) + VALUE_BYTES);

/** Sum of key and value bytes of keys 0..n-1: what the data is worth before any overhead. */
export function rawBytes(n: number): number {
  return n * (Buffer.byteLength(keyAt(0)) + VALUE_BYTES);
}

/** How one system writes a batch of puts: the request for keys [from, to). */
export type BatchRequest = (from: number, to: number) => RequestSpec;

export interface BulkLoadResult {
  ms: number;
  keysPerSec: number;
  batches: number;
  retries: number;
  /** The first distinct reasons a batch had to be retried, with how often each occurred. */
  retryReasons: Record<string, number>;
}

/** Write keys 0..n-1 through `target`; throws with the reason once a batch failed RETRIES times. */
export async function bulkLoad(
  target: Member,
  n: number,
  request: BatchRequest,
  signal: AbortSignal,
): Promise<BulkLoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  const batches = Math.ceil(n / BATCH);
  let next = 0;
  let retries = 0;
  const retryReasons: Record<string, number> = {};
  const t0 = performance.now();
  const loop = async () => {
    while (next < batches) {
      if (signal.aborted) throw new Error('load aborted');
      const b = next++;
      const spec = request(b * BATCH, Math.min(n, (b + 1) * BATCH));
      for (let attempt = 0; ; attempt++) {
        const out = await send(agent, target, spec, NO_CHECK, 30_000);
        if (out.ok) break;
        if (attempt >= RETRIES) throw new Error(`batch ${b} failed ${attempt + 1} times: ${out.reason}`);
        retries++;
        const why = (out.reason ?? 'unknown').slice(0, 120);
        if (why in retryReasons || Object.keys(retryReasons).length < 4)
          retryReasons[why] = (retryReasons[why] ?? 0) + 1;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: IN_FLIGHT }, loop));
  } finally {
    agent.destroy();
  }
  const ms = performance.now() - t0;
  return { ms, keysPerSec: (n * 1000) / ms, batches, retries, retryReasons };
}

export function jsonRequest(method: 'POST' | 'PUT', path: string, doc: unknown): RequestSpec {
  const body = Buffer.from(JSON.stringify(doc));
  return {
    method,
    path,
    headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
    body,
  };
}
