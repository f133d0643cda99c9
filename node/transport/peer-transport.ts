// PeerTransport: Raft peer traffic between node processes, the engine's `Transport`.
//
// Connection model: one connection per direction. This node dials every peer in the peer map and
// only sends on that connection (PeerConnection); every peer dials us and we only receive on the
// connections we accept (PeerListener). No dial races, no tie-breaking, and either side's
// reconnect logic is independent of the other's.
//
// Contract with the engine: `send` never blocks and never throws. Messages are best effort: they
// queue per peer while it is unreachable (bounded; the oldest are dropped first) and may be lost
// with a connection; Raft retries. Received messages reach `onMessage` only from a current
// member that announced itself in a hello (and, with TLS, whose certificate names it), only as
// that member, only after schema and structural validation, and only when addressed to `selfId`.
// Anything else closes the connection it came on and is counted as a protocol error.

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
    this.warnedUnknown.clear();
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
