import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALL_ERROR_CODES, ConfluxError } from '../errors.js';
import { RaftError } from '../raft/errors.js';
import { HTTP_STATUS, toHttpError } from './http-errors.js';

describe('the error catalogue', () => {
  const readme = readFileSync(new URL('../../docs/reference/errors.md', import.meta.url), 'utf8');

  it.each(ALL_ERROR_CODES)(
    '%s is mapped to a 4xx/5xx status and documented in docs/reference/errors.md',
    (code) => {
      expect(HTTP_STATUS[code]).toBeGreaterThanOrEqual(400);
      const row = readme.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
      expect(row, `docs/reference/errors.md has no row for ${code}`).toBeDefined();
      expect(row).toContain(`| ${HTTP_STATUS[code]} |`);
    },
  );

  it('keeps details and the leader hint in the body', () => {
    expect(toHttpError(new ConfluxError('COMPACTED', 'too old', { oldestRevision: 7 }))).toEqual({
      status: 410,
      body: { error: { code: 'COMPACTED', message: 'too old', oldestRevision: 7 } },
    });
    expect(toHttpError(new RaftError('NOT_LEADER', 'no', 'n2')).body.error.leader).toBe('n2');
  });

  it('never leaks an unknown error', () => {
    expect(toHttpError(new TypeError('secret detail'))).toEqual({
      status: 500,
      body: { error: { code: 'INTERNAL', message: 'internal error' } },
    });
  });
});
