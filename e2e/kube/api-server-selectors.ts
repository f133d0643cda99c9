// Label selectors (equality- and set-based, as in `labelSelector=`) and field selectors
// (`fieldSelector=metadata.name=x,status.phase!=Running`) for list and watch.

import { badRequest } from './api-server-errors.js';
import type { KubeObject } from './api-server-store.js';

type Requirement =
  | { key: string; op: '=' | '!='; values: [string] }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | '!' };

export type Matcher = (labels: Record<string, string> | undefined) => boolean;

/** Splits on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth += 1;
    if (ch === ')') depth -= 1;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((p) => p.trim()).filter((p) => p !== '');
}

const KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function parseRequirement(part: string): Requirement {
  let m = /^!\s*(\S+)$/.exec(part);
  if (m) return { key: checkKey(m[1]!), op: '!' };
  m = /^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part);
  if (m) {
    const values = m[3]!
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
    return { key: checkKey(m[1]!), op: m[2] as 'in' | 'notin', values };
  }
  m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
  if (m) return { key: checkKey(m[1]!), op: m[2] === '!=' ? '!=' : '=', values: [m[3]!] };
  m = /^(\S+)$/.exec(part);
  if (m) return { key: checkKey(m[1]!), op: 'exists' };
  throw badRequest(`unable to parse requirement: ${part}`);
}

function checkKey(key: string): string {
  if (!KEY.test(key)) throw badRequest(`unable to parse requirement: invalid label key "${key}"`);
  return key;
}

export function parseLabelSelector(selector: string | undefined): Matcher {
  if (!selector) return () => true;
  const reqs = splitTop(selector).map(parseRequirement);
  return (labels) =>
    reqs.every((r) => {
      const v = labels?.[r.key];
      switch (r.op) {
        case '=':
          return v === r.values[0];
        case '!=':
          return v !== r.values[0];
        case 'in':
          return v !== undefined && r.values.includes(v);
        case 'notin':
          return v === undefined || !r.values.includes(v);
        case 'exists':
          return v !== undefined;
        case '!':
          return v === undefined;
      }
      return false;
    });
}

/** A meta/v1 LabelSelector object (matchLabels, matchExpressions) as a matcher. */
export function labelSelectorMatcher(sel: {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}): Matcher {
  return (labels) =>
    Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels?.[k] === v) &&
    (sel.matchExpressions ?? []).every((e) => {
      const v = labels?.[e.key];
      switch (e.operator) {
        case 'In':
          return v !== undefined && (e.values ?? []).includes(v);
        case 'NotIn':
          return v === undefined || !(e.values ?? []).includes(v);
        case 'Exists':
          return v !== undefined;
        case 'DoesNotExist':
          return v === undefined;
      }
      return false;
    });
}

/** The string form of a LabelSelector (what a scale subresource reports as status.selector). */
export function labelSelectorString(sel: {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}): string {
  const parts = Object.entries(sel.matchLabels ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    const vals = [...(e.values ?? [])].sort().join(',');
    if (e.operator === 'In') parts.push(`${e.key} in (${vals})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${vals})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

function fieldValue(obj: KubeObject, path: string): string {
  let cur: unknown = obj;
  for (const p of path.split('.')) {
    cur = typeof cur === 'object' && cur !== null ? (cur as Record<string, unknown>)[p] : undefined;
  }
  if (cur === undefined || cur === null) return '';
  return typeof cur === 'string' ? cur : JSON.stringify(cur);
}

/** `metadata.name=x,status.phase!=Running`: equality on dotted paths (the real server allows a
 * fixed set of fields per type; any dotted path is accepted here). */
export function parseFieldSelector(selector: string | undefined): (obj: KubeObject) => boolean {
  if (!selector) return () => true;
  const reqs = splitTop(selector).map((part) => {
    const m = /^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${part}'`);
    return { path: m[1]!, neg: m[2] === '!=', value: m[3]! };
  });
  return (obj) => reqs.every((r) => (fieldValue(obj, r.path) === r.value) !== r.neg);
}
