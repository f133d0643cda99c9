// Who may speak on the peer port, and as whom: a mandatory hello from a member or from a node not
// known yet of the receiver's cluster (never a retired id), every message carrying the hello's
// id, structurally valid, and not refused by the engine. Each refusal closes the connection,
// reaches nothing, and is counted by reason.
import { afterEach, describe, expect, it } from 'vitest';
import { ProtocolViolation } from '../raft/errors.js';
import type { Message, NodeId } from '../raft/types.js';
import type { PeerAdmission, ProtocolErrorReason } from './options.js';
import { PeerTransport } from './peer-transport.js';
import { admitAll, captureLogs, hello, type RawPeer, rawPeer, waitFor } from './test-support.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const heartbeat = (from: NodeId, readSeq = 1, term = 3): Message => ({
  type: 'heartbeat',
  from,
  to: 'b',
  term,
  commit: 0,
  readSeq,
});

interface Receiver {
  transport: PeerTransport;
  inbox: Message[];
  members: Set<NodeId>;
  retired: Set<NodeId>;
  errors: [ProtocolErrorReason, NodeId | null][];
  logs: ReturnType<typeof captureLogs>;
  dial(): Promise<RawPeer>;
}

/** Node "b" with members a and c (old is retired), in cluster c-1 unless told otherwise. */
async function receiver(
  opts: { onMessage?: (m: Message) => void; cluster?: string | null } = {},
): Promise<Receiver> {
  const inbox: Message[] = [];
  const members = new Set(['a', 'b', 'c']);
  const retired = new Set(['old']);
  const errors: [ProtocolErrorReason, NodeId | null][] = [];
  const logs = captureLogs();
  const admission: PeerAdmission = {
    isMember: (id) => members.has(id),
    isRetired: (id) => retired.has(id),
    advertisedAddress: () => undefined,
  };
  const transport = new PeerTransport({
    selfId: 'b',
    admission,
    onMessage: opts.onMessage ?? ((m) => inbox.push(m)),
    clusterId: () => (opts.cluster === undefined ? 'c-1' : opts.cluster),
    logger: logs.logger,
    metrics: { protocolError: (reason, peer) => errors.push([reason, peer]) },
  });
  cleanups.push(() => transport.close());
  const { port } = await transport.listen('127.0.0.1', 0);
  const dial = async () => {
    const peer = await rawPeer(`127.0.0.1:${port}`);
    cleanups.push(() => peer.destroy());
    return peer;
  };
  return { transport, inbox, members, retired, errors, logs, dial };
}

/** Sends `frames` and waits for the node to hang up. */
async function refused(r: Receiver, ...frames: unknown[]): Promise<void> {
  const peer = await r.dial();
  peer.send(...frames);
  await peer.closed;
}

describe('peer admission on the listening side', () => {
  it('delivers the messages of a member that said hello first', async () => {
    const r = await receiver();
    const peer = await r.dial();
    peer.send(hello('a', 'c-1'), { type: 'ping' }, heartbeat('a', 1), heartbeat('a', 2));
    await waitFor('delivery', () => r.inbox.length === 2);
    await waitFor('a pong', () => peer.replies.length > 0);
    expect(peer.isClosed()).toBe(false);
    expect(r.errors).toEqual([]);
    expect(r.logs.lines.some((l) => l.msg === 'peer connected' && l.peer === 'a')).toBe(true);
  });

  it.each<[string, unknown[], ProtocolErrorReason]>([
    ['a message before any hello', [heartbeat('a')], 'no-hello'],
    ['a ping before any hello', [{ type: 'ping' }, hello('a', 'c-1')], 'no-hello'],
    ['a second hello', [hello('a', 'c-1'), hello('c', 'c-1')], 'no-hello'],
    [
      'a hello without a cluster id to a node that has one',
      [hello('a', null), heartbeat('a')],
      'cluster-mismatch',
    ],
    ['a hello from another cluster', [hello('a', 'c-2'), heartbeat('a')], 'cluster-mismatch'],
    ['a hello from a retired node', [hello('old', 'c-1'), heartbeat('old')], 'not-a-member'],
    ['a hello claiming the receiver’s own id', [hello('b', 'c-1'), heartbeat('b')], 'identity'],
  ])('refuses %s', async (_name, frames, reason) => {
    const r = await receiver();
    await refused(r, ...frames);
    expect(r.inbox).toEqual([]);
    expect(r.errors.map(([why]) => why)).toEqual([reason]);
    expect(r.transport.stats().protocolErrors).toEqual({ [reason]: 1 });
    expect(r.logs.warnings('closing peer connection after a protocol error')[0]).toMatchObject({ reason });
  });

  it('drops a message whose `from` is not the hello’s id, and the connection with it', async () => {
    const r = await receiver();
    await refused(r, hello('a', 'c-1'), heartbeat('a', 1), heartbeat('c', 2), heartbeat('a', 3));
    expect(r.inbox.map((m) => `${m.from}:${m.type === 'heartbeat' ? m.readSeq : ''}`)).toEqual(['a:1']);
    expect(r.errors).toEqual([['from-mismatch', 'a']]);
  });

  it('cuts a member off at its next message once it is removed', async () => {
    const r = await receiver();
    const peer = await r.dial();
    peer.send(hello('a', 'c-1'), heartbeat('a', 1));
    await waitFor('first delivery', () => r.inbox.length === 1);
    r.members.delete('a');
    r.retired.add('a');
    peer.send(heartbeat('a', 2));
    await peer.closed;
    expect(r.inbox).toHaveLength(1);
    expect(r.errors).toEqual([['not-a-member', 'a']]);
  });

  it('refuses a structurally invalid message before the engine sees it (an index gap)', async () => {
    const r = await receiver();
    const gap: Message = {
      type: 'append',
      from: 'a',
      to: 'b',
      term: 3,
      prevIndex: 10,
      prevTerm: 3,
      entries: [{ type: 'blank', index: 1011, term: 3 }],
      commit: 0,
    };
    await refused(r, hello('a', 'c-1'), gap);
    expect(r.inbox).toEqual([]);
    expect(r.errors).toEqual([['invalid-message', 'a']]);
    expect(String(r.logs.warnings('protocol error')[0]?.detail)).toMatch(/index 1011, expected 11/);
  });

  it('closes the connection of a message the engine refuses as impossible, and keeps serving others', async () => {
    const inbox: Message[] = [];
    const r = await receiver({
      onMessage: (m) => {
        if (m.from === 'c')
          throw new ProtocolViolation('conflicting-leader', 'safety: two leaders in term 3');
        inbox.push(m);
      },
    });
    await refused(r, hello('c', 'c-1'), heartbeat('c', 1), heartbeat('c', 2));
    expect(r.errors).toEqual([['conflicting-leader', 'c']]);
    const a = await r.dial();
    a.send(hello('a', 'c-1'), heartbeat('a', 7));
    await waitFor('a still gets through', () => inbox.length === 1);
    expect(a.isClosed()).toBe(false);
  });

  it('accepts a hello without a cluster id while the node has none (it is about to be added)', async () => {
    const r = await receiver({ cluster: null });
    const peer = await r.dial();
    peer.send(hello('a', null), heartbeat('a'));
    await waitFor('delivery', () => r.inbox.length === 1);
  });

  it('warns about a peer refused again and again once, then logs at debug', async () => {
    const r = await receiver();
    r.retired.add('n9').add('n8');
    for (let i = 0; i < 3; i++) await refused(r, hello('n9', 'c-1'));
    expect(r.errors).toEqual(Array(3).fill(['not-a-member', 'n9']));
    expect(r.logs.warnings('closing peer connection after a protocol error')).toHaveLength(1);
    await refused(r, hello('n8', 'c-1'));
    const warned = r.logs.warnings('closing peer connection after a protocol error');
    expect(warned.map((l) => l.claimedPeer)).toEqual(['n9', 'n8']);
  });

  it('refuses a node it does not know while it has no cluster id of its own', async () => {
    const r = await receiver({ cluster: null });
    await refused(r, hello('n9', null), heartbeat('n9'));
    expect(r.errors).toEqual([['not-a-member', 'n9']]);
    expect(r.inbox).toEqual([]);
  });
});

