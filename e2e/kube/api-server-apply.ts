// Server-side apply and managed fields, after structured-merge-diff: every write records which
// fields its manager set (metadata.managedFields, FieldsV1 format); an apply merges the applied
// configuration into the live object, removes the fields this manager applied before and no
// longer applies (unless another manager also owns them), and refuses (409) to change a field
// another manager owns unless force=true, which takes the field over. Lists merge by the shape's
// list type: map lists item by item (by key), sets by value, the rest atomically.

import { ApiError, badRequest } from './api-server-errors.js';
import type { Shape } from './api-server-shapes.js';
import type { KubeObject, ManagedFieldsEntry } from './api-server-store.js';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A field path: `f:spec`, `k:{"name":"x"}`, `v:"a"` segments, JSON-encoded as one string. */
export type PathSet = Set<string>;

const META_FIELDS = new Set(['labels', 'annotations', 'ownerReferences', 'finalizers']);

function itemKey(shape: Shape, item: unknown): string {
  const key: Record<string, unknown> = {};
  for (const k of [...(shape.keys ?? [])].sort()) {
    key[k] = isObject(item) ? (item[k] ?? shape.keyDefaults?.[k]) : undefined;
  }
  return `k:${JSON.stringify(key)}`;
}

function walkFields(value: unknown, shape: Shape, prefix: string[], out: PathSet): void {
  const add = (segs: string[]) => out.add(JSON.stringify(segs));
  if (Array.isArray(value) && shape.kind === 'list' && shape.listType === 'map') {
    for (const item of value) {
      const seg = [...prefix, itemKey(shape, item)];
      add(seg);
      walkFields(item, shape.item(), seg, out);
    }
    return;
  }
  if (Array.isArray(value) && shape.kind === 'list' && shape.listType === 'set') {
    for (const v of value) add([...prefix, `v:${JSON.stringify(v)}`]);
    return;
  }
  if (
    isObject(value) &&
    !shape.atomic &&
    (shape.kind === 'struct' || shape.kind === 'map' || shape.kind === 'any')
  ) {
    const entries = Object.entries(value).filter(([, v]) => v !== null && v !== undefined);
    if (entries.length === 0 && prefix.length > 0) add(prefix);
    for (const [k, v] of entries) walkFields(v, shape.field(k) ?? shape, [...prefix, `f:${k}`], out);
    return;
  }
  if (prefix.length > 0) add(prefix);
}

/** The fields an object (or an applied configuration) sets, for one part of it. */
export function fieldSet(
  obj: KubeObject,
  shape: Shape,
  part: 'main' | 'status',
  hasStatus: boolean,
): PathSet {
  const out: PathSet = new Set();
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'apiVersion' || k === 'kind' || v === null || v === undefined) continue;
    if (part === 'status' ? k !== 'status' : k === 'status' && hasStatus) continue;
    if (k === 'metadata') {
      for (const [mk, mv] of Object.entries(obj.metadata)) {
        if (META_FIELDS.has(mk) && mv !== undefined && mv !== null && part === 'main') {
          walkFields(mv, shape.field('metadata')!.field(mk)!, ['f:metadata', `f:${mk}`], out);
        }
      }
      continue;
    }
    walkFields(v, shape.field(k) ?? shape, [`f:${k}`], out);
  }
  return out;
}

