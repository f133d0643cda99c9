// The shape of an object: which fields exist (unknown ones are pruned, or refused under
// fieldValidation=Strict) and how lists and maps merge (the list types and map keys that
// strategic merge patch and server-side apply use). Builtin shapes come from the field tables of
// @kubernetes/client-node's generated models; custom resource shapes from the CRD's structural
// schema.

import * as k8s from '@kubernetes/client-node';
import type { JSONSchemaProps } from '../../operator/api/crd.js';

export interface Shape {
  kind: 'struct' | 'map' | 'list' | 'scalar' | 'any';
  /** A struct or map that is replaced as a whole (structType/mapType atomic). */
  atomic?: boolean;
  listType?: 'atomic' | 'set' | 'map';
  keys?: string[];
  /** Default values of list-map keys (`protocol: TCP`), so an item without one still matches. */
  keyDefaults?: Record<string, unknown>;
  /** The shape of a field (struct) or of every value (map); undefined: not a known field. */
  field(name: string): Shape | undefined;
  /** The shape of list items. */
  item(): Shape;
  /** A MicroTime (RFC 3339 with exactly six fractional digits). */
  micro?: boolean;
}

const ANY: Shape = { kind: 'any', field: () => ANY, item: () => ANY };
const SCALAR: Shape = { kind: 'scalar', field: () => undefined, item: () => ANY };
const MICRO: Shape = { ...SCALAR, micro: true };

// --- builtins ------------------------------------------------------------------------------------

type Attr = { baseName: string; type: string };
type Model = { getAttributeTypeMap(): Attr[] };
const models = k8s as unknown as Record<string, Model | undefined>;

/** Merge keys of builtin list items, by the item's model (x-kubernetes-list-map-keys upstream). */
const MAP_KEYS: Record<string, { keys: string[]; defaults?: Record<string, unknown> }> = {
  V1Container: { keys: ['name'] },
  V1EphemeralContainer: { keys: ['name'] },
  V1EnvVar: { keys: ['name'] },
  V1Volume: { keys: ['name'] },
  V1VolumeMount: { keys: ['mountPath'] },
  V1VolumeDevice: { keys: ['devicePath'] },
  V1ContainerPort: { keys: ['containerPort', 'protocol'], defaults: { protocol: 'TCP' } },
  V1ServicePort: { keys: ['port', 'protocol'], defaults: { protocol: 'TCP' } },
  V1OwnerReference: { keys: ['uid'] },
  V1LocalObjectReference: { keys: ['name'] },
  V1HostAlias: { keys: ['ip'] },
  V1PodResourceClaim: { keys: ['name'] },
  V1PodSchedulingGate: { keys: ['name'] },
  V1TopologySpreadConstraint: { keys: ['topologyKey', 'whenUnsatisfiable'] },
  V1PodCondition: { keys: ['type'] },
  V1Condition: { keys: ['type'] },
  V1StatefulSetCondition: { keys: ['type'] },
  V1NodeCondition: { keys: ['type'] },
  V1NamespaceCondition: { keys: ['type'] },
  V1PersistentVolumeClaimCondition: { keys: ['type'] },
  V1CustomResourceDefinitionCondition: { keys: ['type'] },
};
/** Structs replaced as a whole (structType=atomic upstream). */
const ATOMIC_STRUCTS = new Set([
  'V1LabelSelector',
  'V1ObjectFieldSelector',
  'V1ResourceFieldSelector',
  'V1SecretKeySelector',
  'V1ConfigMapKeySelector',
  'V1NodeSelectorTerm',
  'V1ObjectReference',
  'V1JSONSchemaProps',
]);
/** String lists that are sets (listType=set upstream): the rest are atomic. */
const SET_FIELDS = new Set(['V1ObjectMeta.finalizers', 'V1NamespaceSpec.finalizers']);
/** Maps replaced as a whole (mapType=atomic upstream). */
const ATOMIC_MAPS = new Set(['V1ServiceSpec.selector']);

const builtinCache = new Map<string, Shape>();

function typeShape(type: string, owner?: string): Shape {
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) {
    const itemType = arr[1]!;
    const mapKeys = MAP_KEYS[itemType];
    const item = () => typeShape(itemType);
    if (mapKeys) {
      return {
        kind: 'list',
        listType: 'map',
        keys: mapKeys.keys,
        ...(mapKeys.defaults ? { keyDefaults: mapKeys.defaults } : {}),
        field: () => undefined,
        item,
      };
    }
    return {
      kind: 'list',
      listType: owner && SET_FIELDS.has(owner) ? 'set' : 'atomic',
      field: () => undefined,
      item,
    };
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    const value = typeShape(map[1]!);
    return {
      kind: 'map',
      atomic: owner !== undefined && ATOMIC_MAPS.has(owner),
      field: () => value,
      item: () => ANY,
    };
  }
  if (type === 'any') return ANY;
  if (type === 'V1MicroTime') return MICRO;
  const model = models[type];
  if (model && typeof model.getAttributeTypeMap === 'function' && type !== 'V1MicroTime')
    return builtinShape(type);
  return SCALAR;
}

