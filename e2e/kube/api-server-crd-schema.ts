// What the API server does with a custom resource and its CRD's structural schema: defaults
// (top down, where a field is absent), OpenAPI value validation (types, enum, pattern, bounds,
// lengths, required, nullable) and x-kubernetes-validations CEL rules, transition rules (those
// that use oldSelf) only on update and only where the old object had the node too. Errors are
// causes in the real server's wording.

import { celEnv, isCelError, parse, plan } from '@bufbuild/cel';
import type { JSONSchemaProps, ValidationRule } from '../../operator/api/crd.js';
import { toCel } from '../../operator/api/test-k8s-schema.js';
import { fieldCause, type StatusCause } from './api-server-errors.js';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Structural defaulting: absent fields (and null ones that may not be null) get their default. */
export function applySchemaDefaults(s: JSONSchemaProps, v: unknown): unknown {
  if (Array.isArray(v)) return s.items ? v.map((x) => applySchemaDefaults(s.items!, x)) : v;
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = { ...v };
  for (const [k, child] of Object.entries(s.properties ?? {})) {
    const absent = out[k] === undefined || (out[k] === null && !child.nullable);
    if (absent && child.default !== undefined) out[k] = structuredClone(child.default);
    if (out[k] !== undefined) out[k] = applySchemaDefaults(child, out[k]);
  }
  if (isObject(s.additionalProperties)) {
    for (const k of Object.keys(out))
      out[k] = applySchemaDefaults(s.additionalProperties as JSONSchemaProps, out[k]);
  }
  return out;
}

const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v));
const typeName = (v: unknown) =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'array'
      : typeof v === 'number'
        ? Number.isInteger(v)
          ? 'integer'
          : 'number'
        : typeof v;

/** OpenAPI value validation of one node, recursively. `path` is `spec.replicas` (no leading dot). */
export function schemaCauses(s: JSONSchemaProps, v: unknown, path: string): StatusCause[] {
  const out: StatusCause[] = [];
  const at = path || '<root>';
  if (v === null) {
    if (!s.nullable && s.type !== undefined) {
      out.push(fieldCause(at, 'Invalid', `${at} in body must be of type ${s.type}: "null"`, 'null'));
    }
    return out;
  }
  if (s['x-kubernetes-int-or-string'] && (typeof v === 'string' || Number.isInteger(v))) return out;
  const t = typeName(v);
  const typeOk =
    s.type === undefined ||
    s.type === t ||
    (s.type === 'number' && t === 'integer') ||
    (s.type === 'object' && t === 'object');
  if (!typeOk) {
    return [fieldCause(at, 'Invalid', `${at} in body must be of type ${s.type}: "${t}"`, t)];
  }
  if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
    out.push(fieldCause(at, 'NotSupported', `supported values: ${s.enum.map(show).join(', ')}`, v));
  }
  if (typeof v === 'string') {
    if (s.minLength !== undefined && [...v].length < s.minLength) {
      out.push(fieldCause(at, 'Invalid', `${at} in body should be at least ${s.minLength} chars long`, v));
    }
    if (s.maxLength !== undefined && [...v].length > s.maxLength) {
      out.push(fieldCause(at, 'TooLong', `may not be more than ${s.maxLength} bytes`, v));
    }
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) {
      out.push(fieldCause(at, 'Invalid', `${at} in body should match '${s.pattern}'`, v));
    }
  }
  if (typeof v === 'number') {
    if (s.minimum !== undefined && (s.exclusiveMinimum ? v <= s.minimum : v < s.minimum)) {
      const rel = s.exclusiveMinimum ? 'greater than' : 'greater than or equal to';
      out.push(fieldCause(at, 'Invalid', `${at} in body should be ${rel} ${s.minimum}`, v));
    }
    if (s.maximum !== undefined && (s.exclusiveMaximum ? v >= s.maximum : v > s.maximum)) {
      const rel = s.exclusiveMaximum ? 'less than' : 'less than or equal to';
      out.push(fieldCause(at, 'Invalid', `${at} in body should be ${rel} ${s.maximum}`, v));
    }
    if (s.multipleOf !== undefined && (v / s.multipleOf) % 1 !== 0) {
      out.push(fieldCause(at, 'Invalid', `${at} in body should be a multiple of ${s.multipleOf}`, v));
    }
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) {
      out.push(fieldCause(at, 'Invalid', `${at} in body should have at least ${s.minItems} items`, v.length));
    }
    if (s.maxItems !== undefined && v.length > s.maxItems) {
      out.push(fieldCause(at, 'TooLong', `must have at most ${s.maxItems} items`, v.length));
    }
    if (s.items) {
      for (const [i, x] of v.entries()) out.push(...schemaCauses(s.items, x, `${path}[${i}]`));
    }
    if (s['x-kubernetes-list-type'] === 'map') {
      const keys = s['x-kubernetes-list-map-keys'] ?? [];
      const seen = new Set<string>();
      v.forEach((x, i) => {
        const k = JSON.stringify(keys.map((key) => (isObject(x) ? x[key] : undefined)));
        if (seen.has(k))
          out.push(fieldCause(`${path}[${i}]`, 'Duplicate', '', isObject(x) ? keys.map((key) => x[key]) : x));
        seen.add(k);
      });
    }
  }
  if (isObject(v)) {
    const props = s.properties ?? {};
    for (const r of s.required ?? []) {
      if (v[r] === undefined) out.push(fieldCause(path ? `${path}.${r}` : r, 'Required', ''));
    }
    for (const [k, x] of Object.entries(v)) {
      const child =
        props[k] ??
        (isObject(s.additionalProperties) ? (s.additionalProperties as JSONSchemaProps) : undefined);
      if (child && !(path === '' && k === 'metadata'))
        out.push(...schemaCauses(child, x, path ? `${path}.${k}` : k));
    }
  }
  return out;
}

