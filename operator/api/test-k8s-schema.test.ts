// The test oracle of the API server's CRD handling follows Kubernetes where it is easy to get
// wrong: a null in a non-nullable field is pruned and then defaulted, and string lengths count
// characters (code points), not UTF-16 units.

import { describe, expect, it } from 'vitest';
import type { JSONSchemaProps } from './crd.js';
import { admissionErrors, applyDefaults, schemaErrors } from './test-k8s-schema.js';

const schema: JSONSchemaProps = {
  type: 'object',
  properties: {
    replicas: { type: 'integer', default: 3 },
    note: { type: 'string', nullable: true, default: 'x' },
    name: { type: 'string', maxLength: 3, minLength: 2 },
  },
};

describe('the CRD oracle', () => {
  it('prunes a null in a non-nullable field and defaults it; keeps a null where nullable', () => {
    expect(applyDefaults(schema, { replicas: null, note: null })).toEqual({ replicas: 3, note: null });
    expect(admissionErrors(schema, { replicas: null })).toEqual([]);
    expect(schemaErrors(schema, { replicas: null })).toEqual(['.replicas: null']);
  });

  it('counts string lengths in code points', () => {
    // Three emoji are six UTF-16 units but three characters.
    expect(schemaErrors(schema, { name: '😀😀😀' })).toEqual([]);
    expect(schemaErrors(schema, { name: '😀😀😀😀' })).toEqual(['.name: too long']);
    expect(schemaErrors(schema, { name: '😀' })).toEqual(['.name: too short']);
  });
});
