import { describe, expect, it } from 'vitest';
import type { GrowthReport, GrowthRow } from './growth.js';
import { growthSvg } from './growth-chart.js';
import { classify, METRICS, renderGrowth, targets } from './growth-report.js';

function row(system: 'conflux' | 'etcd', keys: number, perKeyUs: number): GrowthRow {
  const ms = (keys * perKeyUs) / 1000;
  return {
    system,
    keys,
    rawBytes: keys * 111,
    bootstrapMs: 1000,
    loadMs: ms,
    loadKeysPerSec: keys / (ms / 1000),
    rssMaxKiB: (keys * 111 * 2) / 1024,
    rssMeanKiB: (keys * 111 * 2) / 1024,
    watch: { p50Ms: 5, p99Ms: 9, maxMs: 12, missed: 0, setupMs: 300 },
    backupMs: ms,
    backupBytes: keys * 140,
    restoreMs: ms,
    restoreTotalMs: ms + 500,
    restoreRssKiB: 1000,
    addNodeMs: ms,
    catchUpMs: ms,
    transferMs: 50,
    killMs: 700,
    readyMs: ms,
    recoveryMs: ms,
    errors: [],
  };
}

const report = (confluxLargePerKey: number): GrowthReport => ({
  meta: {
    valueBytes: 100,
    loadBatch: 128,
    loadInFlight: 16,
    watchers: 1000,
    failoverTrials: 1,
    confluxCatchUpStableMs: 200,
  },
  rows: [
    row('conflux', 10_000, 10),
    row('etcd', 10_000, 8),
    row('conflux', 1_000_000, confluxLargePerKey),
    row('etcd', 1_000_000, 9),
  ],
});

describe('the growth report', () => {
  it('classifies per-key growth', () => {
    expect(classify(1.1)).toBe('linear');
    expect(classify(0.3)).toMatch(/^sublinear/);
    expect(classify(4)).toBe('superlinear (4.0x per key)');
    expect(classify(Number.NaN)).toBe('not measured');
  });

  it('has a table for every metric with both systems, and per-key growth of each time', () => {
    const text = renderGrowth(report(10.4));
    for (const m of METRICS) expect(text).toContain(m.label);
    expect(text).toContain('conflux: 10.0 µs/key at 10,000, 10.4 µs/key at 1,000,000 — linear');
    expect(text).toContain('etcd: 8.00 µs/key at 10,000, 9.00 µs/key at 1,000,000 — linear');
  });

  it('reports the targets as pass or fail, never asserting them', () => {
    const fast = targets(report(10));
    expect(fast.find((t) => t.name.startsWith('Conflux restore of 1M'))).toMatchObject({ pass: true });
    expect(fast.filter((t) => t.name.startsWith('Conflux RSS')).every((t) => t.pass)).toBe(true);
    // 50 µs/key: restore of 1M keys takes 50 s and every time grows 5x per key.
    const slow = targets(report(50));
    expect(slow.find((t) => t.name.startsWith('Conflux restore of 1M'))).toMatchObject({ pass: false });
    expect(slow.find((t) => t.name === 'Conflux restore linear in data size')).toMatchObject({ pass: false });
  });

  it('draws one line per operation and system', () => {
    const svg = growthSvg(report(10));
    const times = METRICS.filter((m) => m.kind === 'time').length;
    expect(svg.match(/<path /g)).toHaveLength(times * 2);
    expect(svg).toContain('restore — etcd');
  });
});
