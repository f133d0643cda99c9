// Files and functions stay small enough to read (docs/ARCHITECTURE.md §1): no source file in node/
// or operator/ over 500 lines, and no function over 80 lines, tests and test helpers aside.
// KNOWN_OVER lists what is over a limit today, at its size today: it may only shrink. A listed
// entry that grows fails, and so does one that is back within the limit (remove it from the list).

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const MAX_FILE_LINES = 500;
const MAX_FUNCTION_LINES = 80;

/** `file` or `file name()`: the size it had when the limits came in, to be split. */
const KNOWN_OVER: Record<string, number> = {};

/** Product sources: .ts files under node/ and operator/ that are not tests or test helpers. */
function productFiles(): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.ts$/.test(entry.name) && !/(\.test\.ts|^test-.*\.ts|-fixtures\.ts)$/.test(entry.name)) {
        files.push(path);
      }
    }
  };
  for (const dir of ['node', 'operator']) walk(join(ROOT, dir));
  return files;
}

function lineCount(text: string): number {
  return text.endsWith('\n') ? text.split('\n').length - 1 : text.split('\n').length;
}

/** Every function, method, accessor, constructor and arrow function longer than the limit. */
function longFunctions(file: string): [string, number][] {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
  const found: [string, number][] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = end - start + 1;
      if (lines > MAX_FUNCTION_LINES) {
        const name = node.name?.getText(source) ?? `(anonymous at line ${start + 1})`;
        found.push([`${relative(ROOT, file)} ${name}()`, lines]);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** What is over its limit and not known, or known and grown; and known entries back within it. */
function againstKnown(over: [string, number][], isKind: (key: string) => boolean): string[] {
  const problems = over
    .filter(([key, lines]) => KNOWN_OVER[key] === undefined || lines > (KNOWN_OVER[key] as number))
    .map(([key, lines]) => `${key}: ${lines} lines${KNOWN_OVER[key] ? ` (was ${KNOWN_OVER[key]})` : ''}`);
  const still = new Set(over.map(([key]) => key));
  for (const key of Object.keys(KNOWN_OVER).filter(isKind)) {
    if (!still.has(key)) problems.push(`${key}: within the limit now, remove it from KNOWN_OVER`);
  }
  return problems;
}

describe('size limits', () => {
  const files = productFiles();

  it('finds the product sources', () => {
    expect(files.length).toBeGreaterThan(100);
  });

  it(`no source file in node/ or operator/ is over ${MAX_FILE_LINES} lines`, () => {
    const long = files
      .map((f): [string, number] => [relative(ROOT, f), lineCount(readFileSync(f, 'utf8'))])
      .filter(([, lines]) => lines > MAX_FILE_LINES);
    expect(againstKnown(long, (key) => !key.endsWith(')'))).toEqual([]);
  });

  it(`no function outside tests is over ${MAX_FUNCTION_LINES} lines`, () => {
    expect(againstKnown(files.flatMap(longFunctions), (key) => key.endsWith(')'))).toEqual([]);
  });
});
