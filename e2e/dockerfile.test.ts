// The image cannot be built here (no Docker daemon), so the Dockerfile is checked by a linter
// (dockerfile-utils, the Docker language server's validator) and for the properties we promise:
// a multi-stage build, a non-root final stage that ships only dist/ and production modules.

import { readFileSync } from 'node:fs';
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
