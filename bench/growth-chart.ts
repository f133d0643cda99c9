// The growth curves as a PNG: log-log lines of time against keys, one colour per operation, solid
// for Conflux and dashed for etcd. Drawn as SVG and rasterised with resvg (system fonts).

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import type { GrowthReport } from './growth.js';
import { METRICS } from './growth-report.js';

const W = 1100;
const H = 700;
const PAD = { left: 90, right: 330, top: 60, bottom: 70 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Powers of ten covering [lo, hi]. */
function decades(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
  return out;
}

export function growthSvg(report: GrowthReport): string {
  const metrics = METRICS.filter((m) => m.kind === 'time');
  const systems = [...new Set(report.rows.map((r) => r.system))];
  const series = metrics
    .flatMap((m, i) =>
      systems.map((s) => ({
        label: `${m.key} — ${s}`,
        color: COLORS[i % COLORS.length] as string,
        dashed: s === 'etcd',
        points: report.rows
          .filter((r) => r.system === s)
          .map((r) => ({ x: r.keys, y: m.value(r) }))
          .filter((p) => Number.isFinite(p.y) && p.y > 0)
          .sort((a, b) => a.x - b.x),
      })),
    )
    .filter((s) => s.points.length > 0);
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  const xTicks = decades(Math.min(...xs), Math.max(...xs, Math.min(...xs) * 10));
  const yTicks = decades(Math.max(1, Math.min(...ys, 10)), Math.max(...ys, 100));
  const [x0, x1] = [xTicks[0] as number, xTicks.at(-1) as number];
  const [y0, y1] = [yTicks[0] as number, yTicks.at(-1) as number];
  const px = (x: number) =>
    PAD.left +
    ((Math.log10(x) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0))) * (W - PAD.left - PAD.right);
  const py = (y: number) =>
    H -
    PAD.bottom -
    ((Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))) * (H - PAD.top - PAD.bottom);
  const font = 'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif"';
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${PAD.left}" y="32" ${font} font-size="20" font-weight="bold">Conflux vs etcd: time against data size (log-log)</text>`,
  ];
  const count = (v: number) => (v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : String(v));
  const time = (v: number) => (v >= 1000 ? `${v / 1000} s` : `${v} ms`);
  for (const t of xTicks) {
    parts.push(
      `<line x1="${px(t)}" y1="${PAD.top}" x2="${px(t)}" y2="${H - PAD.bottom}" stroke="#ddd"/>`,
      `<text x="${px(t)}" y="${H - PAD.bottom + 22}" ${font} font-size="14" text-anchor="middle">${count(t)}</text>`,
    );
  }
  for (const t of yTicks) {
    parts.push(
      `<line x1="${PAD.left}" y1="${py(t)}" x2="${W - PAD.right}" y2="${py(t)}" stroke="#ddd"/>`,
      `<text x="${PAD.left - 8}" y="${py(t) + 5}" ${font} font-size="14" text-anchor="end">${time(t)}</text>`,
    );
  }
  parts.push(
    `<rect x="${PAD.left}" y="${PAD.top}" width="${W - PAD.left - PAD.right}" height="${H - PAD.top - PAD.bottom}" fill="none" stroke="#333"/>`,
    `<text x="${(PAD.left + W - PAD.right) / 2}" y="${H - 22}" ${font} font-size="15" text-anchor="middle">keys (100-byte values)</text>`,
    `<text x="22" y="${(PAD.top + H - PAD.bottom) / 2}" ${font} font-size="15" text-anchor="middle" transform="rotate(-90 22 ${(PAD.top + H - PAD.bottom) / 2})">time</text>`,
  );
  series.forEach((s, i) => {
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="8 5"' : '';
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2.5"${dash}/>`);
    for (const p of s.points)
      parts.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="4" fill="${s.color}"/>`);
    const ly = PAD.top + 10 + i * 22;
    const lx = W - PAD.right + 20;
    parts.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 36}" y2="${ly}" stroke="${s.color}" stroke-width="2.5"${dash}/>`,
      `<text x="${lx + 44}" y="${ly + 5}" ${font} font-size="14">${esc(s.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Write the chart as a PNG to `path` (creating its directory). */
export function writeGrowthPng(report: GrowthReport, path: string): void {
  const png = new Resvg(growthSvg(report), {
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  })
    .render()
    .asPng();
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, png);
}