describe('a node this one does not know yet (added while it lagged)', () => {
  /** "d", a real node: it receives what "b" answers at the address its hello announced. */
  async function nodeD() {
    const inbox: Message[] = [];
    const transport = new PeerTransport({
      selfId: 'd',
      admission: admitAll,
      onMessage: (m) => inbox.push(m),
    });
    cleanups.push(() => transport.close());
    const { port } = await transport.listen('127.0.0.1', 0);
    return { inbox, address: `127.0.0.1:${port}` };
  }
  const reply = (to: NodeId, index: number): Message => ({
    type: 'append-response',
    from: 'b',
    to,
    term: 3,
    index,
    reject: true,
    hintIndex: 1,
    hintTerm: 1,
  });

  it('is admitted when its hello names this cluster, and answered at the address it announced', async () => {
    const r = await receiver();
    const d = await nodeD();
    const peer = await r.dial();
    peer.send(hello('d', 'c-1', d.address), heartbeat('d', 1));
    await waitFor('delivery', () => r.inbox.length === 1);
    expect(r.errors).toEqual([]);
    expect(r.transport.stats().peers.d?.address).toBe(d.address);
    r.transport.send([reply('d', 1)]);
    await waitFor('the answer reaches d', () => d.inbox.length === 1);
    // The host's peer map (the membership) takes over once it names d; other updates keep it.
    r.transport.setPeers({ a: '127.0.0.1:1' });
    expect(r.transport.stats().peers.d?.address).toBe(d.address);
    r.transport.setPeers({ a: '127.0.0.1:1', d: '127.0.0.1:2' });
    expect(r.transport.stats().peers.d?.address).toBe('127.0.0.1:2');
    r.transport.setPeers({ a: '127.0.0.1:1' });
    expect(r.transport.stats().peers.d).toBeUndefined();
  });

  it('is refused from another cluster, or once retired, and no longer answered', async () => {
    const r = await receiver();
    const d = await nodeD();
    await refused(r, hello('d', 'c-2', d.address), heartbeat('d'));
    expect(r.transport.stats().peers.d).toBeUndefined();
    const peer = await r.dial();
    peer.send(hello('d', 'c-1', d.address), heartbeat('d', 1));
    await waitFor('delivery', () => r.inbox.length === 1);
    r.retired.add('d');
    peer.send(heartbeat('d', 2));
    await peer.closed;
    expect(r.inbox).toHaveLength(1);
    expect(r.errors).toEqual([
      ['cluster-mismatch', 'd'],
      ['not-a-member', 'd'],
    ]);
    expect(r.transport.stats().peers.d).toBeUndefined();
  });

  it('is admitted without an address (an older peer), and then cannot be answered', async () => {
    const r = await receiver();
    const peer = await r.dial();
    peer.send(hello('d', 'c-1'), heartbeat('d', 1));
    await waitFor('delivery', () => r.inbox.length === 1);
    r.transport.send([reply('d', 1)]);
    expect(r.transport.stats().dropped['unknown-peer']).toBe(1);
  });
});
