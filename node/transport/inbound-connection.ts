// The receiving half of one connection a peer dialled to us. Every frame is decoded and parsed
// against the schema before anything else looks at it, and the first bad one ends the connection
// with a warning naming the remote address (the peer redials; nothing of it reached the engine).
//
// Who is speaking: the first frame must be a hello naming the dialer's node id and cluster id.
// The id must not be retired nor this node's own; a current member is admitted, and so is an id
// this node does not know yet once it has a cluster id (which the hello must match): a member
// that missed the entry adding a node must still follow that node when it leads. With TLS the id
// must be named by the certificate the handshake verified (node/certs/peer-identity.ts). From
// then on every message must carry that id as `from` and pass the structural checks
// (node/raft/message-checks.ts) before the engine sees it; a message the engine refuses as
// impossible (ProtocolViolation) ends the connection too. A valid message whose `to` is another
// node id is dropped (a node replaced at the same address), not refused.

import type net from 'node:net';
import { TLSSocket } from 'node:tls';
import { peerIdentityProblem } from '../certs/peer-identity.js';
import type { ProtocolViolation } from '../raft/errors.js';
import { messageProblem } from '../raft/message-checks.js';
import type { Message, NodeId } from '../raft/types.js';
import { parsePeerAddress } from './address.js';
import { decodeBody, encodeFrame } from './codec.js';
import { FRAME_HEADER_BYTES, FrameDecoder } from './framing.js';
import { checkHotFrame } from './message-check.js';
import {
  describeIssues,
  type Hello,
  type InboundFrame,
  inboundFrameSchema,
  PROTOCOL_VERSION,
} from './message-schema.js';
import type { Logger, PeerAdmission, ProtocolErrorReason } from './options.js';
import { shortMessage } from './short-message.js';
import { remoteOf } from './sockets.js';

export interface InboundOptions {
  selfId: NodeId;
  maxFrameBytes: number;
  /** A connection silent this long is dead (the dialer pings well within it): drop it. */
  idleTimeoutMs: number;
  /**
   * While bytes keep arriving, answer a pong at least this often even without a ping: a ping
   * queued behind a large frame on a slow link must not make the dialer think we are gone.
   */
  pongIntervalMs: number;
  logger: Logger;
  /** This node's cluster id, null while it has none. */
  clusterId(): string | null;
  admission: PeerAdmission;
  /** A dialer was admitted; `address`: the advertised peer address its hello announced, if any. */
  admitted(peer: NodeId, address: string | undefined): void;
  /** A valid message for this node from its authenticated sender; the engine's refusal, if any. */
  deliver(message: Message, frameBytes: number): ProtocolViolation | null;
  /** A valid message for another node id. */
  misaddressed(message: Message): void;
  /** A connection is being closed on a protocol error. */
  protocolError(reason: ProtocolErrorReason, peer: NodeId | null): void;
  /** Whether to warn about this refusal (a peer refused again and again is logged at debug). */
  shouldWarn(key: string): boolean;
}

const PONG_FRAME = encodeFrame({ type: 'pong' });
/** A dialer that does not read its pongs gets no more once this much is unsent. */
const MAX_UNSENT_PONG_BYTES = 64 << 10;

type Refusal = [ProtocolErrorReason, string];

/**
 * Why `id` may not speak to this node now, or null when it may: never a retired id; a member;
 * and, once this node has a cluster id (the hello must then name it), an id it does not know
 * yet, as etcd refuses only removed members. Membership is learnt from the log, so an allowlist
 * would lock a member that missed a node's addition out of that node's leadership for good.
 * With TLS the certificate must still be a node certificate of the cluster CA naming the id or
 * its address (helloProblem). Without TLS (--dev-insecure, loopback only) the same rule holds:
 * a hello proves nothing there, since any local process can already claim a member's id, so
 * refusing unknown ids would protect nothing; the structural and engine checks stand.
 */
function admissionProblem(opts: InboundOptions, id: NodeId): Refusal | null {
  if (opts.admission.isRetired(id)) return ['not-a-member', `${id} was removed from this node's cluster`];
  if (opts.admission.isMember(id) || opts.clusterId() !== null) return null;
  return ['not-a-member', `${id} is not a member, and this node has no cluster id yet`];
}

/** Why the dialer on `socket` may not speak as `hello.from` here, or null when it may. */
function helloProblem(opts: InboundOptions, socket: net.Socket, hello: Hello): Refusal | null {
  if (hello.version !== PROTOCOL_VERSION)
    return ['version', `protocol version ${hello.version}, expected ${PROTOCOL_VERSION}`];
  const own = opts.clusterId();
  if (own !== null && hello.cluster !== own)
    return [
      'cluster-mismatch',
      `${hello.from} belongs to cluster ${hello.cluster ?? '(none)'}, this node to ${own}`,
    ];
  if (hello.from === opts.selfId) return ['identity', `the dialer claims this node's own id ${hello.from}`];
  const refusal = admissionProblem(opts, hello.from);
  if (refusal) return refusal;
  if (socket instanceof TLSSocket) {
    // Bound to the address this node knows for the id; for an id it does not know yet, to the
    // address the hello announces (where this node will answer it, verifying that name again).
    const host = hostOf(opts.admission.advertisedAddress(hello.from)) ?? hostOf(hello.address);
    const problem = peerIdentityProblem(socket.getPeerCertificate(), hello.from, host);
    if (problem) return ['identity', `${hello.from}: ${problem}`];
  }
  return null;
}

