// The side-by-side table on stdout and the JSON document with every number.

import { writeFileSync } from 'node:fs';
import type { FailoverReport, FailoverSummary } from './failover.js';
import type { Floor } from './floor.js';
import type { LoadResult, WorkloadKind } from './load.js';

export type System = 'conflux' | 'etcd';

export interface RoundResult extends LoadResult {
  round: number;
  /** The member the load went to. */
  target: string;
  /** CPU time of all three server processes in the measured window, per successful op. */
  serverCpuUsPerOp: number;
  /** CPU of the load generator in the measured window, as % of one core. */
  clientCpuPct: number;
}

export interface Cell {
  workload: WorkloadKind;
  label: string;
  inFlight: number;
  system: System;
  rounds: RoundResult[];
}

export interface MemberMemory {
  system: System;
  id: string;
  leader: boolean;
  rssKiB: number;
  peakKiB: number;
}

export interface Report {
  meta: Record<string, unknown>;
  floor: Floor;
  cells: Cell[];
  memory: MemberMemory[];
  /** Write-unavailability windows during leader transfers and leader kills (absent with --no-failover). */
  failover?: FailoverReport;
}

/** The round with the median throughput (the lower middle one for an even count). */
export function medianRound(rounds: RoundResult[]): RoundResult {
  const sorted = [...rounds].sort((a, b) => a.opsPerSec - b.opsPerSec);
  const r = sorted[Math.floor((sorted.length - 1) / 2)];
  if (!r) throw new Error('no rounds');
  return r;
}

