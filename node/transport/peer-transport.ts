// PeerTransport: Raft peer traffic between node processes, the engine's `Transport`.
//
// Connection model: one connection per direction. This node dials every peer in the peer map and
// only sends on that connection (PeerConnection); every peer dials us and we only receive on the
// connections we accept (PeerListener). No dial races, no tie-breaking, and either side's
// reconnect logic is independent of the other's.
//
// Contract with the engine: `send` never blocks and never throws. Messages are best effort: they
// queue per peer while it is unreachable (bounded; the oldest are dropped first) and may be lost
// with a connection; Raft retries. Received messages reach `onMessage` only from a peer admitted
// on its hello (never a retired id; with TLS, one its certificate names: see PeerAdmission),
// only as that peer, only after schema and structural validation, and only when addressed to
// `selfId`. Anything else closes the connection it came on and is counted as a protocol error.
//
// Peer addresses come from the host (`setPeers`, from the membership). An admitted peer the host
// has no address for (a node added while this one missed the entry) is answered at the address
// its hello announced, until the host names it or it is retired.

import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { ProtocolViolation } from '../raft/errors.js';
import type { Transport } from '../raft/raft-node.js';
import type { Message, NodeId } from '../raft/types.js';
import { type PeerAddress, parsePeerAddress } from './address.js';
import { MAX_FRAME_BODY_BYTES } from './framing.js';
import type {
  DropReason,
  Logger,
  PeerAdmission,
  PeerTlsOptions,
  ProtocolErrorReason,
  TransportMetricsHooks,
} from './options.js';
import { PeerConnection } from './peer-connection.js';
import { PeerListener } from './peer-listener.js';
import { shortMessage } from './short-message.js';

export interface PeerTransportOptions {
  selfId: NodeId;
  /**
   * Called synchronously for every valid message addressed to `selfId`. Throwing a
   * ProtocolViolation refuses the message: its connection is closed as a protocol error.
   */
  onMessage: (message: Message) => void;
  /** Who may send to this node (see PeerAdmission). */
  admission: PeerAdmission;
  /** Mutual TLS on both directions; plain TCP without it. */
  tls?: PeerTlsOptions;
  logger?: Logger;
  /** Per peer; beyond it the oldest queued message is dropped. Default 4096. */
  maxQueuedMessages?: number;
  /** Largest frame body sent or accepted. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Reconnect delay bounds (exponential backoff, full jitter). Defaults 50 and 2000. */
  backoffMsMin?: number;
  backoffMsMax?: number;
  /** A dial (TCP connect and TLS handshake) not done by then is abandoned. Default 2000. */
  connectTimeoutMs?: number;
  /** An outbound connection with no pong for this long is redialled. Default 5000. */
  livenessTimeoutMs?: number;
  metrics?: TransportMetricsHooks;
  /** Jitter source, a float in [0, 1). Default Math.random. */
  random?: () => number;
  /** This node's cluster id (announced to peers; peers of another cluster are refused). Default none. */
  clusterId?: () => string | null;
  /**
   * This node's advertised peer address ("host:port"), announced in hellos: a peer that does not
   * know this node yet answers it there. Default none.
   */
  advertisedAddress?: string;
}

export interface PeerStatus {
  address: string;
  connected: boolean;
  queued: number;
}

export interface TransportStats {
  sent: number;
  received: number;
  dropped: Record<DropReason, number>;
  /** Inbound connections closed on a protocol error, by reason. */
  protocolErrors: Partial<Record<ProtocolErrorReason, number>>;
  peers: Record<NodeId, PeerStatus>;
  inboundConnections: number;
}

/** A refusal repeated within this time (same reason, same peer) is logged at debug, not warn. */
const WARN_INTERVAL_MS = 60_000;
/** Bound on the refusals remembered for that, whatever ids dialers claim. */
const MAX_WARN_KEYS = 1024;
/** Bound on the addresses learnt from hellos (the oldest is forgotten first). */
const MAX_LEARNED_ADDRESSES = 16;

