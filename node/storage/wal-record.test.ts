import { describe, expect, it } from 'vitest';
import { snapMeta } from './test-util.js';
import {
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
