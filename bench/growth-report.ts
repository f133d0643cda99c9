// The growth bench's report: one table per metric with both systems at every size, how each cost
// grows (per-key time at the smallest and the largest size), and the targets, reported, not asserted.

import type { GrowthReport, GrowthRow } from './growth.js';
import type { System } from './report.js';

export interface Metric {
  key: string;
  label: string;
  /** 'time': milliseconds that should grow linearly with the keys (reported per key too); 'flat': should not grow. */
  kind: 'time' | 'flat' | 'memory';
  value: (r: GrowthRow) => number;
}

export const METRICS: Metric[] = [
  {
    key: 'bootstrap',
    label: 'bootstrap of an empty 3-node cluster (ms)',
    kind: 'flat',
    value: (r) => r.bootstrapMs,
  },
  { key: 'load', label: `bulk load (ms)`, kind: 'time', value: (r) => r.loadMs },
  { key: 'backup', label: 'backup (ms)', kind: 'time', value: (r) => r.backupMs },
  { key: 'restore', label: 'restore into a pristine node (ms)', kind: 'time', value: (r) => r.restoreMs },
  {
    key: 'restore-total',
    label: 'restore: process start to serving the last key (ms)',
    kind: 'time',
    value: (r) => r.restoreTotalMs,
  },
  {
    key: 'add-node',
    label: 'add a 4th member until caught up (ms)',
    kind: 'time',
    value: (r) => r.addNodeMs,
  },
  {
    key: 'catch-up',
    label: 'new member catch-up (snapshot install) (ms)',
    kind: 'time',
    value: (r) => r.catchUpMs,
  },
  {
    key: 'restart-ready',
    label: 'restart of a killed leader to ready (ms)',
    kind: 'time',
    value: (r) => r.readyMs ?? Number.NaN,
  },
  {
    key: 'recovery',
    label: 'restart of a killed leader to 3 healthy members (ms)',
    kind: 'time',
    value: (r) => r.recoveryMs,
  },
  {
    key: 'transfer',
    label: 'leader transfer write window, median (ms)',
    kind: 'flat',
    value: (r) => r.transferMs,
  },
  { key: 'kill', label: 'kill -9 leader write window, median (ms)', kind: 'flat', value: (r) => r.killMs },
  { key: 'watch-p50', label: 'watch fan-out p50 (ms)', kind: 'flat', value: (r) => r.watch.p50Ms },
  { key: 'watch-p99', label: 'watch fan-out p99 (ms)', kind: 'flat', value: (r) => r.watch.p99Ms },
  { key: 'watch-max', label: 'watch fan-out max (ms)', kind: 'flat', value: (r) => r.watch.maxMs },
  {
    key: 'rss',
    label: 'RSS, largest member after the load (MiB)',
    kind: 'memory',
    value: (r) => r.rssMaxKiB / 1024,
  },
  {
    key: 'restore-rss',
    label: 'RSS of the restored node (MiB)',
    kind: 'memory',
    value: (r) => r.restoreRssKiB / 1024,
  },
  { key: 'backup-size', label: 'backup size (MiB)', kind: 'memory', value: (r) => r.backupBytes / 2 ** 20 },
];

const fmt = (v: number) =>
  !Number.isFinite(v) ? '-' : v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(v < 10 ? 2 : 1);
const us = (v: number) => (Number.isFinite(v) ? `${v.toFixed(v < 10 ? 2 : 1)} µs/key` : '-');

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0] ?? []), sep, ...rows.slice(1).map(line)].join('\n');
}

const at = (report: GrowthReport, system: System, keys: number) =>
  report.rows.find((r) => r.system === system && r.keys === keys);

export interface Growth {
  system: System;
  metric: string;
  small: { keys: number; perKeyUs: number };
  large: { keys: number; perKeyUs: number };
  /** Per-key cost at the largest size over that at the smallest. */
  ratio: number;
  verdict: string;
  /**
   * The log-log slope between the two largest sizes: 1 is linear, below 1 sublinear, above 1
   * superlinear (fixed costs matter less there than between the smallest and the largest).
   */
  slope: number;
}

/** Linear when the per-key cost at the largest size is at most 1.5x that at the smallest. */
export function classify(ratio: number): string {
  if (!Number.isFinite(ratio)) return 'not measured';
  if (ratio <= 0.67) return 'sublinear (fixed costs dominate the small size)';
  if (ratio <= 1.5) return 'linear';
  return `superlinear (${ratio.toFixed(1)}x per key)`;
}

export function growthOf(report: GrowthReport, system: System, m: Metric): Growth | undefined {
  const sizes = [...new Set(report.rows.filter((r) => r.system === system).map((r) => r.keys))].sort(
    (a, b) => a - b,
  );
  const lo = sizes[0];
  const hi = sizes.at(-1);
  if (lo === undefined || hi === undefined || lo === hi) return undefined;
  const a = at(report, system, lo);
  const b = at(report, system, hi);
  if (!a || !b) return undefined;
  const perKey = (r: GrowthRow) => (m.value(r) * 1000) / r.keys;
  const ratio = perKey(b) / perKey(a);
  const mid = sizes.at(-2) as number;
  const c = at(report, system, mid);
  const slope = c ? Math.log(m.value(b) / m.value(c)) / Math.log(hi / mid) : Number.NaN;
  return {
    slope,
    system,
    metric: m.key,
    small: { keys: lo, perKeyUs: perKey(a) },
    large: { keys: hi, perKeyUs: perKey(b) },
    ratio,
    verdict: classify(ratio),
  };
}

