// zod at the HTTP boundary: one helper turns a schema failure into INVALID_REQUEST naming the field.

import type { z } from 'zod';
import { ConfluxError } from '../errors.js';

export function parse<S extends z.ZodType>(schema: S, input: unknown, where: string): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${[where, ...i.path].join('.')}: ${i.message}`).join('; ');
  throw new ConfluxError('INVALID_REQUEST', issues);
}

/**
 * `parse` of a query string, with the answer to an empty query (most requests carry none)
 * computed once by the schema itself: the same answer, without running the schema per request.
 */
export function queryParser<S extends z.ZodType>(schema: S): (query: unknown) => z.output<S> {
  const empty = Object.freeze(parse(schema, {}, 'query')) as z.output<S>;
  return (query) => (isEmptyObject(query) ? empty : parse(schema, query, 'query'));
}

function isEmptyObject(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  for (const _ in v) return false;
  return true;
}
