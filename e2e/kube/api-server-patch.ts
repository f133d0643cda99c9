// The patch formats of the API server: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
// strategic merge patch (merge patch whose lists with merge keys merge item by item, with the
// $patch, $setElementOrder, $deleteFromPrimitiveList and $retainKeys directives). Server-side
// apply is in api-server-apply.ts.

import { ApiError, badRequest } from './api-server-errors.js';
import type { Shape } from './api-server-shapes.js';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A patch that cannot be applied: 422, as the real server answers. */
const unprocessable = (message: string) =>
  new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: ${message}`);

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const unescapePointer = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw badRequest(`invalid JSON pointer: ${path}`);
  return path.slice(1).split('/').map(unescapePointer);
}

function parentOf(doc: unknown, parts: string[], op: string): { parent: unknown; key: string } {
  let cur = doc;
  for (const p of parts.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(p)];
    else if (isObject(cur)) cur = cur[p];
    else cur = undefined;
    if (cur === undefined)
      throw unprocessable(`${op} operation does not apply: doc is missing path: "/${parts.join('/')}"`);
  }
  return { parent: cur, key: parts[parts.length - 1]! };
}

function getAt(doc: unknown, path: string): unknown {
  let cur = doc;
  for (const p of pointer(path)) {
    if (Array.isArray(cur)) cur = cur[Number(p)];
    else if (isObject(cur)) cur = cur[p];
    else return undefined;
  }
  return cur;
}

export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('json patch must be an array of operations');
  let doc = structuredClone(target);
  for (const raw of ops) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw badRequest(`invalid json patch operation: ${JSON.stringify(raw)}`);
    }
    const { op, path } = raw;
    const parts = pointer(path);
    const missing = () => unprocessable(`${op} operation does not apply: doc is missing path: "${path}"`);
    if (op === 'test') {
      if (JSON.stringify(getAt(doc, path)) !== JSON.stringify(raw.value)) {
        throw unprocessable(`testing value ${path} failed`);
      }
      continue;
    }
    let value: unknown = raw.value;
    if (op === 'copy' || op === 'move') {
      if (typeof raw.from !== 'string') throw badRequest(`${op} needs from`);
      value = structuredClone(getAt(doc, raw.from));
      if (value === undefined) throw missing();
      if (op === 'move') doc = jsonPatch(doc, [{ op: 'remove', path: raw.from }]);
    }
    if (parts.length === 0) {
      if (op === 'remove') doc = undefined;
      else doc = structuredClone(value);
      continue;
    }
    const { parent, key } = parentOf(doc, parts, op);
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if (!Number.isInteger(i) || i < 0 || i > parent.length) throw missing();
      if (op === 'add' || op === 'copy' || op === 'move') parent.splice(i, 0, structuredClone(value));
      else if (op === 'replace') {
        if (i >= parent.length) throw missing();
        parent[i] = structuredClone(value);
      } else if (op === 'remove') {
        if (i >= parent.length) throw missing();
        parent.splice(i, 1);
      } else throw badRequest(`unknown json patch op ${op}`);
    } else if (isObject(parent)) {
      if (op === 'add' || op === 'copy' || op === 'move') parent[key] = structuredClone(value);
      else if (op === 'replace') {
        if (!(key in parent)) throw missing();
        parent[key] = structuredClone(value);
      } else if (op === 'remove') {
        if (!(key in parent)) throw missing();
        delete parent[key];
      } else throw badRequest(`unknown json patch op ${op}`);
    } else throw missing();
  }
  return doc;
}

// --- strategic merge patch ---------------------------------------------------------------------

const keyOf = (shape: Shape, item: unknown) =>
  JSON.stringify(
    (shape.keys ?? []).map((k) => (isObject(item) ? (item[k] ?? shape.keyDefaults?.[k]) : undefined)),
  );

export function strategicMergePatch(target: unknown, patch: unknown, shape: Shape): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return structuredClone(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  const retain = Array.isArray(patch.$retainKeys) ? (patch.$retainKeys as string[]) : undefined;
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys') continue;
    const order = /^\$setElementOrder\/(.+)$/.exec(k);
    const delPrim = /^\$deleteFromPrimitiveList\/(.+)$/.exec(k);
    if (order) continue;
    if (delPrim) {
      const field = delPrim[1]!;
      const list = Array.isArray(out[field]) ? (out[field] as unknown[]) : [];
      out[field] = list.filter((x) => !(v as unknown[]).includes(x));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const child = shape.kind === 'any' ? shape : shape.field(k);
    if (Array.isArray(v) && child?.kind === 'list' && child.listType === 'map') {
      out[k] = mergeList(out[k], v, child, patch[`$setElementOrder/${k}`]);
    } else if (Array.isArray(v) && child?.kind === 'list' && child.listType === 'set') {
      const have = Array.isArray(out[k]) ? (out[k] as unknown[]) : [];
      out[k] = [...have, ...v.filter((x) => !have.includes(x))];
    } else if (isObject(v) && child && !child.atomic && child.kind !== 'scalar') {
      const merged = strategicMergePatch(out[k], v, child);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else out[k] = structuredClone(v);
  }
  if (retain) for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  return out;
}

function mergeList(target: unknown, patch: unknown[], shape: Shape, order: unknown): unknown[] {
  if (patch.some((p) => isObject(p) && p.$patch === 'replace')) {
    return patch.filter((p) => !(isObject(p) && p.$patch === 'replace')).map((p) => structuredClone(p));
  }
  const out = Array.isArray(target) ? [...target] : [];
  for (const p of patch) {
    const i = out.findIndex((x) => keyOf(shape, x) === keyOf(shape, p));
    if (isObject(p) && p.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) out[i] = strategicMergePatch(out[i], p, shape.item());
    else out.push(strategicMergePatch(undefined, p, shape.item()));
  }
  if (Array.isArray(order)) {
    const rank = new Map(order.map((o, n) => [keyOf(shape, o), n]));
    out.sort(
      (a, b) => (rank.get(keyOf(shape, a)) ?? order.length) - (rank.get(keyOf(shape, b)) ?? order.length),
    );
  }
  return out;
}