export interface Target {
  name: string;
  pass: boolean | null;
  detail: string;
}

export function targets(report: GrowthReport): Target[] {
  const out: Target[] = [];
  const largest = Math.max(...report.rows.filter((r) => r.system === 'conflux').map((r) => r.keys));
  const big = at(report, 'conflux', largest);
  for (const m of METRICS.filter((x) => x.kind === 'time')) {
    const g = growthOf(report, 'conflux', m);
    if (!g) continue;
    out.push({
      name: `Conflux ${m.key} linear in data size`,
      pass: Number.isFinite(g.ratio) ? g.ratio <= 1.5 : null,
      detail: `${us(g.small.perKeyUs)} at ${g.small.keys.toLocaleString('en-US')}, ${us(g.large.perKeyUs)} at ${g.large.keys.toLocaleString('en-US')} — ${g.verdict}`,
    });
  }
  if (big && big.keys >= 1_000_000) {
    out.push({
      name: 'Conflux restore of 1M keys under 20 s',
      pass: Number.isFinite(big.restoreMs) ? big.restoreMs < 20_000 : null,
      detail: `${(big.restoreMs / 1000).toFixed(1)} s for ${big.keys.toLocaleString('en-US')} keys`,
    });
  } else {
    out.push({ name: 'Conflux restore of 1M keys under 20 s', pass: null, detail: 'not run at 1M keys' });
  }
  const etcdBig = at(report, 'etcd', largest);
  if (big && etcdBig) {
    const c = big.readyMs ?? Number.NaN;
    const e = etcdBig.readyMs ?? Number.NaN;
    out.push({
      name: `Conflux killed leader ready within etcd's time at ${largest.toLocaleString('en-US')} keys`,
      pass: Number.isFinite(c) && Number.isFinite(e) ? c <= e : null,
      detail: `${fmt(c)} ms against etcd's ${fmt(e)} ms`,
    });
  }
  for (const r of report.rows.filter((x) => x.system === 'conflux')) {
    const ratio = (r.rssMaxKiB * 1024) / r.rawBytes;
    out.push({
      name: `Conflux RSS under 3x the raw data at ${r.keys.toLocaleString('en-US')} keys`,
      pass: Number.isFinite(ratio) ? ratio < 3 : null,
      detail: `${fmt(r.rssMaxKiB / 1024)} MiB for ${fmt(r.rawBytes / 2 ** 20)} MiB raw (${ratio.toFixed(2)}x)`,
    });
  }
  return out;
}

export function renderGrowth(report: GrowthReport): string {
  const out: string[] = [];
  const systems = [...new Set(report.rows.map((r) => r.system))];
  const sizes = [...new Set(report.rows.map((r) => r.keys))].sort((a, b) => a - b);
  const meta = report.meta;
  out.push(
    `Growth with data size — ${meta.valueBytes}-byte values, keys loaded as transactions of ${meta.loadBatch} puts, ` +
      `${meta.loadInFlight} in flight; watch fan-out to ${meta.watchers} streams; ` +
      `${meta.failoverTrials} leader transfer(s) and kill(s) per size; Conflux --catch-up-stable-ms ${meta.confluxCatchUpStableMs}`,
  );
  const raw = (n: number) =>
    ((report.rows.find((r) => r.keys === n)?.rawBytes ?? Number.NaN) / 2 ** 20).toFixed(1);
  out.push(
    `raw data (key + value bytes): ${sizes.map((n) => `${n.toLocaleString('en-US')} keys = ${raw(n)} MiB`).join(', ')}`,
  );
  for (const m of METRICS) {
    const header = ['keys', ...systems, ...(m.kind === 'time' ? systems.map((s) => `${s} per key`) : [])];
    const rows = sizes.map((n) => {
      const vals = systems.map((s) => {
        const r = at(report, s, n);
        return r ? m.value(r) : Number.NaN;
      });
      return [
        n.toLocaleString('en-US'),
        ...vals.map(fmt),
        ...(m.kind === 'time' ? vals.map((v) => us((v * 1000) / n)) : []),
      ];
    });
    out.push('', m.label, table([header, ...rows]));
    if (m.kind === 'time') {
      for (const s of systems) {
        const g = growthOf(report, s, m);
        if (g)
          out.push(
            `  ${s}: ${us(g.small.perKeyUs)} at ${g.small.keys.toLocaleString('en-US')}, ${us(g.large.perKeyUs)} at ${g.large.keys.toLocaleString('en-US')} — ${g.verdict}` +
              (sizes.length > 2 && Number.isFinite(g.slope)
                ? `; log-log slope ${g.slope.toFixed(2)} over the two largest sizes`
                : ''),
          );
      }
    }
  }
  for (const r of report.rows)
    for (const e of r.errors ?? [])
      out.push(`FAILED STEP: ${r.system} at ${r.keys.toLocaleString('en-US')} keys: ${e}`);
  const missed = report.rows.filter((r) => r.watch.missed > 0);
  for (const r of missed)
    out.push(`WARNING: ${r.system} at ${r.keys} keys: ${r.watch.missed} watch deliveries missed`);
  out.push('', 'Targets (reported, not asserted):');
  for (const t of targets(report))
    out.push(`  ${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'FAIL'}  ${t.name}: ${t.detail}`);
  return out.join('\n');
}
