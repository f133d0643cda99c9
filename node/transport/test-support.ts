// Helpers for this folder's tests (not used by production code).

import { pino } from 'pino';
import type { Entry, Membership, Message, NodeId, SnapshotMeta } from '../raft/types.js';
import type { Logger, PeerTlsOptions } from './options.js';
import { PeerTransport } from './peer-transport.js';

const membership: Membership = {
  configs: [
    ['a', 'b'],
    ['a', 'b', 'c'],
  ],
  learners: ['d'],
  retired: ['old'],
  nodes: { a: { raft: 'a:7000', api: 'a:8080', admin: 'a:8443' } },
  cluster: { id: 'c-1', restoredFrom: { clusterId: 'c-0', uri: 's3://b/p/x.snap', index: 99 } },
};
const meta: SnapshotMeta = { index: 120, term: 7, membership, sizeBytes: 1 << 20, id: 'snap-120-abc' };

/** Deterministic bytes 0..255 repeating, of any length. */
export function bytesOf(length: number, seed = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i + seed) & 0xff;
  return out;
}

/** One message of every type, with binary entry data and a snapshot chunk with bytes. */
export function everyMessageType(from: NodeId, to: NodeId): Message[] {
  const entries: Entry[] = [
    { type: 'blank', index: 11, term: 3 },
    { type: 'normal', index: 12, term: 3, data: bytesOf(300) },
    { type: 'normal', index: 13, term: 3, data: new Uint8Array(0) },
    { type: 'membership', index: 14, term: 3, membership },
    { type: 'normal', index: 2 ** 40, term: 2 ** 33, data: bytesOf(5, 9) },
  ];
  const base = { from, to, term: 3 };
  return [
    { ...base, type: 'vote', pre: true, lastLogIndex: 10, lastLogTerm: 2, transfer: false },
    { ...base, type: 'vote-response', pre: false, granted: true },
    { ...base, type: 'append', prevIndex: 10, prevTerm: 2, entries, commit: 9 },
    { ...base, type: 'append', prevIndex: 14, prevTerm: 3, entries: [], commit: 14 },
    { ...base, type: 'append-response', index: 14, reject: true, hintIndex: 8, hintTerm: 2 },
    { ...base, type: 'heartbeat', commit: 14, readSeq: 5 },
    { ...base, type: 'heartbeat-response', readSeq: 5, lastIndex: 12 },
    { ...base, type: 'snapshot', meta, offset: 65536, data: bytesOf(70_000, 1), length: 70_000, done: false },
    { ...base, type: 'snapshot-response', snapshotIndex: 120, nextOffset: 135_536, reject: false },
    { ...base, type: 'timeout-now' },
  ];
}

/**
 * Recursively turns byte arrays into hex strings, so decoded messages (msgpackr hands back Buffers,
 * Uint8Arrays of another class) compare equal to the originals, and quickly.
 */
export function normalizeBytes<T>(value: T): T {
  if (value instanceof Uint8Array) return `bytes:${Buffer.from(value).toString('hex')}` as T;
  if (Array.isArray(value)) return value.map(normalizeBytes) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalizeBytes(v)])) as T;
  }
  return value;
}

export interface CapturedLogs {
  logger: Logger;
  lines: Record<string, unknown>[];
  /** Lines at warn (40) or above whose msg contains `text`. */
  warnings(text: string): Record<string, unknown>[];
}

export function captureLogs(): CapturedLogs {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return {
    logger,
    lines,
    warnings: (text) =>
      lines.filter((l) => (l.level as number) >= 40 && typeof l.msg === 'string' && l.msg.includes(text)),
  };
}

export async function waitFor(what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * A transport with mutual TLS listening on 127.0.0.1 and collecting what it receives; its close
 * is pushed onto `cleanups` for the test's afterEach.
 */
export async function startTlsNode(selfId: string, tls: PeerTlsOptions, cleanups: (() => Promise<void>)[]) {
  const inbox: Message[] = [];
  const logs = captureLogs();
  const transport = new PeerTransport({
    selfId,
    tls,
    onMessage: (m) => inbox.push(m),
    logger: logs.logger,
    backoffMsMin: 10,
    backoffMsMax: 50,
  });
  cleanups.push(() => transport.close());
  const info = await transport.listen('127.0.0.1', 0);
  return { transport, inbox, logs, address: `127.0.0.1:${info.port}` };
}
