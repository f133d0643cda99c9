import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../raft/types.js';
import { encodeFrame } from './codec.js';
import { PeerTransport, type PeerTransportOptions } from './peer-transport.js';
import { admitAll, captureLogs, everyMessageType, normalizeBytes, waitFor } from './test-support.js';

const HOST = '127.0.0.1';
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

interface Node {
  transport: PeerTransport;
  inbox: Message[];
  address: string;
  logs: ReturnType<typeof captureLogs>;
}

async function startNode(selfId: string, opts: Partial<PeerTransportOptions> = {}, port = 0): Promise<Node> {
  const inbox: Message[] = [];
  const logs = captureLogs();
  const transport = new PeerTransport({
    selfId,
    onMessage: (m) => inbox.push(m),
    admission: admitAll,
    logger: logs.logger,
    backoffMsMin: 5,
    backoffMsMax: 40,
    ...opts,
  });
  cleanups.push(() => transport.close());
  const info = await transport.listen(HOST, port);
  return { transport, inbox, address: `${HOST}:${info.port}`, logs };
}

function heartbeat(from: string, to: string, readSeq: number): Message {
  return { type: 'heartbeat', from, to, term: 1, commit: 0, readSeq };
}

/** A port that was free a moment ago (nothing listens on it). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Connects a raw client, writes `bytes`, and resolves once the server has closed the connection. */
async function rawExchange(address: string, bytes: Buffer): Promise<void> {
  const [host, port] = address.split(':') as [string, string];
  const socket = net.connect({ host, port: Number(port) });
  socket.on('error', () => {});
  socket.resume();
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(bytes);
  await new Promise((resolve) => socket.once('close', resolve));
}