const DEFAULTS = {
  maxQueuedMessages: 4096,
  maxFrameBytes: 64 << 20,
  backoffMsMin: 50,
  backoffMsMax: 2000,
  connectTimeoutMs: 2000,
  livenessTimeoutMs: 5000,
};

type Settings = typeof DEFAULTS;

export class PeerTransport implements Transport {
  private readonly selfId: NodeId;
  private readonly settings: Settings;
  private readonly log: Logger;
  private readonly peers = new Map<NodeId, PeerConnection>();
  /** The peer map as the host last set it. */
  private configured = new Map<NodeId, PeerAddress>();
  /** Addresses announced in the hellos of admitted peers the host gave no address for. */
  private readonly learned = new Map<NodeId, PeerAddress>();
  private readonly closing = new Set<Promise<void>>();
  private readonly warnedUnknown = new Set<NodeId>();
  private readonly listener: PeerListener;
  private listened = false;
  private tls: PeerTlsOptions | null;
  private closed = false;
  private sent = 0;
  private received = 0;
  private readonly dropped: Record<DropReason, number> = {
    'queue-full': 0,
    'unknown-peer': 0,
    'peer-removed': 0,
    unsendable: 0,
    'wrong-recipient': 0,
  };
  private readonly protocolErrors: Partial<Record<ProtocolErrorReason, number>> = {};
  private readonly warnedAt = new Map<string, number>();

  constructor(private readonly opts: PeerTransportOptions) {
    this.selfId = opts.selfId;
    this.settings = resolveSettings(opts);
    this.tls = opts.tls ?? null;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({
      component: 'transport',
      nodeId: opts.selfId,
    });
    this.listener = new PeerListener(
      opts.tls ?? null,
      {
        selfId: opts.selfId,
        maxFrameBytes: this.settings.maxFrameBytes,
        idleTimeoutMs: 2 * this.settings.livenessTimeoutMs,
        pongIntervalMs: Math.floor(this.settings.livenessTimeoutMs / 3),
        logger: this.log,
        clusterId: () => this.opts.clusterId?.() ?? null,
        admission: opts.admission,
        admitted: (peer, address) => {
          this.learn(peer, address);
          // A restarted peer hears from us at once, not when our backoff (up to 2 s) runs out.
          this.peers.get(peer)?.peerIsUp();
        },
        deliver: (message, frameBytes) => this.deliver(message, frameBytes),
        misaddressed: (message) => this.drop(message.from, 1, 'wrong-recipient'),
        protocolError: (reason, peer) => this.protocolError(reason, peer),
        shouldWarn: (key) => this.shouldWarn(key),
      },
      this.log,
    );
  }

  /** Starts accepting peers' connections. Once only. */
  async listen(host: string, port: number): Promise<AddressInfo> {
    if (this.closed) throw new Error('transport is closed');
    if (this.listened) throw new Error('transport is already listening');
    this.listened = true;
    const address = await this.listener.listen(host, port);
    this.log.info(
      { host: address.address, port: address.port, tls: this.opts.tls !== undefined },
      'listening',
    );
    return address;
  }

  /**
   * New TLS material (a reloaded certificate or CA bundle): the listener uses it for handshakes
   * from now on and drops the connections it verified under the old trust, and every outbound
   * connection is re-established with it, so peers see the new certificate promptly. Raft
   * retries what a dropped connection loses. Only for a transport that was started with TLS.
   */
  setTls(tls: PeerTlsOptions): void {
    if (this.tls === null) throw new Error('this transport runs plain TCP; it cannot switch to TLS');
    this.listener.setTls(tls);
    this.tls = tls;
    for (const conn of this.peers.values()) conn.redial();
    this.log.info({ peers: this.peers.size }, 'TLS material replaced; reconnecting to peers');
  }

