// The receiving half of one connection a peer dialled to us. Every frame is decoded and parsed
// against the schema before anything else looks at it; the first bad frame (garbage, an oversized
// or empty length, a schema failure, a second hello) ends the connection with a warning naming the
// remote address. The peer redials, and the next good connection works as if nothing happened.
//
// Nothing here is trusted for routing: the hello's `from` only labels log lines, each message
// carries its own `from`, and a message whose `to` is not this node is dropped.

import type net from 'node:net';
import type { Message, NodeId } from '../raft/types.js';
import { decodeBody, encodeFrame } from './codec.js';
import { FRAME_HEADER_BYTES, FrameDecoder } from './framing.js';
import { describeIssues, type InboundFrame, inboundFrameSchema, PROTOCOL_VERSION } from './message-schema.js';
import type { Logger } from './options.js';
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
  /** A valid message for this node. */
  deliver(message: Message, frameBytes: number): void;
  /** A valid message for another node id. */
  misaddressed(message: Message): void;
}

const PONG_FRAME = encodeFrame({ type: 'pong' });
/** A dialer that does not read its pongs gets no more once this much is unsent. */
const MAX_UNSENT_PONG_BYTES = 64 << 10;

export function serveInbound(socket: net.Socket, opts: InboundOptions): void {
  const remote = remoteOf(socket);
  let log = opts.logger.child({ remote });
  const decoder = new FrameDecoder(opts.maxFrameBytes);
  let frames = 0;
  let warnedMisaddressed = false;
  let lastPongMs = performance.now();

  const pong = (): void => {
    lastPongMs = performance.now();
    if (socket.writableLength < MAX_UNSENT_PONG_BYTES) socket.write(PONG_FRAME);
  };

  const refuse = (reason: string): void => {
    log.warn({ reason }, 'closing peer connection after a bad frame');
    socket.destroy();
  };

  const handle = (frame: InboundFrame, frameBytes: number): void => {
    switch (frame.type) {
      case 'hello':
        if (frames !== 1) refuse('hello after the first frame');
        else if (frame.version !== PROTOCOL_VERSION) {
          refuse(`protocol version ${frame.version}, expected ${PROTOCOL_VERSION}`);
        } else if (frame.cluster && opts.clusterId() && frame.cluster !== opts.clusterId()) {
          refuse(`${frame.from} belongs to cluster ${frame.cluster}, this node to ${opts.clusterId()}`);
        } else {
          log = log.child({ claimedPeer: frame.from });
          log.info('peer connected');
        }
        return;
      case 'ping':
        pong();
        return;
      default:
        if (frame.to !== opts.selfId) {
          if (!warnedMisaddressed) {
            warnedMisaddressed = true;
            log.warn({ to: frame.to, from: frame.from }, 'dropping messages addressed to another node id');
          }
          opts.misaddressed(frame);
          return;
        }
        opts.deliver(frame, frameBytes);
    }
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
      return refuse(shortMessage(err));
    }
    for (const body of bodies) {
      if (socket.destroyed) return;
      frames++;
      let value: unknown;
      try {
        value = decodeBody(body);
      } catch (err) {
        return refuse(`undecodable frame body: ${shortMessage(err)}`);
      }
      const parsed = inboundFrameSchema.safeParse(value);
      if (!parsed.success) return refuse(`invalid frame: ${describeIssues(parsed.error)}`);
      handle(parsed.data, body.length + FRAME_HEADER_BYTES);
    }
    // Bytes are arriving, so the dialer's connection is alive even if its ping is still in transit.
    if (!socket.destroyed && performance.now() - lastPongMs >= opts.pongIntervalMs) pong();
  });
}
