// What `npm run build` compiles into dist/ is product code only: no test, test helper or fixture
// (the build's excludes in tsconfig.build.json keep them out), nothing that imports vitest, and no
// file that no entry point reaches: a module only tests import is a test helper that ships.

import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');

/** The source files tsconfig.build.json compiles. */
function buildFiles(): string[] {
  const host = {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d: ts.Diagnostic) => {
      throw new Error(String(d.messageText));
    },
  };
  const parsed = ts.getParsedCommandLineOfConfigFile(resolve(ROOT, 'tsconfig.build.json'), {}, host);
  if (!parsed) throw new Error('tsconfig.build.json does not parse');
  return parsed.fileNames.map((f) => resolve(f));
}

/** The relative imports of a file, as source paths. */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((i) => i.fileName)
    .filter((name) => name.startsWith('.'))
    .map((name) => resolve(dirname(file), name.replace(/\.js$/, '.ts')));
}

/**
 * Where the product starts: the package's bins, what `npm start` runs (scripts/start.mjs), the
 * standalone `conflux certs` entry, and what `npm run generate` imports from the build.
 */
function entryPoints(): string[] {
  const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as {
    bin: Record<string, string>;
  };
  const fromDist = (path: string) => resolve(ROOT, path.replace(/^dist\//, '').replace(/\.js$/, '.ts'));
  const start = readFileSync(resolve(ROOT, 'scripts/start.mjs'), 'utf8').match(/'(dist\/[^']+\.js)'/)?.[1];
  if (!start) throw new Error('scripts/start.mjs runs no dist/ file');
  return [
    ...Object.values(pkg.bin).map(fromDist),
    fromDist(start),
    resolve(ROOT, 'node/certs/cli.ts'),
    ...importsOf(resolve(ROOT, 'scripts/generate-manifests.ts')),
  ];
}

describe('dist/', () => {
  const files = buildFiles();

  it('is built from product files only: no tests, test helpers or fixtures', () => {
    expect(files.length).toBeGreaterThan(50);
    const testLike = /(\.test\.ts|\/test-[^/]*\.ts|-fixtures\.ts|\/fixtures?\/)$/;
    expect(files.filter((f) => testLike.test(f)).map((f) => relative(ROOT, f))).toEqual([]);
  });

  it('has no file that imports vitest', () => {
    const offenders = files.filter((f) => /from ['"]vitest['"]/.test(readFileSync(f, 'utf8')));
    expect(offenders.map((f) => relative(ROOT, f))).toEqual([]);
  });

  it('has no file that no entry point reaches', () => {
    const inBuild = new Set(files);
    const seen = new Set<string>();
    const stack = entryPoints();
    for (const entry of stack) expect(inBuild.has(entry), relative(ROOT, entry)).toBe(true);
    while (stack.length > 0) {
      const file = stack.pop() as string;
      if (seen.has(file) || !inBuild.has(file)) continue;
      seen.add(file);
      stack.push(...importsOf(file));
    }
    expect(files.filter((f) => !seen.has(f)).map((f) => relative(ROOT, f))).toEqual([]);
  });
});
