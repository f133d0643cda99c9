// Helpers for tests of the peer transport and of the peer port (not used by production code).

import net from 'node:net';
import tls from 'node:tls';
import { pino } from 'pino';
import type { Entry, Membership, Message, NodeId, SnapshotMeta } from '../raft/types.js';
import { parsePeerAddress } from './address.js';
import { decodeBody, encodeFrame } from './codec.js';
import { FrameDecoder } from './framing.js';
import type { Logger, PeerAdmission, PeerTlsOptions } from './options.js';
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

/**
 * One message of every type, with binary entry data and a snapshot chunk with bytes; each passes
 * the structural checks (node/raft/message-checks.ts).
 */
export function everyMessageType(from: NodeId, to: NodeId): Message[] {
  const entries: Entry[] = [
    { type: 'blank', index: 11, term: 3 },
    { type: 'normal', index: 12, term: 3, data: bytesOf(300) },
    { type: 'normal', index: 13, term: 3, data: new Uint8Array(0) },
    { type: 'membership', index: 14, term: 7, membership },
  ];
  const base = { from, to, term: 7 };
  const huge = { from, to, term: 2 ** 33, prevIndex: 2 ** 40, prevTerm: 2 ** 33, commit: 2 ** 40 };
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
    {
      ...huge,
      type: 'append',
      entries: [{ type: 'normal', index: 2 ** 40 + 1, term: 2 ** 33, data: bytesOf(5, 9) }],
    },
  ];
}

/** Admits every node id, each at 127.0.0.1 (where the test PKIs' certificates point). */
export const admitAll: PeerAdmission = {
  isMember: () => true,
  isRetired: () => false,
  advertisedAddress: () => '127.0.0.1:7000',
};

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
export async function startTlsNode(
  selfId: string,
  tls: PeerTlsOptions,
  cleanups: (() => Promise<void> | void)[],
  admission: PeerAdmission = admitAll,
) {
  const inbox: Message[] = [];
  const logs = captureLogs();
  const transport = new PeerTransport({
    selfId,
    tls,
    admission,
    onMessage: (m) => inbox.push(m),
    logger: logs.logger,
    backoffMsMin: 10,
    backoffMsMax: 50,
  });
  cleanups.push(() => transport.close());
  const info = await transport.listen('127.0.0.1', 0);
  return { transport, inbox, logs, address: `127.0.0.1:${info.port}` };
}

/** A hand-driven dialer: writes the frames a test gives it and notices when the node hangs up. */
export interface RawPeer {
  send(...frames: unknown[]): void;
  /** Resolves when the node closed the connection. */
  closed: Promise<void>;
  isClosed(): boolean;
  /** Frames the node sent back (pongs), decoded. */
  replies: unknown[];
  destroy(): void;
}

/**
 * Connects to a peer port ("host:port"), over mutual TLS when `tlsOptions` is given (the server's
 * name is not checked: tests dial 127.0.0.1), and resolves once the connection is usable.
 */
export async function rawPeer(
  address: string,
  tlsOptions?: { cert: string | Buffer; key: string | Buffer; ca: string | Buffer | (string | Buffer)[] },
): Promise<RawPeer> {
  const { host, port } = parsePeerAddress(address);
  const socket: net.Socket = tlsOptions
    ? tls.connect({ host, port, ...tlsOptions, checkServerIdentity: () => undefined })
    : net.connect({ host, port });
  socket.on('error', () => {});
  let closed = false;
  const closedPromise = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      resolve();
    }),
  );
  const replies: unknown[] = [];
  const decoder = new FrameDecoder(1 << 20);
  socket.on('data', (chunk: Buffer) => {
    for (const body of decoder.push(chunk)) replies.push(decodeBody(body));
  });
  await new Promise<void>((resolve, reject) => {
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => resolve());
    socket.once('close', () => reject(new Error(`connection to ${address} closed before it was ready`)));
  });
  return {
    send: (...frames) => {
      if (!socket.destroyed) socket.write(Buffer.concat(frames.map((f) => encodeFrame(f))));
    },
    closed: closedPromise,
    isClosed: () => closed,
    replies,
    destroy: () => socket.destroy(),
  };
}

/** The hello a member sends first; `address`: its advertised peer address, when it announces one. */
export function hello(from: NodeId, cluster: string | null = null, address?: string): unknown {
  return { type: 'hello', from, version: 1, cluster, ...(address === undefined ? {} : { address }) };
}
