// The replay rules on their own, as transcripts of records.
import { describe, expect, it } from 'vitest';
import type { HardState } from '../raft/types.js';
import { StorageCorruptionError } from './errors.js';
import { ReplayView } from './replay.js';
import type { SnapshotRef } from './schemas.js';
import { normal, range, show, snapMeta } from './test-util.js';
import type { WalRecord } from './wal-record.js';

const H0: HardState = { term: 0, vote: null, commit: 0 };
const ref = (index: number, id = `s-${index}`): SnapshotRef => ({
  meta: snapMeta(index, 1, 0, id),
  file: `${String(index).padStart(16, '0')}-00000000.snap`,
});
const header = (seq: number, snapshot: SnapshotRef | null = null, hardState = H0): WalRecord => ({
  type: 'header',
  seq,
  hardState,
  snapshot,
});
const batch = (
  entries = range(1, 0, 1),
  extra: Partial<Extract<WalRecord, { type: 'batch' }>> = {},
): WalRecord => ({
  type: 'batch',
  install: null,
  entries,
  hardState: null,
  ...extra,
});

function replay(...records: WalRecord[]) {
  const view = new ReplayView();
  for (const [i, r] of records.entries()) view.apply(r, { file: 'seg', offset: i });
  return view.result();
}

describe('replay', () => {
  it('entry i replaces every earlier entry ≥ i', () => {
    const r = replay(header(1), batch(range(1, 5, 1)), batch([normal(3, 2)]), batch(range(4, 4, 2)));
    expect(r.entries.map((e) => `${e.index}/${e.term}`)).toEqual(['1/1', '2/1', '3/2', '4/2']);
  });

  it('an install drops the whole log, even entries beyond the snapshot', () => {
    const r = replay(header(1), batch(range(1, 20, 1)), batch(range(11, 11, 2), { install: ref(10) }));
    expect(show(r.entries)).toEqual(show(range(11, 11, 2)));
    expect(r.snapshot?.meta.index).toBe(10);
  });

  it('a snapshot record drops the entries it covers and keeps the rest', () => {
    const r = replay(header(1), batch(range(1, 8, 1)), { type: 'snapshot', snapshot: ref(5) });
    expect(r.entries.map((e) => e.index)).toEqual([6, 7, 8]);
  });

  it('the last hard state wins', () => {
    const r = replay(
      header(1),
      batch([], { hardState: { term: 2, vote: 'a', commit: 0 } }),
      batch(range(1, 1, 2)),
    );
    expect(r.hardState).toEqual({ term: 2, vote: 'a', commit: 0 });
  });

  it('a gap in an anchored log is corruption', () => {
    expect(() => replay(header(1), batch(range(1, 3, 1)), batch(range(5, 6, 1)))).toThrow(
      StorageCorruptionError,
    );
    expect(() => replay(header(1), batch(range(2, 3, 1)))).toThrow(/gap/);
    expect(() => replay(header(1), batch(range(12, 13, 1), { install: ref(10) }))).toThrow(/gap/);
  });

  it('after deleted segments the log may start high until a later snapshot record covers the start', () => {
    // Segment 1 (entries 1..10) was deleted after the snapshot at 10 was recorded in segment 2.
    const r = replay(header(2), batch(range(11, 12, 1)), { type: 'snapshot', snapshot: ref(10) });
    expect(r.entries.map((e) => e.index)).toEqual([11, 12]);
    // Without that record, entries 1..10 are missing.
    expect(() => replay(header(2), batch(range(11, 12, 1)))).toThrow(
      /starts at entry 11 but the snapshot ends at 0/,
    );
  });

  it('a segment header that disagrees with the records before it is corruption', () => {
    const hs = { term: 3, vote: 'b', commit: 1 };
    expect(() => replay(header(1), batch(range(1, 1, 3), { hardState: hs }), header(2, null, H0))).toThrow(
      /disagrees/,
    );
    expect(
      replay(header(1), batch(range(1, 1, 3), { hardState: hs }), header(2, null, hs)).hardState,
    ).toEqual(hs);
  });

  it('the first record must be a header', () => {
    expect(() => replay(batch(range(1, 1, 1)))).toThrow(/must start with a header/);
  });
});
