// Length-prefixed framing for peer connections: [u32 big-endian body length][body].
//
// The decoder is fed whatever chunks the socket delivers and hands back complete bodies. It never
// copies a body that lies inside one chunk, copies a body that spans chunks exactly once (so a
// 64 MiB frame arriving in 64 KiB pieces costs one concatenation, not a quadratic number), and
// refuses a frame by its header alone: an oversized length is rejected before any of its bytes
// are buffered.

export const FRAME_HEADER_BYTES = 4;
/** The largest length a u32 header can carry. */
export const MAX_FRAME_BODY_BYTES = 0xffff_ffff;

export type FrameErrorCode = 'FRAME_TOO_LARGE' | 'EMPTY_FRAME';

export class FrameError extends Error {
  override readonly name = 'FrameError';
  constructor(
    readonly code: FrameErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Writes the big-endian length of the body into the first FRAME_HEADER_BYTES of `frame`. */
export function writeFrameHeader(frame: Buffer): void {
  frame.writeUInt32BE(frame.length - FRAME_HEADER_BYTES, 0);
}

export class FrameDecoder {
  /** Unconsumed chunks; bytes before `headOffset` in `chunks[0]` are already consumed. */
  private chunks: Buffer[] = [];
  private headOffset = 0;
  private buffered = 0;
  /** Body length announced by the header being processed, or -1 while waiting for a header. */
  private bodyBytes = -1;

  constructor(private readonly maxFrameBytes: number) {
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > MAX_FRAME_BODY_BYTES) {
      throw new RangeError(`maxFrameBytes must be an integer in [1, ${MAX_FRAME_BODY_BYTES}]`);
    }
  }

  /** Bytes received but not yet returned as a body (a partial frame). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Adds a chunk and returns every body it completes, in order. Throws FrameError on a header that
   * announces an empty or oversized body; the stream is unusable afterwards (the caller closes it).
   */
  push(chunk: Buffer): Buffer[] {
    const bodies: Buffer[] = [];
    if (chunk.length === 0) return bodies;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.bodyBytes < 0) {
        if (this.buffered < FRAME_HEADER_BYTES) break;
        const length = this.take(FRAME_HEADER_BYTES).readUInt32BE(0);
        // A msgpack body is at least one byte: a zero length can only be garbage.
        if (length === 0) throw new FrameError('EMPTY_FRAME', 'frame with an empty body');
        if (length > this.maxFrameBytes) {
          throw new FrameError(
            'FRAME_TOO_LARGE',
            `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes} bytes`,
          );
        }
        this.bodyBytes = length;
      }
      if (this.buffered < this.bodyBytes) break;
      bodies.push(this.take(this.bodyBytes));
      this.bodyBytes = -1;
    }
    return bodies;
  }

  /** Removes and returns the next `n` buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0] as Buffer;
    const available = first.length - this.headOffset;
    if (available >= n) {
      // Fast path: a view into the chunk, no copy.
      const out = first.subarray(this.headOffset, this.headOffset + n);
      this.headOffset += n;
      if (this.headOffset === first.length) this.dropFirstChunk();
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    while (written < n) {
      const chunk = this.chunks[0] as Buffer;
      const count = Math.min(chunk.length - this.headOffset, n - written);
      chunk.copy(out, written, this.headOffset, this.headOffset + count);
      written += count;
      this.headOffset += count;
      if (this.headOffset === chunk.length) this.dropFirstChunk();
    }
    return out;
  }

  private dropFirstChunk(): void {
    this.chunks.shift();
    this.headOffset = 0;
  }
}
