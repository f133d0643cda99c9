// The documentation stays true to the tree: every relative link in docs/ARCHITECTURE.md, the
// reference pages in docs/reference/ and the README names a file or folder that exists (and an
// anchor of ARCHITECTURE.md that exists), every `docs/ARCHITECTURE.md §N` a comment cites is a section of it, and no source file points at a
// design document outside the repository.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const ARCHITECTURE = join(ROOT, 'docs/ARCHITECTURE.md');
const REFERENCE = join(ROOT, 'docs/reference');
const DOCS = [
  ARCHITECTURE,
  join(ROOT, 'README.md'),
  ...readdirSync(REFERENCE)
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(REFERENCE, f)),
];
const SOURCE_DIRS = ['node', 'operator', 'e2e', 'scripts', 'bench'];
const SOURCE_FILE = /\.(ts|mts|js|mjs|cjs|sh|md)$/;

/** Markdown without code: links inside fences or code spans are examples, not links. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** The targets of `[text](target)` links, without external ones. */
function relativeLinks(markdown: string): string[] {
  const links = [...prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string);
  return links.filter((l) => !/^[a-z][a-z0-9+.-]*:/i.test(l));
}

function anchorsOf(markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/<a id="([^"]+)"><\/a>/g)].map((m) => m[1] as string));
}

function sourceFiles(): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (SOURCE_FILE.test(entry.name)) files.push(path);
    }
  };
  for (const dir of SOURCE_DIRS) walk(join(ROOT, dir));
  return files;
}

describe('documentation', () => {
  for (const doc of DOCS) {
    const name = relative(ROOT, doc);
    it(`${name}: every relative link points at an existing file`, () => {
      const text = readFileSync(doc, 'utf8');
      const broken: string[] = [];
      for (const link of relativeLinks(text)) {
        const [path = '', anchor] = link.split('#');
        const target = path === '' ? doc : resolve(dirname(doc), decodeURIComponent(path));
        if (!existsSync(target)) broken.push(link);
        else if (anchor && target === ARCHITECTURE && !anchorsOf(readFileSync(target, 'utf8')).has(anchor))
          broken.push(link);
      }
      expect(broken, `broken links in ${name}`).toEqual([]);
    });
  }

  it('every section number a source file cites exists in docs/ARCHITECTURE.md', () => {
    const sections = new Set(
      [...readFileSync(ARCHITECTURE, 'utf8').matchAll(/^## §(\d+) /gm)].map((m) => m[1] as string),
    );
    expect(sections.size).toBeGreaterThan(0);
    const missing: string[] = [];
    for (const file of sourceFiles()) {
      const text = readFileSync(file, 'utf8');
      // "docs/ARCHITECTURE.md §7", "§7 and §9", "§7/§9": every number after the reference.
      for (const ref of text.matchAll(/docs\/ARCHITECTURE\.md((?:[ ,/]*(?:and )?§\d+)+)/g)) {
        for (const n of (ref[1] as string).matchAll(/§(\d+)/g)) {
          if (!sections.has(n[1] as string)) missing.push(`${relative(ROOT, file)}: §${n[1]}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('no source file points at a design document outside the repository', () => {
    // Built from parts, so that this file does not match itself.
    const design = 'DESI' + 'GN';
    const style = 'STY' + 'LE';
    const outside = new RegExp([`${design} §`, `${design}\\.md`, `${style}\\.md`].join('|'));
    const offenders = sourceFiles()
      .filter((file) => outside.test(readFileSync(file, 'utf8')))
      .map((file) => relative(ROOT, file));
    expect(offenders).toEqual([]);
  });
});
