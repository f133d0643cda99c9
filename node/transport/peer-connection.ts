// The outbound half of the transport: one persistent connection that this node dials to one peer
// and uses only to send. (The peer's messages to us arrive on the connection it dials to us; the
// only frames that come back on this one are pongs.) One owner per direction means no dial races
// and no tie-breaking: each side simply keeps its own dialer up.
//
// Invariants:
// - `enqueue` never blocks and never throws; the queue holds at most `maxQueuedMessages`, and a
//   full queue evicts its oldest message (counted as dropped): Raft retries what matters.
// - Messages are encoded lazily, when the socket can take them, so evicted ones cost nothing.
// - Nothing is written while `blocked` (the last write() returned false) until 'drain'.
// - All messages queued in one event-loop turn leave in one corked write burst (one syscall),
//   flushed by setImmediate on the same turn: never a timer, never a delay.
// - A connection that stays silent (no pong) for `livenessTimeoutMs` is destroyed and redialled:
//   after a partition heals, a fresh connection beats waiting out TCP's retransmission backoff.

import type net from 'node:net';
import type { Message, NodeId } from '../raft/types.js';
import type { PeerAddress } from './address.js';
import { backoffDelayMs } from './backoff.js';
import { BoundedQueue } from './bounded-queue.js';
import { takeBurst } from './burst.js';
import { decodeBody, encodeFrame } from './codec.js';
import { FRAME_HEADER_BYTES, FrameDecoder } from './framing.js';
import { describeIssues, outboundReplySchema, PROTOCOL_VERSION } from './message-schema.js';
import type { DropReason, Logger, PeerTlsOptions } from './options.js';
import { shortMessage } from './short-message.js';
import { dial } from './sockets.js';

export interface PeerConnectionOptions {
  selfId: NodeId;
  peerId: NodeId;
  address: PeerAddress;
  /** Read at every dial, so a reloaded certificate is used from the next connection on. */
  tls: () => PeerTlsOptions | null;
  maxQueuedMessages: number;
  maxFrameBytes: number;
  backoffMsMin: number;
  backoffMsMax: number;
  connectTimeoutMs: number;
  livenessTimeoutMs: number;
  random: () => number;
  logger: Logger;
  /** This node's cluster id right now, announced in every hello. */
  clusterId(): string | null;
  /** This node's advertised peer address, announced in every hello (when set). */
  advertisedAddress: string | undefined;
  onSent(messages: number, bytes: number): void;
  onDropped(messages: number, reason: DropReason): void;
}

/** The only frames a peer answers with are pongs: a few bytes. */
const MAX_REPLY_FRAME_BYTES = 1024;
const PING_FRAME = encodeFrame({ type: 'ping' });

export class PeerConnection {
  private readonly queue: BoundedQueue<Message>;
  private readonly log: Logger;
  private socket: net.Socket | null = null;
  /** The socket completed its (TLS) handshake and has not closed: frames may be written. */
  private connected = false;
  /**
   * The peer answered a ping on this connection: it accepted us (with TLS 1.3 a server refuses a
   * client certificate only after the client saw its handshake complete) and speaks our protocol.
   */
  private verified = false;
  /** The last write() returned false: wait for 'drain'. */
  private blocked = false;
  private pingDue = false;
  private closed = false;
  /** Failed dials since the last healthy connection; drives the backoff. */
  private attempt = 0;
  private connectedAtMs = 0;
  private lastHeardMs = 0;
  /** The message of the last failure logged at warn, so a repeating failure is logged once. */
  private lastFailure: string | null = null;
  private flushScheduled: NodeJS.Immediate | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private livenessTimer: NodeJS.Timeout | null = null;
  private socketClosed: Promise<void> = Promise.resolve();

  constructor(private readonly opts: PeerConnectionOptions) {
    this.queue = new BoundedQueue(opts.maxQueuedMessages);
    this.log = opts.logger.child({ peer: opts.peerId, peerAddress: opts.address.text });
    this.dial();
  }

  get address(): PeerAddress {
    return this.opts.address;
  }

  /** Connected and answering: the peer accepted this connection. */
  get isConnected(): boolean {
    return this.verified;
  }

