// Test support: the parts of the API server's handling of a CRD schema that the tests need, in
// miniature: the structural-schema rules, defaulting, OpenAPI value validation and the evaluation
// of x-kubernetes-validations (CEL, with @bufbuild/cel). Not built into dist (test-*.ts).

import { isCelError, run } from '@bufbuild/cel';
import type { JSONSchemaProps } from './crd.js';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const KNOWN_KEYWORDS = new Set([
  'type',
  'description',
  'properties',
  'additionalProperties',
  'items',
  'required',
  'default',
  'enum',
  'pattern',
  'format',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'multipleOf',
  'nullable',
  'example',
  'title',
  'x-kubernetes-validations',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-embedded-resource',
]);
const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);

/**
 * Why a schema is not structural (empty when it is), after the Kubernetes rules: every node has a
 * type (or x-kubernetes-int-or-string / x-kubernetes-preserve-unknown-fields); properties and
 * additionalProperties never together; no $ref, $schema, definitions, dependencies, additionalItems,
 * patternProperties or uniqueItems; metadata at the root is `type: object` only; defaults are
 * pruned (no field the schema does not know) and absent at the root; list-type map keys exist and
 * are required or defaulted. (Kubernetes allows restricted anyOf/allOf/oneOf/not; this generator
 * never emits them, so they are reported too.)
 */
export function structuralProblems(root: JSONSchemaProps): string[] {
  const problems: string[] = [];
  const walk = (node: JSONSchemaProps, path: string) => {
    const raw = node as Record<string, unknown>;
    for (const key of Object.keys(raw)) {
      if (!KNOWN_KEYWORDS.has(key)) problems.push(`${path}: keyword ${key} is not allowed`);
    }
    const preserve = node['x-kubernetes-preserve-unknown-fields'] === true;
    const intOrString = node['x-kubernetes-int-or-string'] === true;
    if (node.type === undefined) {
      if (!preserve && !intOrString) problems.push(`${path}: no type`);
    } else if (!TYPES.has(node.type)) {
      problems.push(`${path}: unknown type ${String(node.type)}`);
    } else if (intOrString) {
      problems.push(`${path}: x-kubernetes-int-or-string with a type`);
    }
    if (node.properties !== undefined && node.additionalProperties !== undefined) {
      problems.push(`${path}: properties and additionalProperties together`);
    }
    if (node.additionalProperties !== undefined && !isObject(node.additionalProperties)) {
      problems.push(`${path}: additionalProperties must be a schema`);
    }
    if (raw.uniqueItems === true) problems.push(`${path}: uniqueItems`);
    if ((node.properties || node.additionalProperties) && node.type !== 'object') {
      problems.push(`${path}: properties on a node of type ${String(node.type)}`);
    }
    if (node.items !== undefined && (node.type !== 'array' || !isObject(node.items))) {
      problems.push(`${path}: items must be one schema on an array`);
    }
    if (node.type === 'array' && node.items === undefined) problems.push(`${path}: array without items`);
    if (
      node.type === 'integer' &&
      (Math.abs(node.maximum ?? 0) >= Number.MAX_SAFE_INTEGER ||
        Math.abs(node.minimum ?? 0) >= Number.MAX_SAFE_INTEGER)
    ) {
      problems.push(`${path}: unbounded integer bound left in`);
    }
    for (const name of node.required ?? []) {
      if (!node.properties?.[name]) problems.push(`${path}: required ${name} is not a property`);
    }
    if (node.default !== undefined) {
      for (const p of prunedProblems(node, node.default, `${path}.default`)) problems.push(p);
    }
    if (node['x-kubernetes-list-type'] === 'map') {
      const item = node.items as JSONSchemaProps | undefined;
      const keys = node['x-kubernetes-list-map-keys'] ?? [];
      if (keys.length === 0) problems.push(`${path}: list-type map without keys`);
      for (const k of keys) {
        const prop = item?.properties?.[k];
        if (!prop) problems.push(`${path}: map key ${k} is not a property`);
        else if (!['string', 'integer', 'boolean'].includes(prop.type ?? '')) {
          problems.push(`${path}: map key ${k} is not a scalar`);
        } else if (!item?.required?.includes(k) && prop.default === undefined) {
          problems.push(`${path}: map key ${k} is neither required nor defaulted`);
        }
      }
    }
    for (const rule of node['x-kubernetes-validations'] ?? []) {
      if (!rule.rule) problems.push(`${path}: empty CEL rule`);
      if (!rule.message || /[\r\n]/.test(rule.message))
        problems.push(`${path}: CEL rule message missing or multi-line`);
    }
    for (const [name, child] of Object.entries(node.properties ?? {})) walk(child, `${path}.${name}`);
    if (isObject(node.additionalProperties)) walk(node.additionalProperties as JSONSchemaProps, `${path}[*]`);
    if (isObject(node.items)) walk(node.items, `${path}[]`);
  };

  walk(root, '');
  if (root.type !== 'object') problems.push('root: type must be object');
  if (root.default !== undefined) problems.push('root: no default at the root');
  const metadata = root.properties?.metadata;
  if (metadata && (metadata.type !== 'object' || Object.keys(metadata).length !== 1)) {
    problems.push('.metadata: at the root only `type: object` (this generator restricts nothing in it)');
  }
  return problems;
}

