import { describe, expect, it } from 'vitest';
import { FrameDecoder, FrameError } from './framing.js';

function frame(body: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

describe('FrameDecoder', () => {
  it('returns every frame of a chunk that holds several', () => {
    const d = new FrameDecoder(1024);
    const bodies = d.push(
      Buffer.concat([frame(Buffer.from('a')), frame(Buffer.from('bcd')), frame(Buffer.from('ef'))]),
    );
    expect(bodies.map((b) => b.toString())).toEqual(['a', 'bcd', 'ef']);
    expect(d.bufferedBytes).toBe(0);
  });

  it('reassembles frames fed one byte at a time, headers split included', () => {
    const d = new FrameDecoder(1024);
    const stream = Buffer.concat([frame(Buffer.from('hello')), frame(Buffer.from('world!'))]);
    const out: string[] = [];
    for (const byte of stream) for (const body of d.push(Buffer.from([byte]))) out.push(body.toString());
    expect(out).toEqual(['hello', 'world!']);
  });

  it('reassembles a large frame that spans many chunks', () => {
    const d = new FrameDecoder(8 << 20);
    const body = Buffer.alloc(5 << 20, 7);
    body[0] = 1;
    body[body.length - 1] = 2;
    const stream = Buffer.concat([frame(body), frame(Buffer.from('x'))]);
    const out: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 65536) out.push(...d.push(stream.subarray(i, i + 65536)));
    expect(out).toHaveLength(2);
    expect(out[0]?.equals(body)).toBe(true);
    expect(out[1]?.toString()).toBe('x');
  });

  it('accepts a frame of exactly maxFrameBytes', () => {
    const d = new FrameDecoder(16);
    expect(d.push(frame(Buffer.alloc(16)))).toHaveLength(1);
  });

  it('refuses an oversized length from the header alone, before its body arrives', () => {
    const d = new FrameDecoder(16);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(17, 0);
    expect(() => d.push(header)).toThrow(FrameError);
    const huge = new FrameDecoder(64 << 20);
    expect(() => huge.push(Buffer.from([0xff, 0xff, 0xff, 0xff]))).toThrow(/exceeds the limit/);
  });

  it('refuses an empty frame', () => {
    const d = new FrameDecoder(16);
    expect(() => d.push(Buffer.alloc(4))).toThrow(/empty/);
  });
});