  get queuedMessages(): number {
    return this.queue.length;
  }

  enqueue(message: Message): void {
    if (this.closed) {
      this.opts.onDropped(1, 'peer-removed');
      return;
    }
    if (this.queue.push(message) !== undefined) this.opts.onDropped(1, 'queue-full');
    if (this.connected && !this.blocked && this.flushScheduled === null) {
      this.flushScheduled = setImmediate(() => {
        this.flushScheduled = null;
        this.flush();
      });
    }
  }

  /** Removes and returns every queued message, oldest first (to move them to a new connection). */
  takeQueued(): Message[] {
    return this.queue.drain();
  }

  /**
   * Drops the current connection and dials again at once (queued messages are kept), so the
   * peer sees this node's current certificate. A dial already waiting is brought forward.
   */
  redial(): void {
    if (this.closed) return;
    if (this.socket) {
      this.attempt = 0;
      this.socket.destroy(new Error('TLS material reloaded; reconnecting'));
      return;
    }
    this.dialWaitingNow();
  }

  /**
   * The peer just connected to us, so it is up: a dial waiting out its backoff (the peer was down
   * or restarting) is made now, with the backoff reset. A live connection is left alone.
   */
  peerIsUp(): void {
    if (this.closed || this.socket || !this.reconnectTimer) return;
    this.attempt = 0;
    this.dialWaitingNow();
  }

  /** A dial waiting out its backoff is made now. */
  private dialWaitingNow(): void {
    if (!this.reconnectTimer) return;
    clearTimeout(this.reconnectTimer);
    this.dial();
  }

  /** Stops for good: whatever is still queued is dropped. Resolves once the socket has closed. */
  async close(): Promise<void> {
    this.closed = true;
    this.clearTimers();
    if (this.flushScheduled) clearImmediate(this.flushScheduled);
    this.flushScheduled = null;
    const left = this.queue.drain().length;
    if (left > 0) this.opts.onDropped(left, 'peer-removed');
    this.socket?.destroy();
    await this.socketClosed;
  }

  private dial(): void {
    this.reconnectTimer = null;
    if (this.closed) return;
    const { socket, readyEvent } = dial(this.opts.address, this.opts.tls());
    this.socket = socket;
    this.socketClosed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.connectTimer = setTimeout(() => {
      socket.destroy(new Error(`no connection within ${this.opts.connectTimeoutMs} ms`));
    }, this.opts.connectTimeoutMs);
    let failure: Error | null = null;
    socket.once(readyEvent, () => this.onConnected(socket));
    const decoder = new FrameDecoder(MAX_REPLY_FRAME_BYTES);
    socket.on('data', (chunk: Buffer) => this.onData(socket, decoder, chunk));
    socket.on('drain', () => {
      if (socket !== this.socket) return;
      this.blocked = false;
      this.flush();
    });
    socket.on('error', (err) => {
      failure = err;
    });
    socket.on('close', () => this.onClosed(socket, failure));
  }

  private onConnected(socket: net.Socket): void {
    if (socket !== this.socket || this.closed) return;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.connected = true;
    this.connectedAtMs = performance.now();
    this.lastHeardMs = this.connectedAtMs;
    const intervalMs = Math.max(10, Math.floor(this.opts.livenessTimeoutMs / 3));
    this.livenessTimer = setInterval(() => this.checkLiveness(socket), intervalMs);
    // The hello, a first ping (its pong confirms the peer accepted us) and whatever queued while
    // disconnected leave in one burst. Messages do not wait for the pong: that would cost a round trip.
    this.pingDue = true;
    socket.cork();
    socket.write(
      encodeFrame({
        type: 'hello',
        from: this.opts.selfId,
        version: PROTOCOL_VERSION,
        cluster: this.opts.clusterId(),
        ...(this.opts.advertisedAddress === undefined ? {} : { address: this.opts.advertisedAddress }),
      }),
    );
    this.flush();
    socket.uncork();
  }

