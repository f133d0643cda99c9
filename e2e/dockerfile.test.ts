// The image cannot be built here (no Docker daemon), so the Dockerfile is checked by a linter
// (dockerfile-utils, the Docker language server's validator) and for the properties we promise:
// a multi-stage build, a non-root final stage that ships only dist/ and production modules, on a
// supported Node LTS that package.json's engines admits.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';

const text = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8');
const lines = text.split('\n').filter((l) => l.trim() && !l.trimStart().startsWith('#'));
const finalStage = lines.slice(lines.findLastIndex((l) => l.startsWith('FROM ')));

describe('Dockerfile', () => {
  it('has no linter findings', () => {
    expect(validate(text).map((d) => `${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
  });

  it('builds in one stage and runs from a small non-root final stage with dist/ only', () => {
    expect(lines.filter((l) => l.startsWith('FROM '))).toHaveLength(2);
    expect(finalStage.find((l) => l.startsWith('USER '))).toMatch(/^USER [1-9]\d*:[1-9]\d*$/);
    const copied = finalStage.filter((l) => l.startsWith('COPY ')).map((l) => l.split(/\s+/).at(-2));
    expect(copied).toEqual(['/src/package.json', '/src/node_modules', '/src/dist']);
    expect(finalStage.some((l) => l.includes('npm prune'))).toBe(false);
    expect(lines.some((l) => /npm prune --omit=dev/.test(l))).toBe(true);
    expect(finalStage.at(-1)).toBe('ENTRYPOINT ["node", "dist/node/main.js"]');
  });
});

// What `engines.node` in package.json promises must hold for every installed package: each of its
// alternatives (an interval of versions) must lie inside an alternative of every dependency's own
// engines.node. Node 20 reached its end of life in April 2026; the image runs an LTS line.
describe('Node version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    engines: { node: string };
  };
  const ours = intervals(pkg.engines.node);

  it('package.json engines.node lies inside what every installed dependency declares', () => {
    expect(ours.length, `engines.node ${pkg.engines.node} does not parse`).toBeGreaterThan(0);
    const refusing = installedEngines().filter(
      ({ range }) => !ours.every((o) => intervals(range).some((d) => inside(o, d))),
    );
    expect(refusing.map((d) => `${d.name}@${d.version} wants node ${d.range}`)).toEqual([]);
  });

  it('is no stricter than needed: its lowest version is the bound some dependency sets', () => {
    const lowest = ours.map((o) => o.lo).sort(compare)[0] as number[];
    const bounds = installedEngines().flatMap(({ range }) => intervals(range).map((i) => i.lo));
    expect(bounds.some((b) => compare(b, lowest) === 0)).toBe(true);
  });

  it('the image builds and runs on a supported LTS line (22 or 24) that engines.node admits', () => {
    const froms = lines.filter((l) => l.startsWith('FROM ')).map((l) => /^FROM node:(\d+)-/.exec(l)?.[1]);
    expect(froms).toHaveLength(2);
    expect(new Set(froms).size).toBe(1);
    const major = Number(froms[0]);
    expect([22, 24]).toContain(major);
    // The newest release of that line (its minor is ≥ 12 by now) is admitted.
    expect(ours.some((o) => inside({ lo: [major, 99, 0], hi: [major, 99, 1] }, o))).toBe(true);
  });
});

interface Installed {
  name: string;
  version: string;
  range: string;
}

/** engines.node of every package under node_modules (nested ones too). */
function installedEngines(): Installed[] {
  const out: Installed[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir)) {
      if (entry.startsWith('.')) continue;
      const path = join(dir, entry);
      if (entry.startsWith('@')) {
        walk(path);
        continue;
      }
      const file = join(path, 'package.json');
      if (!existsSync(file)) continue;
      const p = JSON.parse(readFileSync(file, 'utf8')) as {
        name?: string;
        version?: string;
        engines?: { node?: unknown };
      };
      if (typeof p.engines?.node === 'string')
        out.push({ name: p.name ?? entry, version: p.version ?? '?', range: p.engines.node });
      walk(join(path, 'node_modules'));
    }
  };
  walk(fileURLToPath(new URL('../node_modules', import.meta.url)));
  expect(out.length).toBeGreaterThan(50);
  return out;
}

/** A range of versions [lo, hi); hi absent: open-ended. */
interface Interval {
  lo: number[];
  hi?: number[];
}

/**
 * The alternatives of an npm range as intervals: `>=W` (and `>W`), `^X.Y.Z`, `~X.Y.Z`, `X`, `X.x`,
 * `*`. An alternative of another form yields nothing, so a dependency using it shows as refusing.
 */
function intervals(range: string): Interval[] {
  return range
    .split('||')
    .map((alt) => alt.trim())
    .flatMap((alt): Interval[] => {
      if (alt === '*' || alt === '' || alt === 'x') return [{ lo: [0, 0, 0] }];
      const m = /^(>=|>|\^|~)?\s*v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/.exec(alt);
      if (!m) return [];
      const [, op, a, b, c] = m;
      const num = (s: string | undefined) =>
        s === undefined || s === 'x' || s === '*' ? undefined : Number(s);
      const v = [Number(a), num(b) ?? 0, num(c) ?? 0];
      const major = v[0] as number;
      if (op === '>=' || op === '>') return [{ lo: v }];
      if (op === '~' && num(b) !== undefined) return [{ lo: v, hi: [major, (v[1] as number) + 1, 0] }];
      if (op === '^' && major === 0) return [{ lo: v, hi: [0, (v[1] as number) + 1, 0] }];
      return [{ lo: v, hi: [major + 1, 0, 0] }]; // ^X.Y.Z, ~X, X, X.x
    });
}

function inside(inner: Interval, outer: Interval): boolean {
  if (compare(inner.lo, outer.lo) < 0) return false;
  if (!outer.hi) return true;
  return inner.hi !== undefined && compare(inner.hi, outer.hi) <= 0;
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
