// The reference pages in docs/reference/ stay true to the code: every flag of conflux-node, every
// route of the client and admin APIs, every metric and every field of the custom resources has a
// row, and no row names something the code does not have. (The error catalogue is checked by
// node/api/http-errors.test.ts.)

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { Counter, Gauge, Histogram, type Metric } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { registerTlsMetrics } from '../node/certs/tls-metrics.js';
import { usage } from '../node/config.js';
import { NodeMetrics } from '../node/metrics.js';
import type { JSONSchemaProps } from '../operator/api/crd.js';
import { openAPIV3Schema } from '../operator/api/crd.js';
import { OperatorMetrics } from '../operator/metrics.js';
import { OPERATOR_SETTINGS } from '../operator/settings.js';

const ROOT = resolve(import.meta.dirname, '..');
const page = (name: string) => readFileSync(join(ROOT, 'docs/reference', name), 'utf8');

/** The first cell of every table row of a markdown section (or the whole page). */
function firstCells(markdown: string): string[] {
  return markdown
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('|---'))
    .map((l) => (l.split(' | ')[0] as string).slice(2));
}

/** The cells of the row whose first cell is exactly `` `key` ``. */
function rowOf(markdown: string, key: string): string[] | undefined {
  const line = markdown.split('\n').find((l) => l.startsWith(`| \`${key}\` |`));
  return line
    ?.slice(2, -2)
    .split(' | ')
    .map((c) => c.trim());
}