/** One frame body decoded and parsed against the schema, or why it cannot be. */
function parseFrame(body: Buffer): { frame: InboundFrame } | { bad: string } {
  let value: unknown;
  try {
    value = decodeBody(body);
  } catch (err) {
    return { bad: `undecodable frame body: ${shortMessage(err)}` };
  }
  // The frames of the write path take a hand-written check that accepts exactly what the schema
  // does (message-check.ts); everything else, and anything it is unsure of, goes to the schema.
  const hot = checkHotFrame(value);
  if (hot !== null) return { frame: hot };
  const parsed = inboundFrameSchema.safeParse(value);
  if (!parsed.success) return { bad: `invalid frame: ${describeIssues(parsed.error)}` };
  return { frame: parsed.data };
}

/** The state of one inbound connection: who is speaking on it, and what it has said so far. */
class InboundConnection {
  log: Logger;
  frames = 0;
  /** The node id the hello claimed, once accepted: the only `from` this connection may carry. */
  private peer: NodeId | null = null;
  /** The node id a hello claimed, accepted or not (for logs). */
  private claimed: NodeId | null = null;
  private warnedMisaddressed = false;
  private lastPongMs = performance.now();
  private readonly decoder: FrameDecoder;

  constructor(
    private readonly socket: net.Socket,
    private readonly opts: InboundOptions,
  ) {
    this.log = opts.logger.child({ remote: remoteOf(socket) });
    this.decoder = new FrameDecoder(opts.maxFrameBytes);
  }

  private pong(): void {
    this.lastPongMs = performance.now();
    if (this.socket.writableLength < MAX_UNSENT_PONG_BYTES) this.socket.write(PONG_FRAME);
  }

  private refuse(reason: ProtocolErrorReason, detail: string): void {
    const who = this.peer ?? this.claimed;
    const claimed = this.claimed;
    const fields = { reason, detail, ...(this.peer ? {} : claimed ? { claimedPeer: claimed } : {}) };
    if (this.opts.shouldWarn(`${reason}:${who ?? ''}`))
      this.log.warn(fields, 'closing peer connection after a protocol error');
    else this.log.debug(fields, 'closing peer connection after a protocol error');
    this.opts.protocolError(reason, who);
    this.socket.destroy();
  }

  /** Acts on one parsed frame; what is wrong with it, if anything (the caller then refuses). */
  private handle(frame: InboundFrame, frameBytes: number): Refusal | null {
    const { opts } = this;
    if (frame.type === 'hello') {
      if (this.frames !== 1) return ['no-hello', 'a hello after the first frame'];
      this.claimed = frame.from;
      const problem = helloProblem(opts, this.socket, frame);
      if (problem) return problem;
      const peer = frame.from;
      this.peer = peer;
      this.log = this.log.child({ peer });
      this.log.info('peer connected');
      opts.admitted(peer, frame.address);
      return null;
    }
    const peer = this.peer;
    if (peer === null) return ['no-hello', `the first frame is a ${frame.type}, not a hello`];
    if (frame.type === 'ping') {
      this.pong();
      return null;
    }
    if (frame.from !== peer) return ['from-mismatch', `a message from ${frame.from} on ${peer}'s connection`];
    // Membership changes while connections stay up: a member removed since its hello stops here.
    const refusal = admissionProblem(opts, peer);
    if (refusal) return refusal;
    if (frame.to !== opts.selfId) {
      if (!this.warnedMisaddressed) {
        this.warnedMisaddressed = true;
        this.log.warn({ to: frame.to, from: frame.from }, 'dropping messages addressed to another node id');
      }
      opts.misaddressed(frame);
      return null;
    }
    const problem = messageProblem(frame);
    if (problem) return ['invalid-message', `${frame.type}: ${problem}`];
    const refused = opts.deliver(frame, frameBytes);
    return refused ? [refused.reason, refused.message] : null;
  }

  /** Decodes and handles every frame `chunk` completes; the first bad one ends the connection. */
  onData(chunk: Buffer): void {
    const { socket } = this;
    let bodies: Buffer[];
    try {
      bodies = this.decoder.push(chunk);
    } catch (err) {
      this.refuse('bad-frame', shortMessage(err));
      return;
    }
    for (const body of bodies) {
      if (socket.destroyed) return;
      this.frames++;
      const parsed = parseFrame(body);
      if ('bad' in parsed) {
        this.refuse('bad-frame', parsed.bad);
        return;
      }
      let refusal: Refusal | null;
      try {
        refusal = this.handle(parsed.frame, body.length + FRAME_HEADER_BYTES);
      } catch (err) {
        // A bug on our side, not the peer's: still, no frame may throw out of this handler.
        this.log.error({ err: shortMessage(err) }, 'failed to handle a peer frame; closing the connection');
        socket.destroy();
        return;
      }
      if (refusal) {
        this.refuse(...refusal);
        return;
      }
    }
    // Bytes are arriving, so the dialer's connection is alive even if its ping is still in transit.
    if (!socket.destroyed && performance.now() - this.lastPongMs >= this.opts.pongIntervalMs) this.pong();
  }
}

export function serveInbound(socket: net.Socket, opts: InboundOptions): void {
  const connection = new InboundConnection(socket, opts);
  socket.setTimeout(opts.idleTimeoutMs);
  socket.on('timeout', () => {
    connection.log.info({ idleTimeoutMs: opts.idleTimeoutMs }, 'closing silent peer connection');
    socket.destroy();
  });
  socket.on('error', (err) => connection.log.debug({ err: shortMessage(err) }, 'peer connection error'));
  socket.on('close', () => connection.log.debug({ frames: connection.frames }, 'peer connection closed'));
  socket.on('data', (chunk: Buffer) => connection.onData(chunk));
}

/** The host of a "host:port" address; undefined when there is none or it does not parse. */
function hostOf(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  try {
    return parsePeerAddress(address).host;
  } catch {
    return undefined;
  }
}
