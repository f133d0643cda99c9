// zod at the HTTP boundary: one helper turns a schema failure into INVALID_REQUEST naming the field.

import type { z } from 'zod';
import { ConfluxError } from '../errors.js';

export function parse<S extends z.ZodType>(schema: S, input: unknown, where: string): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${[where, ...i.path].join('.')}: ${i.message}`).join('; ');
  throw new ConfluxError('INVALID_REQUEST', issues);
}
