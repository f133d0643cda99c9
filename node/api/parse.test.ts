import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parse, queryParser } from './parse.js';

const schema = z.strictObject({
  consistency: z.enum(['linearizable', 'serializable']).default('linearizable'),
  limit: z.coerce.number().int().min(1).optional(),
});
const outcome = (f: () => unknown) => {
  try {
    return f();
  } catch (err) {
    return `refused: ${(err as Error).message}`;
  }
};

describe('queryParser', () => {
  it('answers every query as the schema does, empty or not', () => {
    const query = queryParser(schema);
    const queries: unknown[] = [
      {},
      Object.create(null),
      { consistency: 'serializable' },
      { limit: '3' },
      { limit: '0' },
      { other: '1' },
      Object.assign(Object.create(null), { consistency: 'nope' }),
      [],
      null,
      'x',
    ];
    for (const q of queries) {
      expect(outcome(() => query(q))).toEqual(outcome(() => parse(schema, q, 'query')));
    }
    expect(query({})).toEqual({ consistency: 'linearizable' });
    expect(outcome(() => query({ limit: '0' }))).toMatch(/^refused: query\.limit/);
  });
});