  /**
   * Replaces the peer map (id -> "host:port"; an entry for selfId is ignored). New peers are
   * dialled, removed ones disconnected (their queued messages dropped), and a peer whose address
   * changed is redialled with its queue kept. Throws InvalidPeerAddressError, changing nothing, if
   * any address is malformed.
   */
  setPeers(peers: Record<NodeId, string>): void {
    if (this.closed) return;
    const next = new Map<NodeId, PeerAddress>();
    for (const [id, text] of Object.entries(peers)) {
      if (id !== this.selfId) next.set(id, parsePeerAddress(text));
    }
    this.configured = next;
    for (const id of next.keys()) this.learned.delete(id);
    this.warnedUnknown.clear();
    this.reconcile();
  }

  /**
   * An admitted peer announced its address: when the host gave none for it, answer it there (a
   * member that missed the entry adding that node must still reply to it when it leads).
   */
  private learn(id: NodeId, text: string | undefined): void {
    if (text === undefined || this.closed || this.configured.has(id)) return;
    let address: PeerAddress;
    try {
      address = parsePeerAddress(text);
    } catch (err) {
      this.log.debug({ peer: id, err: shortMessage(err) }, 'ignoring the malformed address of a hello');
      return;
    }
    if (this.learned.get(id)?.text === address.text) return;
    this.learned.delete(id);
    const oldest = this.learned.keys().next();
    if (this.learned.size >= MAX_LEARNED_ADDRESSES && !oldest.done) this.learned.delete(oldest.value);
    this.learned.set(id, address);
    this.warnedUnknown.delete(id);
    this.log.info({ peer: id, address: address.text }, 'answering a peer at the address its hello announced');
    this.reconcile();
  }

  /** Connects to the host's peers and the learnt ones (never a retired id), and only to them. */
  private reconcile(): void {
    for (const id of [...this.learned.keys()]) {
      if (this.opts.admission.isRetired(id)) this.learned.delete(id);
    }
    const next = new Map([...this.learned, ...this.configured]);
    for (const [id, conn] of this.peers) {
      const address = next.get(id);
      if (address?.text === conn.address.text) continue;
      this.peers.delete(id);
      const requeue = address ? conn.takeQueued() : [];
      if (address)
        this.log.info({ peer: id, from: conn.address.text, to: address.text }, 'peer address changed');
      else this.log.info({ peer: id, address: conn.address.text }, 'peer removed');
      this.track(conn.close());
      if (address) {
        const replacement = this.connect(id, address);
        for (const message of requeue) replacement.enqueue(message);
      }
    }
    for (const [id, address] of next) {
      if (!this.peers.has(id)) this.connect(id, address);
    }
  }

  send(messages: Message[]): void {
    try {
      for (const message of messages) {
        const conn = this.peers.get(message.to);
        if (conn) {
          conn.enqueue(message);
          continue;
        }
        this.drop(message.to, 1, this.closed ? 'peer-removed' : 'unknown-peer');
        if (!this.closed && !this.warnedUnknown.has(message.to)) {
          this.warnedUnknown.add(message.to);
          this.log.warn(
            { peer: message.to, type: message.type },
            'no address for peer; dropping its messages',
          );
        }
      }
    } catch (err) {
      // Unreachable by design; the engine must never see a throw from here regardless.
      this.log.error({ err: shortMessage(err) }, 'transport send failed');
    }
  }

  stats(): TransportStats {
    const peers: Record<NodeId, PeerStatus> = {};
    for (const [id, conn] of this.peers) {
      peers[id] = { address: conn.address.text, connected: conn.isConnected, queued: conn.queuedMessages };
    }
    return {
      sent: this.sent,
      received: this.received,
      dropped: { ...this.dropped },
      protocolErrors: { ...this.protocolErrors },
      peers,
      inboundConnections: this.listener.connections,
    };
  }

  /** Disconnects everything; resolves once no socket, server, or timer of this transport remains. */
  async close(): Promise<void> {
    if (this.closed) {
      await Promise.all([...this.closing]);
      return;
    }
    this.closed = true;
    for (const conn of this.peers.values()) this.track(conn.close());
    this.peers.clear();
    this.track(this.listener.close());
    await Promise.all([...this.closing]);
    this.log.info('transport closed');
  }