export function failureRate(c: Cell): { failures: number; total: number; pct: number } {
  const failures = c.rounds.reduce((a, r) => a + r.failures, 0);
  const total = c.rounds.reduce((a, r) => a + r.failures + r.ops, 0);
  return { failures, total, pct: total ? (100 * failures) / total : 0 };
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(v < 10 ? 2 : 1) : '-');
const num = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-');

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const line = (r: string[]) =>
    r
      .map((c, i) => (i < 2 || i === r.length - 1 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const sep = widths
    .map((w) => '-'.repeat(w))
    .join('  ')
    .trimEnd();
  return [line(rows[0] ?? []), sep, ...rows.slice(1).map(line)].join('\n');
}

export function renderReport(report: Report): string {
  const out: string[] = [];
  const m = report.meta;
  out.push(
    `Conflux vs etcd ${m.etcdVersion} — 3 nodes each on 127.0.0.1, ${m.cpus} CPUs, ${m.seconds} s per run ` +
      `after ${m.warmup} s warm-up, ${m.rounds} round${m.rounds === 1 ? '' : 's'} (median round shown), ${m.keys} keys, ${m.valueBytes}-byte values`,
  );
  const busy = Math.max(Number(m.loadAverageAtStart), Number(m.loadAverageAtEnd));
  if (busy > 0.5 * Number(m.cpus)) {
    out.push(
      `WARNING: the machine was busy with other work (1-min load average ${m.loadAverageAtStart} at the start, ` +
        `${m.loadAverageAtEnd} at the end, ${m.cpus} CPUs): absolute numbers are pessimistic; compare the ratios.`,
    );
  }
  out.push('');
  const rows: string[][] = [
    [
      'workload',
      'in-flight',
      'Conflux ops/s',
      'etcd ops/s',
      'C/etcd',
      'C p50 ms',
      'etcd p50',
      'C p99 ms',
      'etcd p99',
      'C cpu µs/op',
      'etcd cpu',
      'failed C/etcd',
      '',
    ],
  ];
  const notes: string[] = [];
  const keysOf = [...new Set(report.cells.map((c) => `${c.workload}|${c.inFlight}`))];
  for (const k of keysOf) {
    const c = report.cells.find((x) => `${x.workload}|${x.inFlight}` === k && x.system === 'conflux');
    const e = report.cells.find((x) => `${x.workload}|${x.inFlight}` === k && x.system === 'etcd');
    if (!c || !e) continue;
    const cm = medianRound(c.rounds);
    const em = medianRound(e.rounds);
    const cf = failureRate(c);
    const ef = failureRate(e);
    const flags: string[] = [];
    if (cf.pct > 1) flags.push(`Conflux ${cf.pct.toFixed(1)}% FAILED`);
    if (ef.pct > 1) flags.push(`etcd ${ef.pct.toFixed(1)}% FAILED`);
    rows.push([
      c.label,
      String(c.inFlight),
      num(cm.opsPerSec),
      num(em.opsPerSec),
      em.opsPerSec > 0 ? `${(cm.opsPerSec / em.opsPerSec).toFixed(2)}x` : '-',
      ms(cm.latencyMs.p50),
      ms(em.latencyMs.p50),
      ms(cm.latencyMs.p99),
      ms(em.latencyMs.p99),
      num(cm.serverCpuUsPerOp),
      num(em.serverCpuUsPerOp),
      `${cf.failures}/${ef.failures}`,
      flags.length ? `!! ${flags.join(', ')}` : '',
    ]);
    for (const [name, r] of [
      ['Conflux', cm],
      ['etcd', em],
    ] as const) {
      if (r.clientCpuPct > 90)
        notes.push(
          `  ${name} ${c.label} x${c.inFlight}: the load generator used ${r.clientCpuPct.toFixed(0)}% of a core; ` +
            'it may be the bottleneck',
        );
    }
    for (const [name, cell] of [
      ['Conflux', c],
      ['etcd', e],
    ] as const) {
      for (const r of cell.rounds) {
        for (const [reason, count] of Object.entries(r.failureSamples))
          notes.push(`  ${name} ${cell.label} x${cell.inFlight} round ${r.round}: ${count} x ${reason}`);
      }
    }
  }
  out.push(
    table(rows),
    'ops/s and latencies: the median round by throughput; cpu µs/op: CPU time of all three server processes ' +
      'in the measured window per successful request; failed: failed requests over all rounds.',
  );
  for (const w of (m.warnings as string[] | undefined) ?? []) notes.push(`  WARNING: ${w}`);
  if (notes.length) out.push('', 'Notes (failures list the first distinct reasons per run):', ...notes);
  if (report.failover) out.push('', ...renderFailover(report.failover));

  out.push('', 'Memory at the end (VmRSS, peak VmHWM):');
  for (const sys of ['conflux', 'etcd'] as const) {
    const parts = report.memory
      .filter((x) => x.system === sys)
      .map(
        (x) =>
          `${x.id}${x.leader ? ' (leader)' : ''} ${(x.rssKiB / 1024).toFixed(0)} MiB (peak ${(x.peakKiB / 1024).toFixed(0)})`,
      );
    out.push(`  ${sys === 'conflux' ? 'Conflux' : 'etcd'}: ${parts.join(', ')}`);
  }

  const f = report.floor;
  out.push(
    '',
    `Floor: fsync of a 100-byte append p50 ${ms(f.fsyncP50Ms)} ms (p99 ${ms(f.fsyncP99Ms)}), ` +
      `loopback round trip p50 ${f.rttP50Ms.toFixed(3)} ms (p99 ${f.rttP99Ms.toFixed(3)}) ` +
      `=> write floor (fsync + 2 x RTT) ${ms(f.writeFloorMs)} ms`,
  );
  const single = (sys: System) => {
    const cell = report.cells.find((x) => x.system === sys && x.workload === 'write' && x.inFlight === 1);
    return cell ? medianRound(cell.rounds).latencyMs.p50 : NaN;
  };
  const cw = single('conflux');
  const ew = single('etcd');
  if (Number.isFinite(cw)) {
    out.push(
      `Single-client write p50: Conflux ${ms(cw)} ms = ${(cw / f.writeFloorMs).toFixed(1)}x the floor` +
        (Number.isFinite(ew) ? ` (etcd ${ms(ew)} ms = ${(ew / f.writeFloorMs).toFixed(1)}x)` : ''),
    );
  }
  return out.join('\n');
}

function renderFailover(f: FailoverReport): string[] {
  const c = f.systems.conflux;
  const e = f.systems.etcd;
  const cell = (s: FailoverSummary | undefined) =>
    s?.trials.length ? `${Math.round(s.medianMs)} / ${Math.round(s.maxMs)}` : '-';
  const failoverTarget = c ? c.electionTimeoutMs + f.targets.failoverOverElectionTimeoutMs : NaN;
  const rows = [
    ['unavailability (ms)', 'Conflux median/max', 'etcd median/max', 'Conflux target'],
    ['leader transfer', cell(c?.transfer), cell(e?.transfer), `<= ${f.targets.transferMs}`],
    [
      'leader kill',
      cell(c?.kill),
      cell(e?.kill),
      `<= ${failoverTarget} (election timeout + ${f.targets.failoverOverElectionTimeoutMs})`,
    ],
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const line = (r: string[]) =>
    r
      .map((x, i) => (i === 0 || i === r.length - 1 ? x.padEnd(widths[i] ?? 0) : x.padStart(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  const out = [
    line(rows[0] ?? []),
    widths
      .map((w) => '-'.repeat(w))
      .join('   ')
      .trimEnd(),
    ...rows.slice(1).map(line),
  ];
  const election = (name: string, s: typeof c) =>
    s ? `${name} ${s.electionTimeoutMs} ms (${s.electionSetting})` : `${name} -`;
  out.push(
    `election timeout: ${election('Conflux', c)}; ${election('etcd', e)}; followers campaign after a random time in [T, 2T)`,
    `${f.trialsPerKind} trial${f.trialsPerKind === 1 ? '' : 's'} per kind; window = the longest gap between acknowledged writes ` +
      `of ${f.writers} sequential writers (retry on the next member after ${f.retryDelayMs} ms; ` +
      `a write without an answer in ${f.requestTimeoutMs} ms counts as failed) from ${f.beforeMs} ms before the event ` +
      `to ${f.afterMs} ms after writes resumed; the targets are printed, not asserted.`,
  );
  const per: string[] = [];
  for (const [name, s] of [
    ['Conflux', c],
    ['etcd', e],
  ] as const) {
    if (!s) continue;
    for (const [label, sum] of [
      ['transfer', s.transfer],
      ['kill', s.kill],
    ] as const) {
      if (!sum.trials.length) continue;
      const failed = sum.trials.reduce((a, t) => a + t.failed, 0);
      const acked = sum.trials.reduce((a, t) => a + t.acked, 0);
      per.push(
        `  ${name} ${label}: ${sum.trials.map((t) => Math.round(t.windowMs)).join(', ')} ms ` +
          `(longest gap across the event itself: ${sum.trials.map((t) => Math.round(t.eventGapMs)).join(', ')} ms); ` +
          `${failed} failed / ${acked} acknowledged writes in the windows' intervals`,
      );
      const reasons: Record<string, number> = {};
      for (const t of sum.trials)
        for (const [r, n] of Object.entries(t.failureSamples)) reasons[r] = (reasons[r] ?? 0) + n;
      for (const [r, n] of Object.entries(reasons)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 5))
        per.push(`      ${n} x ${r}`);
    }
  }
  if (per.length) out.push('per trial:', ...per);
  return out;
}

export function writeJson(file: string, report: Report): void {
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
}