describe('PeerTransport over loopback TCP', () => {
  it('round-trips every message type in both directions, binary data intact', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    a.transport.setPeers({ a: a.address, b: b.address });
    b.transport.setPeers({ a: a.address, b: b.address });
    a.transport.send(everyMessageType('a', 'b'));
    b.transport.send(everyMessageType('b', 'a'));
    const count = everyMessageType('a', 'b').length;
    await waitFor('both inboxes', () => a.inbox.length === count && b.inbox.length === count);
    expect(normalizeBytes(b.inbox)).toEqual(normalizeBytes(everyMessageType('a', 'b')));
    expect(normalizeBytes(a.inbox)).toEqual(normalizeBytes(everyMessageType('b', 'a')));
    expect(a.transport.stats()).toMatchObject({ sent: count, received: count });
    expect(b.logs.lines.some((l) => l.msg === 'peer connected' && l.peer === 'a')).toBe(true);
  });

  it('keeps order and batches many small messages sent in one turn', async () => {
    const sentBatches: number[] = [];
    const a = await startNode('a', { metrics: { sent: (_peer, messages) => sentBatches.push(messages) } });
    const b = await startNode('b');
    a.transport.setPeers({ b: b.address });
    await waitFor('connection', () => a.transport.stats().peers.b?.connected === true);
    for (let i = 1; i <= 1000; i++) a.transport.send([heartbeat('a', 'b', i)]);
    await waitFor('all 1000', () => b.inbox.length === 1000);
    expect(b.inbox.map((m) => (m.type === 'heartbeat' ? m.readSeq : -1))).toEqual(
      Array.from({ length: 1000 }, (_, i) => i + 1),
    );
    expect(sentBatches).toEqual([1000]); // one corked burst: 1000 messages, one flush
  });

  it('drops messages addressed to another node id, and messages to unknown peers', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    // "c" resolves to b's address: b must not hand c's messages to its engine.
    a.transport.setPeers({ b: b.address, c: b.address });
    a.transport.send([heartbeat('a', 'c', 1), heartbeat('a', 'zz', 2), heartbeat('a', 'b', 3)]);
    await waitFor('b gets its own', () => b.inbox.length === 1);
    await waitFor('b drops c', () => b.transport.stats().dropped['wrong-recipient'] === 1);
    expect(b.inbox[0]).toMatchObject({ to: 'b', readSeq: 3 });
    expect(a.transport.stats().dropped['unknown-peer']).toBe(1);
    expect(b.logs.warnings('addressed to another node id')).toHaveLength(1);
  });

  it('queues while the peer is down and reconnects when its listener restarts', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    a.transport.setPeers({ b: b.address });
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('first delivery', () => b.inbox.length === 1);
    await waitFor('a connected (b answered a ping)', () => a.transport.stats().peers.b?.connected === true);

    await b.transport.close();
    await waitFor('a notices', () => a.transport.stats().peers.b?.connected === false);
    a.transport.send([heartbeat('a', 'b', 2), heartbeat('a', 'b', 3)]);
    expect(a.transport.stats().peers.b?.queued).toBe(2);

    const port = Number(b.address.split(':')[1]);
    const b2 = await startNode('b', {}, port);
    await waitFor('queued messages after reconnect', () => b2.inbox.length === 2);
    expect(b2.inbox.map((m) => (m.type === 'heartbeat' ? m.readSeq : 0))).toEqual([2, 3]);
    expect(a.logs.warnings('peer connection lost')).not.toHaveLength(0);
  });

  it('a restarted peer that connects to us is dialled at once, not when our backoff runs out', async () => {
    const slow = { backoffMsMin: 60_000, backoffMsMax: 60_000 };
    const a = await startNode('a', slow);
    const b = await startNode('b', slow);
    a.transport.setPeers({ b: b.address });
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('first delivery', () => b.inbox.length === 1);
    await waitFor('a connected', () => a.transport.stats().peers.b?.connected === true);
    await b.transport.close();
    await waitFor('a notices', () => a.transport.stats().peers.b?.connected === false);
    a.transport.send([heartbeat('a', 'b', 2)]);
    // b comes back and dials a: a's own redial is a minute away, yet b hears from a now.
    const b2 = await startNode('b', slow, Number(b.address.split(':')[1]));
    b2.transport.setPeers({ a: a.address });
    b2.transport.send([heartbeat('b', 'a', 9)]);
    await waitFor('the queued message, well before the backoff', () => b2.inbox.length === 1, 5_000);
    expect(b2.inbox[0]).toMatchObject({ type: 'heartbeat', readSeq: 2 });
  });

  it('bounds the queue of an unreachable peer, dropping the oldest messages', async () => {
    const dropped: string[] = [];
    const port = await freePort();
    const a = await startNode('a', {
      maxQueuedMessages: 5,
      metrics: { dropped: (peer, n, reason) => dropped.push(`${peer}:${n}:${reason}`) },
    });
    a.transport.setPeers({ b: `${HOST}:${port}` });
    for (let i = 1; i <= 12; i++) a.transport.send([heartbeat('a', 'b', i)]);
    expect(a.transport.stats().dropped['queue-full']).toBe(7);
    expect(dropped).toEqual(Array(7).fill('b:1:queue-full'));
    expect(a.transport.stats().peers.b?.queued).toBe(5);

    const b = await startNode('b', {}, port);
    await waitFor('the newest five', () => b.inbox.length === 5);
    expect(b.inbox.map((m) => (m.type === 'heartbeat' ? m.readSeq : 0))).toEqual([8, 9, 10, 11, 12]);
  });

  it('stops writing on backpressure and keeps queueing within the bound', async () => {
    // A peer that accepts but does not read: the socket buffers fill and write() returns false.
    const stalled: net.Socket[] = [];
    const server = net.createServer((s) => {
      s.pause();
      stalled.push(s);
    });
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    cleanups.push(async () => {
      for (const s of stalled) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    });
    const a = await startNode('a', { maxQueuedMessages: 50 });
    a.transport.setPeers({ b: `${HOST}:${(server.address() as net.AddressInfo).port}` });
    await waitFor('connection', () => stalled.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 20)); // the dialer's side is connected too
    const big = (i: number): Message => ({
      type: 'append',
      from: 'a',
      to: 'b',
      term: 1,
      prevIndex: i,
      prevTerm: 1,
      commit: 0,
      entries: [{ type: 'normal', index: i + 1, term: 1, data: new Uint8Array(256 << 10).fill(i & 0xff) }],
    });
    for (let round = 0; round < 40; round++) {
      a.transport.send(Array.from({ length: 10 }, (_, k) => big(round * 10 + k)));
      await new Promise((resolve) => setImmediate(resolve)); // let flushes and drains run between rounds
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stats = a.transport.stats();
    // 400 × 256 KiB = 100 MiB offered; the kernel and the socket absorb a few MiB, the rest waits.
    expect(stats.sent).toBeGreaterThan(0);
    expect(stats.sent).toBeLessThan(200);
    expect(stats.peers.b?.queued).toBe(50);
    expect(stats.dropped['queue-full']).toBe(400 - 50 - stats.sent);

    // Once the peer reads again, 'drain' resumes writing and the queue empties.
    for (const s of stalled) s.resume();
    await waitFor('queue drained', () => a.transport.stats().peers.b?.queued === 0);
    expect(a.transport.stats().sent).toBe(400 - a.transport.stats().dropped['queue-full']);
  });

  it.each([
    ['a garbage body', Buffer.from([0, 0, 0, 3, 0xc1, 0xc1, 0xc1])],
    ['an oversized length', Buffer.from([0x7f, 0xff, 0xff, 0xff, 1, 2, 3])],
    ['a schema-invalid message', encodeFrame({ ...heartbeat('x', 'b', 1), term: -5 })],
    [
      'a hello that is not first',
      Buffer.concat([
        encodeFrame({ type: 'ping' }),
        encodeFrame({ type: 'hello', from: 'x', version: 1, cluster: null }),
      ]),
    ],
    ['a hello of another version', encodeFrame({ type: 'hello', from: 'x', version: 99, cluster: null })],
  ])('closes a connection that sends %s, and the next valid connection still works', async (_name, bytes) => {
    const b = await startNode('b', { maxFrameBytes: 1 << 20 });
    await rawExchange(b.address, Buffer.concat([bytes, encodeFrame(heartbeat('x', 'b', 1))]));
    const warning = b.logs.warnings('closing peer connection after a protocol error')[0];
    expect(warning?.remote).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(b.inbox).toHaveLength(0);

    const a = await startNode('a');
    a.transport.setPeers({ b: b.address });
    a.transport.send([heartbeat('a', 'b', 7)]);
    await waitFor('valid delivery', () => b.inbox.length === 1);
  });

  it('refuses a peer of another cluster, and accepts peers of the same cluster or without one yet', async () => {
    let cluster: string | null = 'c-1';
    const a = await startNode('a', { clusterId: () => 'c-1' });
    const b = await startNode('b', { clusterId: () => cluster });
    const stranger = await startNode('s', { clusterId: () => 'c-2' });
    for (const n of [a, stranger]) n.transport.setPeers({ b: b.address });
    a.transport.send([heartbeat('a', 'b', 1)]);
    stranger.transport.send([heartbeat('s', 'b', 1)]);
    await waitFor('the same cluster to get through', () => b.inbox.length === 1);
    await waitFor('the stranger to be refused', () =>
      b.logs.lines.some((l) => String(l.detail).includes('belongs to cluster c-2')),
    );
    expect(b.inbox.map((m) => m.from)).toEqual(['a']);
    // A node that has no cluster yet (about to be added) accepts whoever calls first.
    cluster = null;
    stranger.transport.setPeers({});
    stranger.transport.setPeers({ b: b.address });
    stranger.transport.send([heartbeat('s', 'b', 2)]);
    await waitFor('the unbound node to accept', () => b.inbox.some((m) => m.from === 's'));
  });

  it('survives an onMessage that throws', async () => {
    const a = await startNode('a');
    let calls = 0;
    const b = await startNode('b', {
      onMessage: () => {
        calls++;
        throw new Error('engine bug');
      },
    });
    a.transport.setPeers({ b: b.address });
    a.transport.send([heartbeat('a', 'b', 1), heartbeat('a', 'b', 2)]);
    await waitFor('both delivered', () => calls === 2);
    expect(b.logs.lines.filter((l) => l.msg === 'onMessage threw')).toHaveLength(2);
  });

  it('closes the connection of a peer removed by setPeers, and redials one whose address changed', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    const c = await startNode('c');
    a.transport.setPeers({ b: b.address });
    await waitFor('b sees a', () => b.transport.stats().inboundConnections === 1);
    a.transport.setPeers({});
    await waitFor('connection closed', () => b.transport.stats().inboundConnections === 0);
    expect(a.transport.stats().peers).toEqual({});

    // "b" moves to c's process: messages follow the new address.
    a.transport.setPeers({ b: b.address });
    a.transport.setPeers({ b: c.address });
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('c gets it (and drops it: not addressed to c)', () => {
      return c.transport.stats().dropped['wrong-recipient'] === 1;
    });
    await waitFor('b has no connection from a', () => b.transport.stats().inboundConnections === 0);
    expect(() => a.transport.setPeers({ b: 'no-port' })).toThrow(/peer address/);
    expect(a.transport.stats().peers.b?.address).toBe(c.address);
  });

  it('redials a peer that stops answering pings', async () => {
    let connections = 0;
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => {
      connections++;
      sockets.push(s);
      s.resume(); // reads everything, answers nothing
    });
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    cleanups.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    });
    const a = await startNode('a', { livenessTimeoutMs: 100 });
    a.transport.setPeers({ b: `${HOST}:${(server.address() as net.AddressInfo).port}` });
    await waitFor('a second connection', () => connections >= 2, 3000);
    // It never answered, so the dialer never counted it as connected.
    expect(a.logs.warnings('cannot connect to peer')[0]?.reason).toMatch(/no pong/);
    expect(a.transport.stats().peers.b?.connected).toBe(false);
  });

  it('never throws from send, even after close', async () => {
    const a = await startNode('a');
    a.transport.setPeers({ b: `${HOST}:1` });
    await a.transport.close();
    expect(() => a.transport.send([heartbeat('a', 'b', 1)])).not.toThrow();
    expect(a.transport.stats().dropped['peer-removed']).toBe(1);
  });

  it('leaves no socket or server open after close()', async () => {
    const sockets = (): number =>
      process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap').length;
    await new Promise((resolve) => setTimeout(resolve, 20)); // earlier tests' sockets finish closing
    const before = sockets();
    const a = await startNode('a');
    const b = await startNode('b');
    a.transport.setPeers({ b: b.address });
    b.transport.setPeers({ a: a.address });
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('delivery', () => b.inbox.length === 1);
    await Promise.all([a.transport.close(), b.transport.close()]);
    expect(sockets()).toBe(before);
  });

  it('leaves nothing that keeps the process alive after close() (timers included)', async () => {
    // Run in a child process: it must exit on its own right after close(). A leaked timer (a
    // liveness interval, a reconnect backoff, a scheduled flush) or socket would keep it alive.
    const script = `
      const { PeerTransport } = await import(${JSON.stringify(new URL('./peer-transport.ts', import.meta.url).pathname)});
      const hb = (from, to) => ({ type: 'heartbeat', from, to, term: 1, commit: 0, readSeq: 1 });
      let got = 0;
      const admission = { isMember: () => true, isRetired: () => false, advertisedAddress: () => undefined };
      const a = new PeerTransport({ selfId: 'a', admission, onMessage: () => got++, livenessTimeoutMs: 60_000, backoffMsMin: 30_000, backoffMsMax: 60_000 });
      const b = new PeerTransport({ selfId: 'b', admission, onMessage: () => got++, backoffMsMin: 30_000, backoffMsMax: 60_000 });
      const pa = (await a.listen('127.0.0.1', 0)).port;
      const pb = (await b.listen('127.0.0.1', 0)).port;
      a.setPeers({ b: '127.0.0.1:' + pb, z: '127.0.0.1:1' });
      b.setPeers({ a: '127.0.0.1:' + pa });
      a.send([hb('a', 'b')]); b.send([hb('b', 'a')]);
      while (got < 2 || a.stats().peers.z.connected !== false) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50)); // z has failed and waits out its 30 s backoff
      a.send([hb('a', 'b')]);
      await Promise.all([a.close(), b.close()]);
      console.log('closed ' + got);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let closedAt = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('closed')) closedAt ||= performance.now();
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
    clearTimeout(killer);
    expect({ code, signal, out: out.trim() }).toEqual({ code: 0, signal: null, out: 'closed 2' });
    expect(performance.now() - closedAt).toBeLessThan(1000);
  });
});