/** The value at a path (undefined when absent); a list item's own path yields the item. */
function valueAt(obj: unknown, segs: string[]): unknown {
  let cur = obj;
  for (const seg of segs) {
    if (seg.startsWith('f:')) cur = isObject(cur) ? cur[seg.slice(2)] : undefined;
    else if (seg.startsWith('k:')) {
      const key = JSON.parse(seg.slice(2)) as Record<string, unknown>;
      cur = Array.isArray(cur)
        ? cur.find((it) => isObject(it) && Object.entries(key).every(([k, v]) => (it[k] ?? v) === v))
        : undefined;
    } else if (seg.startsWith('v:')) {
      const v = JSON.parse(seg.slice(2));
      cur = Array.isArray(cur) && cur.some((x) => JSON.stringify(x) === JSON.stringify(v)) ? v : undefined;
    }
    if (cur === undefined) return undefined;
  }
  return cur;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** A list item's own path is "the same" in two objects when the item exists in both. */
function sameAt(a: unknown, b: unknown, segs: string[]): boolean {
  const last = segs[segs.length - 1] ?? '';
  const va = valueAt(a, segs);
  const vb = valueAt(b, segs);
  if (last.startsWith('k:')) return (va === undefined) === (vb === undefined);
  return same(va, vb);
}

const isEmpty = (v: unknown) =>
  (isObject(v) && Object.keys(v).length === 0) || (Array.isArray(v) && v.length === 0);

/** Removes the field (or list item) at a path, and the containers below the top level it empties. */
function removePath(obj: unknown, segs: string[]): void {
  const parent = valueAt(obj, segs.slice(0, -1));
  const last = segs[segs.length - 1]!;
  if (last.startsWith('f:')) {
    if (isObject(parent)) delete parent[last.slice(2)];
  } else if (Array.isArray(parent)) {
    const target = valueAt(obj, segs);
    const i = parent.findIndex((x) => x === target || same(x, target));
    if (i >= 0) parent.splice(i, 1);
  }
  for (let depth = segs.length - 1; depth >= 2; depth -= 1) {
    if (!isEmpty(valueAt(obj, segs.slice(0, depth)))) break;
    const seg = segs[depth - 1]!;
    const above = valueAt(obj, segs.slice(0, depth - 1));
    if (!seg.startsWith('f:') || !isObject(above)) break;
    delete above[seg.slice(2)];
  }
}

function mergeApplied(live: unknown, applied: unknown, shape: Shape): unknown {
  if (applied === null || applied === undefined) return live;
  if (Array.isArray(applied) && shape.kind === 'list' && shape.listType === 'map') {
    const out = Array.isArray(live) ? [...live] : [];
    for (const item of applied) {
      const i = out.findIndex((x) => itemKey(shape, x) === itemKey(shape, item));
      if (i >= 0) out[i] = mergeApplied(out[i], item, shape.item());
      else out.push(structuredClone(item));
    }
    return out;
  }
  if (Array.isArray(applied) && shape.kind === 'list' && shape.listType === 'set') {
    const out = Array.isArray(live) ? [...live] : [];
    for (const v of applied) if (!out.some((x) => same(x, v))) out.push(v);
    return out;
  }
  if (
    isObject(applied) &&
    isObject(live) &&
    !shape.atomic &&
    shape.kind !== 'scalar' &&
    shape.kind !== 'list'
  ) {
    const out: Record<string, unknown> = { ...live };
    for (const [k, v] of Object.entries(applied)) out[k] = mergeApplied(out[k], v, shape.field(k) ?? shape);
    return out;
  }
  return structuredClone(applied);
}

// --- FieldsV1 ------------------------------------------------------------------------------------

type Tree = { member: boolean; children: Map<string, Tree> };

export function toFieldsV1(paths: PathSet): Record<string, unknown> {
  const root: Tree = { member: false, children: new Map() };
  for (const p of paths) {
    let node = root;
    for (const seg of JSON.parse(p) as string[]) {
      let next = node.children.get(seg);
      if (!next) {
        next = { member: false, children: new Map() };
        node.children.set(seg, next);
      }
      node = next;
    }
    node.member = true;
  }
  const emit = (t: Tree): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    if (t.member && t.children.size > 0) out['.'] = {};
    for (const [k, c] of [...t.children].sort(([a], [b]) => a.localeCompare(b))) out[k] = emit(c);
    return out;
  };
  return emit(root);
}

export function fromFieldsV1(tree: unknown): PathSet {
  const out: PathSet = new Set();
  const walk = (node: unknown, prefix: string[]) => {
    if (!isObject(node)) return;
    const keys = Object.keys(node).filter((k) => k !== '.');
    if ((keys.length === 0 || '.' in node) && prefix.length > 0) out.add(JSON.stringify(prefix));
    for (const k of keys) walk(node[k], [...prefix, k]);
  };
  walk(tree, []);
  return out;
}

/** `.spec.containers[name="conflux"].image`: a path as conflict messages show it. */
function displayPath(p: string): string {
  return (JSON.parse(p) as string[])
    .map((seg) => {
      if (seg.startsWith('f:')) return `.${seg.slice(2)}`;
      if (seg.startsWith('k:')) {
        const key = JSON.parse(seg.slice(2)) as Record<string, unknown>;
        return `[${Object.entries(key)
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join(',')}]`;
      }
      return `[=${seg.slice(2)}]`;
    })
    .join('');
}

// --- managed fields of a write ---------------------------------------------------------------------

export interface WriteContext {
  manager: string;
  apiVersion: string;
  shape: Shape;
  hasStatus: boolean;
  subresource?: 'status';
  now: string;
}

const entryMatches = (e: ManagedFieldsEntry, c: WriteContext, op: 'Apply' | 'Update') =>
  e.manager === c.manager && e.operation === op && (e.subresource ?? '') === (c.subresource ?? '');

/**
 * The managedFields after a write of `next` over `old`: the manager of an Update owns what it
 * changed (others lose it); every entry keeps only fields that still exist.
 */
