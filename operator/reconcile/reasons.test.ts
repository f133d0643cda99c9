import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REASONS } from './reasons.js';

const root = join(import.meta.dirname, '..', '..');
const page = readFileSync(join(root, 'docs/reference/reasons.md'), 'utf8');
const rows = [...page.matchAll(/^\| `([A-Za-z]+)` \|/gm)].map((m) => m[1] as string);

/** The operator's product sources (no tests). */
function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = join(dir, e.name);
    if (e.isDirectory()) return sources(rel);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.includes('fixtures')
      ? [rel]
      : [];
  });
}

describe('the reasons catalogue', () => {
  it('has no duplicate', () => {
    expect(new Set(REASONS).size).toBe(REASONS.length);
  });

  it('docs/reference/reasons.md lists every reason, once, and no other', () => {
    expect(rows.filter((r) => !(REASONS as readonly string[]).includes(r))).toEqual([]);
    expect(REASONS.filter((r) => !rows.includes(r))).toEqual([]);
    expect(new Set(rows).size).toBe(rows.length);
  });

  it('the README points to it', () => {
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain('docs/reference/reasons.md');
  });

  it('the operator writes no reason outside it (conditions, notes, events)', () => {
    const used = new Set<string>();
    // The reconciler and the platforms (operator/api's CEL rules carry Kubernetes' own field reasons).
    for (const file of [...sources('operator/reconcile'), ...sources('operator/platform')]) {
      const text = readFileSync(join(root, file), 'utf8');
      for (const m of text.matchAll(/\breason: '([A-Z][A-Za-z]+)'/g)) used.add(m[1] as string);
      for (const m of text.matchAll(/'(?:Normal|Warning)',\s*(?:[^,]*\? )?'([A-Z][A-Za-z]+)'/g))
        used.add(m[1] as string);
      for (const m of text.matchAll(/\['(CARotation[A-Za-z]+)'/g)) used.add(m[1] as string);
    }
    expect(used.size).toBeGreaterThan(40);
    expect([...used].filter((r) => !(REASONS as readonly string[]).includes(r)).sort()).toEqual([]);
  });

  it('one name per meaning: no reason is another with a suffix', () => {
    // TransferringLeader vs TransferringLeadership, RollingUpdateComplete vs ...Completed.
    const clashes = REASONS.flatMap((a) =>
      REASONS.filter((b) => a !== b && b.startsWith(a) && /^(ship|d|ed)$/.test(b.slice(a.length))).map(
        (b) => `${a}/${b}`,
      ),
    );
    expect(clashes).toEqual([]);
  });
});
