import { describe, expect, it } from 'vitest';
import { snapMeta } from './test-util.js';
import {
  corruptTailReason,
  decodeFrame,
  encodeRecord,
  findValidFrameAfter,
  readFrame,
  scanFrames,
  type WalRecord,
} from './wal-record.js';

const records: WalRecord[] = [
  { type: 'header', seq: 3, hardState: { term: 2, vote: 'n1', commit: 7 }, snapshot: null },
  {
    type: 'batch',
    install: { meta: snapMeta(5, 1, 10), file: '0000000000000005-0badcafe.snap' },
    entries: [
      { index: 6, term: 2, type: 'normal', data: new Uint8Array([1, 2, 3]) },
      { index: 7, term: 2, type: 'blank' },
    ],
    hardState: null,
  },
  { type: 'snapshot', snapshot: { meta: snapMeta(9, 2, 0), file: '0000000000000009-00000000.snap' } },
];

describe('WAL frames', () => {
  it('round-trip every record type', () => {
    const buf = Buffer.concat(records.map(encodeRecord));
    const { frames, bad } = scanFrames(buf);
    expect(bad).toBeNull();
    expect(frames.map(decodeFrame)).toEqual(records);
  });

  it('a scan stops at the first bad frame and says why', () => {
    const buf = Buffer.concat(records.map(encodeRecord));
    const second = encodeRecord(records[0] as WalRecord).length;
    expect(scanFrames(buf.subarray(0, buf.length - 3)).bad?.reason).toMatch(/runs past the end/);
    expect(scanFrames(buf.subarray(0, second + 4)).bad).toEqual({
      offset: second,
      reason: expect.stringMatching(/incomplete/),
    });
    const flipped = Buffer.from(buf);
    flipped[second + 20] = (flipped[second + 20] as number) ^ 1;
    const scan = scanFrames(flipped);
    expect(scan.frames).toHaveLength(1);
    expect(scan.bad).toEqual({ offset: second, reason: 'checksum mismatch' });
    expect(findValidFrameAfter(flipped, second)).toBe(
      buf.length - encodeRecord(records[2] as WalRecord).length,
    );
  });

  it('nothing valid is found in a zero-filled or truncated tail', () => {
    const buf = Buffer.concat([encodeRecord(records[1] as WalRecord), Buffer.alloc(100)]);
    expect(findValidFrameAfter(buf, 0)).toBeNull();
    expect(findValidFrameAfter(buf.subarray(0, 30), 0)).toBeNull();
  });

  it('a frame with a valid checksum but an invalid payload does not decode', () => {
    const frame = encodeRecord({
      type: 'header',
      seq: 0,
      hardState: { term: 1, vote: null, commit: 0 },
      snapshot: null,
    });
    const f = readFrame(frame, 0);
    if ('error' in f) throw new Error(f.error);
    expect(() => decodeFrame(f)).toThrow(/seq/);
  });
});

describe('corruptTailReason: a torn write or damage to a complete record', () => {
  /** One header record, then a batch of `valueBytes` starting at `at` (padded with a filler record). */
  function tail(valueBytes: number): { buf: Buffer; at: number } {
    const head = encodeRecord(records[0] as WalRecord);
    const last = encodeRecord({
      type: 'batch',
      install: null,
      entries: [{ index: 1, term: 1, type: 'normal', data: new Uint8Array(valueBytes).fill(7) }],
      hardState: { term: 1, vote: 'n1', commit: 1 },
    });
    return { buf: Buffer.concat([head, last]), at: head.length };
  }

  it('a record cut short, or only zeros, is torn', () => {
    const { buf, at } = tail(100);
    expect(corruptTailReason(buf.subarray(0, at + 5), at)).toBeNull();
    expect(corruptTailReason(buf.subarray(0, at + 40), at)).toBeNull();
    expect(corruptTailReason(Buffer.concat([buf.subarray(0, at), Buffer.alloc(64)]), at)).toBeNull();
  });

  it('a complete record with a sector the disk never wrote is torn', () => {
    const { buf, at } = tail(2000);
    const sector = Math.ceil((at + 9) / 512) * 512;
    buf.fill(0, sector, sector + 512);
    expect(corruptTailReason(buf, at)).toBeNull();
  });

  it('a complete record with a flipped bit is not', () => {
    const { buf, at } = tail(2000);
    buf[at + 700] = (buf[at + 700] as number) ^ 1;
    expect(corruptTailReason(buf, at)).toMatch(/not a torn write/);
  });

  it('a few zero bytes past the last sector boundary do not count as an unwritten sector', () => {
    // A record whose last 4 bytes lie past a sector boundary, and are zeros.
    const size = Array.from({ length: 600 }, (_, i) => 1900 + i).find((v) => tail(v).buf.length % 512 === 4);
    const { buf, at } = tail(size as number);
    buf.fill(0, buf.length - 4);
    buf[at + 700] = (buf[at + 700] as number) ^ 1;
    expect(corruptTailReason(buf, at)).toMatch(/not a torn write/);
  });

  it('a damaged length field over a record that is all there is not', () => {
    const { buf, at } = tail(100);
    buf.writeUInt32LE(buf.readUInt32LE(at) + 1000, at);
    expect(corruptTailReason(buf, at)).toMatch(/the length field says/);
  });
});