/** Fields of `value` the schema does not know (the API server would prune them). */
function prunedProblems(schema: JSONSchemaProps, value: unknown, path: string): string[] {
  if (schema['x-kubernetes-preserve-unknown-fields']) return [];
  if (Array.isArray(value) && schema.items) {
    return value.flatMap((v, i) => prunedProblems(schema.items!, v, `${path}[${i}]`));
  }
  if (!isObject(value)) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    const child =
      schema.properties?.[k] ??
      (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
    if (!child) out.push(`${path}.${k}: not in the schema (a default must be pruned)`);
    else out.push(...prunedProblems(child as JSONSchemaProps, v, `${path}.${k}`));
  }
  return out;
}

/**
 * The API server's structural defaulting: missing fields get their default, top down. A null in a
 * field that is not `nullable` is pruned first, so it is defaulted like a missing field (as
 * apiextensions-apiserver does since Kubernetes 1.20).
 */
export function applyDefaults<T>(schema: JSONSchemaProps, value: T): T {
  const walk = (s: JSONSchemaProps, v: unknown): unknown => {
    if (Array.isArray(v)) return s.items ? v.map((item) => walk(s.items!, item)) : v;
    if (!isObject(v)) return v;
    const out: Record<string, unknown> = { ...v };
    for (const [k, child] of Object.entries(s.properties ?? {})) {
      if (out[k] === null && !child.nullable) delete out[k];
      if (out[k] === undefined && child.default !== undefined) out[k] = structuredClone(child.default);
      if (out[k] !== undefined) out[k] = walk(child, out[k]);
    }
    if (isObject(s.additionalProperties)) {
      for (const k of Object.keys(out)) out[k] = walk(s.additionalProperties as JSONSchemaProps, out[k]);
    }
    return out;
  };
  return walk(schema, structuredClone(value)) as T;
}

/**
 * OpenAPI value validation as the API server does it before CEL (types, enum, pattern, bounds,
 * required), plus unknown fields (which the API server prunes, and `kubectl` with strict field
 * validation rejects). Patterns are run as JavaScript regular expressions.
 */
export function schemaErrors(schema: JSONSchemaProps, value: unknown, path = ''): string[] {
  const errs: string[] = [];
  const at = path || '<root>';
  if (value === null) {
    if (!schema.nullable) errs.push(`${at}: null`);
    return errs;
  }
  if (schema['x-kubernetes-preserve-unknown-fields'] && schema.type === undefined) return errs;
  // The API server validates metadata as ObjectMeta, not with the CRD's schema.
  if (path === '.metadata') return isObject(value) ? errs : [`${at}: expected object`];
  switch (schema.type) {
    case 'object': {
      if (!isObject(value)) return [`${at}: expected object`];
      for (const r of schema.required ?? []) if (value[r] === undefined) errs.push(`${path}.${r}: required`);
      for (const [k, v] of Object.entries(value)) {
        const child =
          schema.properties?.[k] ??
          (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
        if (child) errs.push(...schemaErrors(child as JSONSchemaProps, v, `${path}.${k}`));
        else if (!schema['x-kubernetes-preserve-unknown-fields']) errs.push(`${path}.${k}: unknown field`);
      }
      break;
    }
    case 'array':
      if (!Array.isArray(value)) return [`${at}: expected array`];
      value.forEach((v, i) => {
        errs.push(...schemaErrors(schema.items!, v, `${path}[${i}]`));
      });
      break;
    case 'string':
      if (typeof value !== 'string') return [`${at}: expected string`];
      // Lengths in characters (Unicode code points), as kube-openapi counts them, not UTF-16 units.
      if (schema.minLength !== undefined && [...value].length < schema.minLength)
        errs.push(`${at}: too short`);
      if (schema.maxLength !== undefined && [...value].length > schema.maxLength)
        errs.push(`${at}: too long`);
      if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) {
        errs.push(`${at}: does not match ${schema.pattern}`);
      }
      break;
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || (schema.type === 'integer' && !Number.isInteger(value))) {
        return [`${at}: expected ${schema.type}`];
      }
      const { minimum: min, maximum: max } = schema;
      if (min !== undefined && (schema.exclusiveMinimum ? value <= min : value < min))
        errs.push(`${at}: below minimum`);
      if (max !== undefined && (schema.exclusiveMaximum ? value >= max : value > max))
        errs.push(`${at}: above maximum`);
      break;
    }
    case 'boolean':
      if (typeof value !== 'boolean') return [`${at}: expected boolean`];
      break;
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    errs.push(`${at}: not one of ${JSON.stringify(schema.enum)}`);
  }
  return errs;
}