  private connect(id: NodeId, address: PeerAddress): PeerConnection {
    const conn = new PeerConnection({
      ...this.settings,
      selfId: this.selfId,
      peerId: id,
      address,
      tls: () => this.tls,
      random: this.opts.random ?? Math.random,
      logger: this.log,
      clusterId: () => this.opts.clusterId?.() ?? null,
      advertisedAddress: this.opts.advertisedAddress,
      onSent: (messages, bytes) => {
        this.sent += messages;
        this.hook(() => this.opts.metrics?.sent?.(id, messages, bytes));
      },
      onDropped: (messages, reason) => this.drop(id, messages, reason),
    });
    this.peers.set(id, conn);
    return conn;
  }

  /** Hands a message to the engine; its refusal, if it refused it as impossible. */
  private deliver(message: Message, frameBytes: number): ProtocolViolation | null {
    if (this.closed) return null;
    this.received++;
    this.hook(() => this.opts.metrics?.received?.(message.from, 1, frameBytes));
    try {
      this.opts.onMessage(message);
    } catch (err) {
      if (err instanceof ProtocolViolation) return err;
      this.log.error({ err: shortMessage(err), type: message.type, from: message.from }, 'onMessage threw');
    }
    return null;
  }

  private protocolError(reason: ProtocolErrorReason, peer: NodeId | null): void {
    this.protocolErrors[reason] = (this.protocolErrors[reason] ?? 0) + 1;
    // A peer refused as retired (or unknown) is no longer answered at the address it announced.
    if (reason === 'not-a-member' && peer !== null && this.learned.delete(peer)) this.reconcile();
    this.hook(() => this.opts.metrics?.protocolError?.(reason, peer));
  }

  private shouldWarn(key: string): boolean {
    const now = performance.now();
    const last = this.warnedAt.get(key);
    if (last !== undefined && now - last < WARN_INTERVAL_MS) return false;
    if (this.warnedAt.size >= MAX_WARN_KEYS) this.warnedAt.clear();
    this.warnedAt.set(key, now);
    return true;
  }

  private drop(peer: NodeId, messages: number, reason: DropReason): void {
    this.dropped[reason] += messages;
    this.hook(() => this.opts.metrics?.dropped?.(peer, messages, reason));
  }

  /** Metrics hooks are the host's code on our hot path: a throwing hook must not break delivery. */
  private hook(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err: shortMessage(err) }, 'transport metrics hook threw');
    }
  }

  private track(closing: Promise<unknown>): void {
    const done = closing.then(
      () => undefined,
      (err: unknown) => this.log.error({ err: shortMessage(err) }, 'error while closing'),
    );
    this.closing.add(done);
    void done.finally(() => this.closing.delete(done));
  }
}

function resolveSettings(opts: PeerTransportOptions): Settings {
  const settings: Settings = {
    maxQueuedMessages: opts.maxQueuedMessages ?? DEFAULTS.maxQueuedMessages,
    maxFrameBytes: opts.maxFrameBytes ?? DEFAULTS.maxFrameBytes,
    backoffMsMin: opts.backoffMsMin ?? DEFAULTS.backoffMsMin,
    backoffMsMax: opts.backoffMsMax ?? DEFAULTS.backoffMsMax,
    connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    livenessTimeoutMs: opts.livenessTimeoutMs ?? DEFAULTS.livenessTimeoutMs,
  };
  for (const [name, value] of Object.entries(settings)) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  }
  if (settings.maxFrameBytes > MAX_FRAME_BODY_BYTES)
    throw new RangeError('maxFrameBytes must fit in 32 bits');
  if (settings.backoffMsMax < settings.backoffMsMin)
    throw new RangeError('backoffMsMax must be >= backoffMsMin');
  return settings;
}