// --- CEL ------------------------------------------------------------------------------------------

type Program = (bindings: Record<string, unknown>) => unknown;
const programs = new Map<string, Program>();

/** Compiles a rule once (throws on a syntax error, as CRD creation would refuse it). */
export function compileRule(expr: string): Program {
  let p = programs.get(expr);
  if (!p) {
    const planned = plan(celEnv(), parse(expr));
    p = (b) => planned(b as Parameters<typeof planned>[0]);
    programs.set(expr, p);
  }
  return p;
}

/** Every rule's compile problem in a schema (empty: all compile). */
export function ruleProblems(s: JSONSchemaProps, path = ''): string[] {
  const out: string[] = [];
  for (const r of s['x-kubernetes-validations'] ?? []) {
    try {
      compileRule(r.rule);
    } catch (err) {
      out.push(`${path || '<root>'}: ${r.rule}: ${(err as Error).message}`);
    }
  }
  for (const [k, c] of Object.entries(s.properties ?? {})) out.push(...ruleProblems(c, `${path}.${k}`));
  if (isObject(s.additionalProperties))
    out.push(...ruleProblems(s.additionalProperties as JSONSchemaProps, `${path}[*]`));
  if (s.items) out.push(...ruleProblems(s.items, `${path}[]`));
  return out;
}

function ruleCause(
  r: ValidationRule & { messageExpression?: string },
  path: string,
  bindings: Record<string, unknown>,
) {
  let message = r.message || `failed rule: ${r.rule}`;
  if (r.messageExpression) {
    const m = compileRule(r.messageExpression)(bindings);
    if (typeof m === 'string' && m.trim()) message = m;
  }
  const field = path + (r.fieldPath ?? '');
  const f = field.replace(/^\./, '') || '<root>';
  switch (r.reason) {
    case 'FieldValueForbidden':
      return fieldCause(f, 'Forbidden', message);
    case 'FieldValueRequired':
      return fieldCause(f, 'Required', message);
    case 'FieldValueDuplicate':
      return fieldCause(f, 'Duplicate', message, 'object');
    default:
      return fieldCause(f, 'Invalid', message, 'object');
  }
}

/** Evaluates the x-kubernetes-validations of the schema against `value` (and `old` on update). */
export function celCauses(schema: JSONSchemaProps, value: unknown, old: unknown): StatusCause[] {
  const out: StatusCause[] = [];
  const walk = (s: JSONSchemaProps, v: unknown, o: unknown, path: string) => {
    if (v === undefined || v === null) return;
    for (const r of s['x-kubernetes-validations'] ?? []) {
      const transition =
        /\boldSelf\b/.test(r.rule) ||
        /\boldSelf\b/.test((r as { messageExpression?: string }).messageExpression ?? '');
      if (transition && (o === undefined || o === null)) continue;
      const bindings: Record<string, unknown> = { self: toCel(s, v) };
      if (transition) bindings.oldSelf = toCel(s, o);
      const result = compileRule(r.rule)(bindings);
      if (isCelError(result)) {
        out.push({
          reason: 'FieldValueInvalid',
          field: path.replace(/^\./, '') || '<root>',
          message: `Invalid value: "object": rule evaluation error: ${result.message}`,
        });
      } else if (result !== true) out.push(ruleCause(r, path, bindings));
    }
    if (Array.isArray(v) && s.items) {
      const keys = s['x-kubernetes-list-type'] === 'map' ? (s['x-kubernetes-list-map-keys'] ?? []) : null;
      v.forEach((item, i) => {
        const oldItem =
          keys && Array.isArray(o)
            ? o.find(
                (x) =>
                  isObject(x) &&
                  isObject(item) &&
                  keys.every((k) => JSON.stringify(x[k]) === JSON.stringify(item[k])),
              )
            : undefined;
        walk(s.items!, item, oldItem, `${path}[${i}]`);
      });
      return;
    }
    if (!isObject(v)) return;
    const oo = isObject(o) ? o : undefined;
    for (const [k, c] of Object.entries(s.properties ?? {})) walk(c, v[k], oo?.[k], `${path}.${k}`);
    if (isObject(s.additionalProperties)) {
      for (const [k, c] of Object.entries(v))
        walk(s.additionalProperties as JSONSchemaProps, c, oo?.[k], `${path}[${JSON.stringify(k)}]`);
    }
  };
  walk(schema, value, old, '');
  return out;
}