/** A JSON value as the API server hands it to CEL: integers are CEL ints, null fields are absent. */
export function toCel(schema: JSONSchemaProps | undefined, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.map((v) => toCel(schema?.items, v));
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === null || v === undefined) continue;
      const child =
        schema?.properties?.[k] ??
        (isObject(schema?.additionalProperties)
          ? (schema.additionalProperties as JSONSchemaProps)
          : undefined);
      out[k] = toCel(child, v);
    }
    return out;
  }
  if (typeof value === 'number' && schema?.type === 'integer') return BigInt(value);
  return value;
}

export interface CelFailure {
  /** Where the rule sits (`.spec.tls`), plus its fieldPath if it has one. */
  path: string;
  rule: string;
  message: string;
}

export class CelEvaluationError extends Error {
  override readonly name = 'CelEvaluationError';
}

/**
 * Evaluates every x-kubernetes-validations rule of `schema` against `value` the way the API
 * server does: a rule runs where its node has a value; a transition rule (one that mentions
 * `oldSelf`) runs only on update, and only where the node also existed in `oldValue` (list items
 * are correlated only for x-kubernetes-list-type map). A rule that evaluates to anything but `true`
 * is a failure; one that cannot be evaluated throws CelEvaluationError.
 */
export function celFailures(schema: JSONSchemaProps, value: unknown, oldValue?: unknown): CelFailure[] {
  const failures: CelFailure[] = [];
  const walk = (s: JSONSchemaProps, v: unknown, old: unknown, path: string) => {
    if (v === undefined || v === null) return;
    for (const r of s['x-kubernetes-validations'] ?? []) {
      const transition = /\boldSelf\b/.test(r.rule);
      if (transition && (old === undefined || old === null)) continue;
      const bindings: Record<string, unknown> = { self: toCel(s, v) };
      if (transition) bindings.oldSelf = toCel(s, old);
      const result = run(r.rule, bindings as Parameters<typeof run>[1]);
      if (isCelError(result)) {
        throw new CelEvaluationError(`cannot evaluate ${r.rule} at ${path || '<root>'}: ${result.message}`);
      }
      if (result !== true)
        failures.push({ path: path + (r.fieldPath ?? ''), rule: r.rule, message: r.message });
    }
    if (Array.isArray(v) && s.items) {
      const keys = s['x-kubernetes-list-type'] === 'map' ? (s['x-kubernetes-list-map-keys'] ?? []) : null;
      v.forEach((item, i) => {
        let oldItem: unknown;
        if (keys && Array.isArray(old)) {
          oldItem = old.find(
            (o) =>
              isObject(o) &&
              isObject(item) &&
              keys.every((k) => JSON.stringify(o[k]) === JSON.stringify(item[k])),
          );
        }
        walk(s.items!, item, oldItem, `${path}[${i}]`);
      });
      return;
    }
    if (!isObject(v)) return;
    const oldObj = isObject(old) ? old : undefined;
    for (const [k, child] of Object.entries(s.properties ?? {}))
      walk(child, v[k], oldObj?.[k], `${path}.${k}`);
    if (isObject(s.additionalProperties)) {
      for (const [k, child] of Object.entries(v)) {
        walk(s.additionalProperties as JSONSchemaProps, child, oldObj?.[k], `${path}[${JSON.stringify(k)}]`);
      }
    }
  };
  walk(schema, value, oldValue, '');
  return failures;
}

/**
 * What the API server would say to a create (no `old`) or an update of `value`: defaults applied
 * to both, then OpenAPI validation, then CEL. Empty when it would accept.
 */
export function admissionErrors(schema: JSONSchemaProps, value: unknown, old?: unknown): string[] {
  const v = applyDefaults(schema, value);
  const errs = schemaErrors(schema, v);
  if (errs.length > 0) return errs;
  const o = old === undefined ? undefined : applyDefaults(schema, old);
  return celFailures(schema, v, o).map((f) => `${f.path}: ${f.message}`);
}