/** The section of a page from a `## heading` to the next one. */
function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}`);
  if (start < 0) throw new Error(`no section "${heading}"`);
  const end = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, end < 0 ? undefined : end);
}

function productSources(): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) files.push(path);
    }
  };
  for (const dir of ['node', 'operator']) walk(join(ROOT, dir));
  return files;
}

describe('docs/reference/flags.md', () => {
  const doc = page('flags.md');
  const nodeSection = doc.slice(0, doc.indexOf('\n## The operator'));
  // `  --flag <value>  (CONFLUX_X, default Y)` lines of conflux-node --help.
  const settings = [...usage().matchAll(/^ {2}--([a-z0-9-]+)(?: <value>)? {2}\(([A-Z0-9_]+)/gm)].map((m) => ({
    flag: `--${m[1]}`,
    env: m[2] as string,
  }));

  it('reads the settings from conflux-node --help', () => {
    expect(settings.length).toBeGreaterThan(30);
    expect(nodeSection.length).toBeLessThan(doc.length);
  });

  it('has a row for every flag of conflux-node, with its environment variable', () => {
    const missing: string[] = [];
    for (const { flag, env } of settings) {
      const row = nodeSection
        .split('\n')
        .find((l) => l.startsWith('| ') && (l.split(' | ')[0] as string).match(new RegExp(`\`${flag}[\` ]`)));
      if (!row) {
        missing.push(`${flag}: no row`);
        continue;
      }
      const envCell = row.split(' | ')[1] as string;
      const envs = [...envCell.matchAll(/`([A-Z0-9_]+)(\*?)`/g)];
      const named = envs.some(([, name, star]) => (star ? env.startsWith(name as string) : env === name));
      if (!named) missing.push(`${flag}: ${env} not in "${envCell}"`);
    }
    expect(missing).toEqual([]);
  });

  it('lists exactly the settings of conflux-operator, each with its variable', () => {
    const operatorSection = doc.slice(doc.indexOf('\n## The operator'));
    const rows = firstCells(operatorSection).filter((c) => c.startsWith('`--'));
    const expected = Object.values(OPERATOR_SETTINGS).map((s) => `\`--${s.flag}\``);
    expect(rows.sort()).toEqual(expected.sort());
    for (const s of Object.values(OPERATOR_SETTINGS)) {
      expect(rowOf(operatorSection, `--${s.flag}`)?.[1], `--${s.flag}`).toBe(`\`${s.env}\``);
    }
  });

  it('names no flag that conflux-node does not have', () => {
    const known = new Set(settings.map((s) => s.flag));
    const unknown = firstCells(nodeSection)
      .flatMap((cell) => [...cell.matchAll(/`(--[a-z0-9-]+)/g)].map((m) => m[1] as string))
      .filter((flag) => !known.has(flag));
    expect(unknown).toEqual([]);
  });
});

/** `app.get('/path'` calls in node/api: the routes, as `GET /path` with fastify's `*` and `:id` as `{…}`. */
function routes(): string[] {
  const found: string[] = [];
  for (const file of productSources().filter((f) => f.includes('/node/api/'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/\bapp\.(get|put|post|delete|patch)\('([^']+)'/g)) {
      const path = (m[2] as string).replace(/\/\*$/, '/{key}').replace(/:([a-z]+)/g, '{$1}');
      found.push(`${(m[1] as string).toUpperCase()} ${path}`);
    }
  }
  return found;
}

/** Every `METHOD /path` a page's tables list in their first column, query strings dropped. */
function documentedRoutes(markdown: string): string[] {
  return firstCells(markdown).flatMap((cell) =>
    [...cell.matchAll(/`(GET|PUT|POST|DELETE|PATCH) (\/[^`?\s]*)/g)].map((m) => `${m[1]} ${m[2]}`),
  );
}

describe('docs/reference/client-api.md and admin-api.md', () => {
  const all = routes();
  const isAdmin = (r: string) => /^\S+ \/_(cluster|internal)\//.test(r);

  it('finds the routes in node/api', () => {
    expect(all.filter(isAdmin).length).toBeGreaterThan(5);
    expect(all.filter((r) => !isAdmin(r)).length).toBeGreaterThan(5);
  });

  for (const [name, pick] of [
    ['client-api.md', (r: string) => !isAdmin(r)],
    ['admin-api.md', isAdmin],
  ] as const) {
    it(`${name} lists exactly the routes its API serves`, () => {
      const documented = documentedRoutes(page(name));
      expect([...new Set(documented)].sort()).toEqual([...new Set(all.filter(pick))].sort());
    });
  }
});

function metricKind(m: Metric): string {
  if (m instanceof Histogram) return 'histogram';
  if (m instanceof Counter) return 'counter';
  if (m instanceof Gauge) return 'gauge';
  return 'summary';
}

describe('docs/reference/metrics.md', () => {
  const doc = page('metrics.md');
  const nodeMetrics = new NodeMetrics(false);
  registerTlsMetrics(nodeMetrics.registry, {} as never);
  const operatorMetrics = new OperatorMetrics();
  const registered = [
    ...nodeMetrics.registry.getMetricsAsArray(),
    ...operatorMetrics.registry
      .getMetricsAsArray()
      .filter((m) => !m.name.startsWith('conflux_operator_process_')),
  ] as unknown as (Metric & { name: string; help: string; labelNames?: string[] })[];

  it.each(registered.map((m) => [m.name, m] as const))('%s has a row with its type and labels', (name, m) => {
    const row = rowOf(doc, name);
    expect(row, `docs/reference/metrics.md has no row for ${name}`).toBeDefined();
    const labels = (m.labelNames ?? []).map((l) => `\`${l}\``).join(', ') || '—';
    expect(row?.slice(1, 3)).toEqual([metricKind(m), labels]);
  });

  it('every metric a source file defines is registered above, and every row is one of them', () => {
    const names = new Set(registered.map((m) => m.name));
    const defined = productSources().flatMap((file) =>
      [...readFileSync(file, 'utf8').matchAll(/\bname: '(conflux_[a-z0-9_]+)'/g)].map((m) => m[1] as string),
    );
    expect(defined.filter((n) => !names.has(n))).toEqual([]);
    const rows = firstCells(doc).map((c) => c.replace(/`/g, ''));
    expect(rows.filter((r) => r.startsWith('conflux_') && !names.has(r))).toEqual([]);
  });
});

/** Every property path under a schema: `spec.a`, `spec.a.b`, `spec.list[].c`. */
function fieldPaths(schema: JSONSchemaProps, path: string): [string, JSONSchemaProps][] {
  const out: [string, JSONSchemaProps][] = [];
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    const p = `${path}.${key}`;
    out.push([p, child], ...fieldPaths(child, p));
    if (child.items && !Array.isArray(child.items))
      out.push(...fieldPaths(child.items as JSONSchemaProps, `${p}[]`));
  }
  return out;
}

describe('docs/reference/crd.md', () => {
  const doc = page('crd.md');
  for (const kind of ['ConfluxCluster', 'ConfluxBackup'] as const) {
    const table = section(doc, `\`${kind}\``);
    const spec = openAPIV3Schema(kind).properties?.spec as JSONSchemaProps;
    const fields = fieldPaths(spec, 'spec');

    it(`${kind}: a row for every spec field, with the CRD's type and default`, () => {
      expect(fields.length).toBeGreaterThan(5);
      const wrong: string[] = [];
      for (const [path, schema] of fields) {
        const row = rowOf(table, path);
        if (!row) {
          wrong.push(`${path}: no row`);
          continue;
        }
        const dflt = schema.default === undefined ? '—' : `\`${JSON.stringify(schema.default)}\``;
        if (row[1] !== (schema.type ?? '') || row[2] !== dflt) {
          wrong.push(`${path}: row says ${row[1]}, ${row[2]}; the CRD ${schema.type}, ${dflt}`);
        }
        if (!row[3]) wrong.push(`${path}: no meaning`);
      }
      expect(wrong).toEqual([]);
    });

    it(`${kind}: no row for a field the CRD does not have`, () => {
      const known = new Set(fields.map(([p]) => p));
      const rows = firstCells(table).map((c) => c.replace(/`/g, ''));
      expect(rows.filter((r) => r !== 'field' && !known.has(r))).toEqual([]);
    });
  }
});

it('the reference pages are linked from the README', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const pages = readdirSync(join(ROOT, 'docs/reference')).filter((f) => f.endsWith('.md'));
  const unlinked = pages.filter((f) => !readme.includes(`(docs/reference/${f})`));
  expect(unlinked.map((f) => relative(ROOT, join(ROOT, 'docs/reference', f)))).toEqual([]);
});