export function managedAfterWrite(
  old: KubeObject | undefined,
  next: KubeObject,
  c: WriteContext,
  op: 'Apply' | 'Update',
  prevEntries: ManagedFieldsEntry[],
  applied?: PathSet,
): ManagedFieldsEntry[] {
  const part = c.subresource === 'status' ? 'status' : 'main';
  const exists = (p: string) => valueAt(next, JSON.parse(p) as string[]) !== undefined;
  const entries = prevEntries.map((e) => ({ e, set: fromFieldsV1(e.fieldsV1) }));
  let mine: PathSet;
  if (op === 'Apply') mine = applied ?? new Set();
  else {
    mine = new Set(
      [...fieldSet(next, c.shape, part, c.hasStatus)].filter(
        (p) => !old || !sameAt(old, next, JSON.parse(p)),
      ),
    );
    for (const x of entries) for (const p of mine) x.set.delete(p);
    const prev = entries.find((x) => entryMatches(x.e, c, 'Update'));
    if (prev) for (const p of prev.set) mine.add(p);
  }
  const kept = new Set([...mine].filter(exists));
  const own: ManagedFieldsEntry | undefined =
    kept.size > 0 || op === 'Apply'
      ? {
          manager: c.manager,
          operation: op,
          apiVersion: c.apiVersion,
          time: c.now,
          fieldsType: 'FieldsV1',
          fieldsV1: toFieldsV1(kept),
          ...(c.subresource ? { subresource: c.subresource } : {}),
        }
      : undefined;
  // Entries keep their places (a manager's entry is replaced where it was), so a write that
  // changes nothing compares equal to the stored object.
  const out: ManagedFieldsEntry[] = [];
  let placed = false;
  for (const x of entries) {
    if (entryMatches(x.e, c, op)) {
      if (own && !placed) out.push(own);
      placed = true;
      continue;
    }
    const others = new Set([...x.set].filter(exists));
    if (others.size > 0) out.push({ ...x.e, fieldsV1: toFieldsV1(others) });
  }
  if (own && !placed) out.push(own);
  return out;
}

/**
 * Server-side apply of `applied` over `live` (undefined: create). Returns the merged object and
 * the field set the manager now owns; managedFields of the result already record the takeover of
 * conflicting fields (with force), and must be finished with managedAfterWrite.
 */
export function serverSideApply(
  live: KubeObject | undefined,
  applied: KubeObject,
  c: WriteContext,
  force: boolean,
): { object: KubeObject; owned: PathSet } {
  if (!isObject(applied) || !applied.apiVersion || !applied.kind) {
    throw badRequest('apply configuration must have apiVersion and kind');
  }
  const cfg = structuredClone(applied);
  delete cfg.metadata.managedFields;
  if (c.subresource === 'status') {
    for (const k of Object.keys(cfg))
      if (!['apiVersion', 'kind', 'metadata', 'status'].includes(k)) delete cfg[k];
  } else if (c.hasStatus) delete cfg.status;
  const part = c.subresource === 'status' ? 'status' : 'main';
  const owned = fieldSet(cfg, c.shape, part, c.hasStatus);
  if (!live) return { object: cfg, owned };

  const entries = (live.metadata.managedFields ?? []).map((e) => ({ e, set: fromFieldsV1(e.fieldsV1) }));
  const mineEntry = entries.find((x) => entryMatches(x.e, c, 'Apply'));
  const others = entries.filter((x) => x !== mineEntry);
  const conflicts: Array<{ manager: string; apiVersion: string; path: string }> = [];
  for (const p of owned) {
    const segs = JSON.parse(p) as string[];
    if (sameAt(live, cfg, segs)) continue;
    for (const x of others)
      if (x.set.has(p)) conflicts.push({ manager: x.e.manager, apiVersion: x.e.apiVersion, path: p });
  }
  if (conflicts.length > 0 && !force) throw applyConflict(conflicts);
  for (const cf of conflicts) for (const x of others) if (x.e.manager === cf.manager) x.set.delete(cf.path);

  const result = structuredClone(live);
  const othersOwn = (p: string) => others.some((x) => x.set.has(p));
  const removed = [...(mineEntry?.set ?? [])]
    .filter((p) => !owned.has(p) && !othersOwn(p))
    .sort((a, b) => JSON.parse(b).length - JSON.parse(a).length);
  for (const p of removed) removePath(result, JSON.parse(p) as string[]);
  const merged = mergeApplied(result, cfg, c.shape) as KubeObject;
  merged.metadata.managedFields = entries.map((x) => ({ ...x.e, fieldsV1: toFieldsV1(x.set) }));
  return { object: merged, owned };
}

function applyConflict(conflicts: Array<{ manager: string; apiVersion: string; path: string }>): ApiError {
  const n = conflicts.length;
  const lines = conflicts.map(
    (c) => `conflict with "${c.manager}" using ${c.apiVersion}: ${displayPath(c.path)}`,
  );
  const message = `Apply failed with ${n} conflict${n === 1 ? '' : 's'}: ${lines.join('\n')}`;
  return new ApiError(409, 'Conflict', message, {
    causes: conflicts.map((c) => ({
      reason: 'FieldManagerConflict',
      message: `conflict with "${c.manager}" using ${c.apiVersion}`,
      field: displayPath(c.path),
    })),
  });
}
