// The core must stay pure: no I/O, no clock, no ambient randomness, no async (docs/ARCHITECTURE.md §2).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const CORE = [
  'errors.ts',
  'log.ts',
  'membership.ts',
  'message-checks.ts',
  'progress.ts',
  'quorum.ts',
  'raft-config.ts',
  'raft-elections.ts',
  'raft-protocol.ts',
  'raft.ts',
  'read-queue.ts',
  'replicator.ts',
  'rng.ts',
  'snapshot-receiver.ts',
  'types.ts',
];
const FORBIDDEN = [
  /from 'node:/,
  /\brequire\(/,
  /Date\.now|new Date\(/,
  /Math\.random/,
  /setTimeout|setInterval|setImmediate/,
  /\basync\b|\bawait\b|Promise/,
  /performance\.now/,
  /process\./,
];

describe('the Raft core is pure', () => {
  it('lists every core file', () => {
    const files = readdirSync(here).filter(
      (f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.startsWith('raft-node'),
    );
    expect(files.sort()).toEqual(CORE);
  });

  for (const file of CORE) {
    it(`${file} has no I/O, clock, ambient randomness or async`, () => {
      const code = readFileSync(join(here, file), 'utf8')
        .split('\n')
        .filter((l) => !l.trim().startsWith('//') && !l.trim().startsWith('*'))
        .join('\n');
      for (const pattern of FORBIDDEN) expect(code, `${file} matches ${pattern}`).not.toMatch(pattern);
    });
  }
});
