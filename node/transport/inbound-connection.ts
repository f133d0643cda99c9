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

export function serveInbound(socket: net.Socket, opts: InboundOptions): void {
  const remote = remoteOf(socket);
  let log = opts.logger.child({ remote });
  const decoder = new FrameDecoder(opts.maxFrameBytes);
  let frames = 0;
  /** The node id the hello claimed, once accepted: the only `from` this connection may carry. */
  let peer: NodeId | null = null;
  /** The node id a hello claimed, accepted or not (for logs). */
  let claimed: NodeId | null = null;
  let warnedMisaddressed = false;
  let lastPongMs = performance.now();

  const pong = (): void => {
    lastPongMs = performance.now();
    if (socket.writableLength < MAX_UNSENT_PONG_BYTES) socket.write(PONG_FRAME);
  };

  const refuse = (reason: ProtocolErrorReason, detail: string): void => {
    const who = peer ?? claimed;
    const fields = { reason, detail, ...(peer ? {} : claimed ? { claimedPeer: claimed } : {}) };
    if (opts.shouldWarn(`${reason}:${who ?? ''}`))
      log.warn(fields, 'closing peer connection after a protocol error');
    else log.debug(fields, 'closing peer connection after a protocol error');
    opts.protocolError(reason, who);
    socket.destroy();
  };

  type Refusal = [ProtocolErrorReason, string];

  /** Why the dialer may not speak as `hello.from` here, or null when it may. */
  const helloProblem = (hello: Hello): Refusal | null => {
    if (hello.version !== PROTOCOL_VERSION)
      return ['version', `protocol version ${hello.version}, expected ${PROTOCOL_VERSION}`];
    const own = opts.clusterId();
    if (own !== null && hello.cluster !== own)
      return [
        'cluster-mismatch',
        `${hello.from} belongs to cluster ${hello.cluster ?? '(none)'}, this node to ${own}`,
      ];
    if (hello.from === opts.selfId) return ['identity', `the dialer claims this node's own id ${hello.from}`];
    const refusal = admissionProblem(hello.from);
    if (refusal) return refusal;
    if (socket instanceof TLSSocket) {
      // Bound to the address this node knows for the id; for an id it does not know yet, to the
      // address the hello announces (where this node will answer it, verifying that name again).
      const host = hostOf(opts.admission.advertisedAddress(hello.from)) ?? hostOf(hello.address);
      const problem = peerIdentityProblem(socket.getPeerCertificate(), hello.from, host);
      if (problem) return ['identity', `${hello.from}: ${problem}`];
    }
    return null;
  };

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
  const admissionProblem = (id: NodeId): Refusal | null => {
    if (opts.admission.isRetired(id)) return ['not-a-member', `${id} was removed from this node's cluster`];
    if (opts.admission.isMember(id) || opts.clusterId() !== null) return null;
    return ['not-a-member', `${id} is not a member, and this node has no cluster id yet`];
  };

  /** Acts on one parsed frame; what is wrong with it, if anything (the caller then refuses). */
  const handle = (frame: InboundFrame, frameBytes: number): Refusal | null => {
    if (frame.type === 'hello') {
      if (frames !== 1) return ['no-hello', 'a hello after the first frame'];
      claimed = frame.from;
      const problem = helloProblem(frame);
      if (problem) return problem;
      peer = frame.from;
      log = log.child({ peer });
      log.info('peer connected');
      opts.admitted(peer, frame.address);
      return null;
    }
    if (peer === null) return ['no-hello', `the first frame is a ${frame.type}, not a hello`];
    if (frame.type === 'ping') {
      pong();
      return null;
    }
    if (frame.from !== peer) return ['from-mismatch', `a message from ${frame.from} on ${peer}'s connection`];
    // Membership changes while connections stay up: a member removed since its hello stops here.
    const refusal = admissionProblem(peer);
    if (refusal) return refusal;
    if (frame.to !== opts.selfId) {
      if (!warnedMisaddressed) {
        warnedMisaddressed = true;
        log.warn({ to: frame.to, from: frame.from }, 'dropping messages addressed to another node id');
      }
      opts.misaddressed(frame);
      return null;
    }
    const problem = messageProblem(frame);
    if (problem) return ['invalid-message', `${frame.type}: ${problem}`];
    const refused = opts.deliver(frame, frameBytes);
    return refused ? [refused.reason, refused.message] : null;
  };

  socket.setTimeout(opts.idleTimeoutMs);
  socket.on('timeout', () => {
    log.info({ idleTimeoutMs: opts.idleTimeoutMs }, 'closing silent peer connection');
    socket.destroy();
  });
  socket.on('error', (err) => log.debug({ err: shortMessage(err) }, 'peer connection error'));
  socket.on('close', () => log.debug({ frames }, 'peer connection closed'));
  socket.on('data', (chunk: Buffer) => {
    let bodies: Buffer[];
    try {
      bodies = decoder.push(chunk);
    } catch (err) {
      return refuse('bad-frame', shortMessage(err));
    }
    for (const body of bodies) {
      if (socket.destroyed) return;
      frames++;
      let value: unknown;
      try {
        value = decodeBody(body);
      } catch (err) {
        return refuse('bad-frame', `undecodable frame body: ${shortMessage(err)}`);
      }
      const parsed = inboundFrameSchema.safeParse(value);
      if (!parsed.success) return refuse('bad-frame', `invalid frame: ${describeIssues(parsed.error)}`);
      let refusal: Refusal | null;
      try {
        refusal = handle(parsed.data, body.length + FRAME_HEADER_BYTES);
      } catch (err) {
        // A bug on our side, not the peer's: still, no frame may throw out of this handler.
        log.error({ err: shortMessage(err) }, 'failed to handle a peer frame; closing the connection');
        socket.destroy();
        return;
      }
      if (refusal) return refuse(...refusal);
    }
    // Bytes are arriving, so the dialer's connection is alive even if its ping is still in transit.
    if (!socket.destroyed && performance.now() - lastPongMs >= opts.pongIntervalMs) pong();
  });
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