/** The shape of a client-node model (`V1StatefulSet`). */
export function builtinShape(modelName: string): Shape {
  const cached = builtinCache.get(modelName);
  if (cached) return cached;
  const model = models[modelName];
  if (!model) throw new Error(`no client-node model ${modelName}`);
  const fields = new Map<string, Shape>();
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  const shape: Shape = {
    kind: 'struct',
    atomic: ATOMIC_STRUCTS.has(modelName),
    field(name) {
      const type = attrs.get(name);
      if (type === undefined) return undefined;
      let s = fields.get(name);
      if (!s) {
        s = typeShape(type, `${modelName}.${name}`);
        fields.set(name, s);
      }
      return s;
    },
    item: () => ANY,
  };
  builtinCache.set(modelName, shape);
  return shape;
}

// --- custom resources ----------------------------------------------------------------------------

/** The shape of a structural schema node. */
export function schemaShape(s: JSONSchemaProps | undefined): Shape {
  if (!s) return ANY;
  if (s.type === 'object' || s.properties || s.additionalProperties) {
    const isMap = s.properties === undefined && typeof s.additionalProperties === 'object';
    const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
    return {
      kind: isMap ? 'map' : 'struct',
      atomic: s['x-kubernetes-map-type'] === 'atomic',
      field(name) {
        if (s['x-kubernetes-embedded-resource'] && ['apiVersion', 'kind', 'metadata'].includes(name)) {
          return name === 'metadata' ? builtinShape('V1ObjectMeta') : SCALAR;
        }
        const p = s.properties?.[name];
        if (p) return schemaShape(p);
        if (typeof s.additionalProperties === 'object') return schemaShape(s.additionalProperties);
        if (s.additionalProperties === true || preserve) return ANY;
        return undefined;
      },
      item: () => ANY,
    };
  }
  if (s.type === 'array') {
    const lt = s['x-kubernetes-list-type'] ?? 'atomic';
    return {
      kind: 'list',
      listType: lt,
      ...(lt === 'map' ? { keys: s['x-kubernetes-list-map-keys'] ?? [] } : {}),
      field: () => undefined,
      item: () => schemaShape(s.items),
    };
  }
  if (s.type === undefined && s['x-kubernetes-preserve-unknown-fields']) return ANY;
  return SCALAR;
}

/** A custom resource: the CRD schema, with apiVersion, kind and metadata as the server treats them. */
export function customResourceShape(schema: JSONSchemaProps): Shape {
  const root = schemaShape(schema);
  const meta = builtinShape('V1ObjectMeta');
  return {
    ...root,
    kind: 'struct',
    field(name) {
      if (name === 'metadata') return meta;
      if (name === 'apiVersion' || name === 'kind') return SCALAR;
      return root.field(name);
    },
  };
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Removes the fields the shape does not know, in place; returns their paths (`spec.foo`,
 * `spec.containers[0].bar`) for the warning or the strict-validation error.
 */
export function pruneUnknown(shape: Shape, value: unknown, path = ''): string[] {
  const out: string[] = [];
  if (shape.kind === 'any' || shape.kind === 'scalar') return out;
  if (Array.isArray(value)) {
    if (shape.kind !== 'list') return out;
    value.forEach((v, i) => {
      out.push(...pruneUnknown(shape.item(), v, `${path}[${i}]`));
    });
    return out;
  }
  if (!isObject(value) || (shape.kind !== 'struct' && shape.kind !== 'map')) return out;
  for (const k of Object.keys(value)) {
    const child = shape.field(k);
    const p = path ? `${path}.${k}` : k;
    if (!child) {
      out.push(p);
      delete value[k];
    } else out.push(...pruneUnknown(child, value[k], p));
  }
  return out;
}

const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;

/** The first MicroTime field that Go's RFC3339Micro layout would not parse, as `path: value`. */
export function badMicroTime(shape: Shape, value: unknown, path = ''): string | undefined {
  if (shape.micro)
    return typeof value === 'string' && !MICRO_TIME.test(value) ? `${path}: ${value}` : undefined;
  if (Array.isArray(value) && shape.kind === 'list') {
    for (const [i, v] of value.entries()) {
      const bad = badMicroTime(shape.item(), v, `${path}[${i}]`);
      if (bad) return bad;
    }
  }
  if (isObject(value) && shape.kind === 'struct') {
    for (const [k, v] of Object.entries(value)) {
      const child = shape.field(k);
      const bad = child && badMicroTime(child, v, path ? `${path}.${k}` : k);
      if (bad) return bad;
    }
  }
  return undefined;
}