  private checkLiveness(socket: net.Socket): void {
    const silentMs = performance.now() - this.lastHeardMs;
    if (silentMs > this.opts.livenessTimeoutMs) {
      socket.destroy(new Error(`peer silent for ${Math.round(silentMs)} ms (no pong)`));
      return;
    }
    this.pingDue = true;
    this.flush();
  }

  private onData(socket: net.Socket, decoder: FrameDecoder, chunk: Buffer): void {
    try {
      for (const body of decoder.push(chunk)) {
        const parsed = outboundReplySchema.safeParse(decodeBody(body));
        if (!parsed.success) throw new Error(`unexpected reply frame: ${describeIssues(parsed.error)}`);
        this.lastHeardMs = performance.now();
        if (!this.verified) {
          this.verified = true;
          this.lastFailure = null;
          this.log.info({ reconnectAttempts: this.attempt }, 'peer connection established');
        }
      }
    } catch (err) {
      socket.destroy(new Error(`protocol error from peer: ${shortMessage(err)}`));
    }
  }

  private onClosed(socket: net.Socket, failure: Error | null): void {
    if (socket !== this.socket) return;
    const wasVerified = this.verified;
    const upMs = this.connected ? performance.now() - this.connectedAtMs : 0;
    this.clearTimers();
    this.socket = null;
    this.connected = false;
    this.verified = false;
    this.blocked = false;
    this.pingDue = false;
    if (this.closed) return;
    // Only a connection that stayed up for a while resets the backoff: a peer that accepts and
    // then hangs up at once (a TLS 1.3 refusal, a protocol error) must not be redialled in a loop.
    if (upMs >= this.opts.backoffMsMax) this.attempt = 0;
    const delayMs = backoffDelayMs(
      this.attempt,
      this.opts.backoffMsMin,
      this.opts.backoffMsMax,
      this.opts.random,
    );
    this.attempt++;
    const reason = failure
      ? shortMessage(failure)
      : wasVerified
        ? 'closed by peer'
        : 'closed by peer before answering (a TLS peer refusing our certificate does this)';
    const fields = { reason, retryInMs: delayMs, queued: this.queue.length };
    // A failure that repeats is logged at warn once, then at debug until something changes.
    if (wasVerified) this.log.warn(fields, 'peer connection lost');
    else if (reason !== this.lastFailure) this.log.warn(fields, 'cannot connect to peer');
    else this.log.debug(fields, 'cannot connect to peer');
    this.lastFailure = wasVerified ? null : reason;
    this.reconnectTimer = setTimeout(() => this.dial(), delayMs);
  }

  /** Writes queued messages (and a due ping) in one corked burst, until done or blocked. */
  private flush(): void {
    const socket = this.socket;
    if (!socket || socket.destroyed || !this.connected || this.blocked) return;
    socket.cork();
    try {
      while (!this.blocked && (this.pingDue || this.queue.length > 0)) {
        const lead = this.pingDue ? PING_FRAME : null;
        this.pingDue = false;
        const { chunks, messages, bytes } = takeBurst(this.queue, lead, (m) => this.encode(m));
        for (const chunk of chunks) {
          if (!socket.write(chunk)) this.blocked = true;
        }
        if (messages > 0) this.opts.onSent(messages, bytes);
      }
    } finally {
      socket.uncork();
    }
  }

  private encode(message: Message): Buffer | null {
    let frame: Buffer;
    try {
      frame = encodeFrame(message);
    } catch (err) {
      this.log.error({ type: message.type, err: shortMessage(err) }, 'cannot encode message; dropped');
      this.opts.onDropped(1, 'unsendable');
      return null;
    }
    const bodyBytes = frame.length - FRAME_HEADER_BYTES;
    if (bodyBytes > this.opts.maxFrameBytes) {
      // The receiver would refuse it and drop the connection: never send it.
      this.log.error(
        { type: message.type, bodyBytes, maxFrameBytes: this.opts.maxFrameBytes },
        'message larger than the frame limit; dropped',
      );
      this.opts.onDropped(1, 'unsendable');
      return null;
    }
    return frame;
  }

  private clearTimers(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.livenessTimer) clearInterval(this.livenessTimer);
    this.reconnectTimer = null;
    this.connectTimer = null;
    this.livenessTimer = null;
  }
}
