// The CustomResourceDefinitions of ConfluxCluster and ConfluxBackup, generated from the zod
// schemas in cluster.ts (the single source of fields, bounds and defaults). This file adds what
// zod cannot say: the structural-schema clean-up Kubernetes requires, the CEL rules
// (x-kubernetes-validations, all in CEL_RULES below), subresources, printer columns and names.
// `npm run generate` writes the result to crds/ (see manifests.ts).

import { z } from 'zod';
import { AUTH_CEL_RULES, AUTH_LIST_MAPS } from './auth.js';
import { confluxBackupSchema, confluxClusterSchema, GROUP, RESERVED_ENV, VERSION } from './cluster.js';

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps this generator emits. */
export interface JSONSchemaProps {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, JSONSchemaProps>;
  additionalProperties?: JSONSchemaProps | boolean;
  items?: JSONSchemaProps;
  required?: string[];
  default?: unknown;
  enum?: unknown[];
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  multipleOf?: number;
  nullable?: boolean;
  example?: unknown;
  'x-kubernetes-validations'?: ValidationRule[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'granular' | 'atomic';
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
}

export interface ValidationRule {
  rule: string;
  message: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  /** Relative to the node the rule is attached to (`.restore`), reported as the failing field. */
  fieldPath?: string;
}

export type ConfluxKind = 'ConfluxCluster' | 'ConfluxBackup';

export interface CelRule extends ValidationRule {
  kind: ConfluxKind;
  /**
   * Dot path of the schema node the rule is attached to (`spec.tls`); `self` is that node's value.
   * A rule that mentions `oldSelf` is a transition rule: the API server evaluates it only on
   * updates, and only when the node exists in both the old and the new object.
   */
  path: string;
}

/** What the operator's schema accepts as an object name (a DNS label: it names pods and Services). */
const DNS_LABEL_CEL = "'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'";

const RESTORE_IMMUTABLE_MESSAGE =
  'spec.restore can only be set when the cluster is created and never changed';

/**
 * Every CEL rule of both CRDs, with its message. Rules that mirror a zod bound (replicas >= 1 is
 * `minimum: 1`) are not repeated here; these are the cross-field and transition rules.
 */
export const CEL_RULES: readonly CelRule[] = [
  ...(['ConfluxCluster', 'ConfluxBackup'] as const).map(
    (kind): CelRule => ({
      kind,
      path: '',
      rule: `self.metadata.name.size() <= 63 && self.metadata.name.matches(${DNS_LABEL_CEL})`,
      message:
        'metadata.name must be a DNS label (lowercase letters, digits and dashes, at most 63): it names pods and Services',
      reason: 'FieldValueInvalid',
    }),
  ),
  {
    kind: 'ConfluxCluster',
    path: 'spec.env',
    rule: `self.all(e, !(e.name in [${RESERVED_ENV.map((n) => `'${n}'`).join(', ')}]))`,
    message: `spec.env may not set what the operator sets: ${RESERVED_ENV.join(', ')}`,
    reason: 'FieldValueForbidden',
  },
  {
    kind: 'ConfluxCluster',
    path: 'spec.backup',
    // The shape croner accepts (5 to 7 fields, or a nickname); a value out of range in a field of
    // the right shape reaches the operator, which reports it as InvalidSpec.
    rule: String.raw`self.schedule.matches(r'^\s*(@(yearly|annually|monthly|weekly|daily|hourly)|\S+(\s+\S+){4,6})\s*$')`,
    message: 'backup.schedule must be a cron expression of 5 to 7 fields (for example "0 */6 * * *")',
    reason: 'FieldValueInvalid',
    fieldPath: '.schedule',
  },
  {
    kind: 'ConfluxCluster',
    path: 'spec',
    rule: 'has(self.restore) == has(oldSelf.restore) && (!has(self.restore) || self.restore == oldSelf.restore)',
    message: RESTORE_IMMUTABLE_MESSAGE,
    reason: 'FieldValueForbidden',
    fieldPath: '.restore',
  },
  {
    kind: 'ConfluxCluster',
    path: 'spec.tls',
    rule: '!has(self.operatorManaged) || self.operatorManaged || (has(self.nodeSecretName) && has(self.adminSecretName))',
    message: 'tls.nodeSecretName and tls.adminSecretName are required when tls.operatorManaged is false',
    reason: 'FieldValueRequired',
  },
  {
    kind: 'ConfluxCluster',
    path: 'spec.tls',
    rule: '(has(self.operatorManaged) && !self.operatorManaged) || (!has(self.nodeSecretName) && !has(self.adminSecretName))',
    message: 'tls.nodeSecretName and tls.adminSecretName are used only when tls.operatorManaged is false',
    reason: 'FieldValueForbidden',
  },
  {
    kind: 'ConfluxCluster',
    path: 'spec.backup.retention',
    rule: 'has(self.keepLast) || has(self.maxAgeDays)',
    message: 'backup.retention needs keepLast, maxAgeDays or both',
    reason: 'FieldValueRequired',
  },
  ...(['ConfluxCluster', 'ConfluxBackup'] as const).map(
    (kind): CelRule => ({
      kind,
      path: kind === 'ConfluxCluster' ? 'spec.backup.destination' : 'spec.destination',
      rule:
        "self.uri.startsWith('s3://') || (!has(self.endpoint) && !has(self.region) && " +
        '!has(self.credentialsSecret) && (!has(self.pathStyle) || !self.pathStyle))',
      message: 'endpoint, region, pathStyle and credentialsSecret apply only to s3:// destinations',
      reason: 'FieldValueForbidden',
    }),
  ),
  ...AUTH_CEL_RULES,
  {
    kind: 'ConfluxBackup',
    path: 'spec',
    rule: 'self == oldSelf',
    message: 'the spec of a ConfluxBackup is immutable; create a new ConfluxBackup instead',
    reason: 'FieldValueForbidden',
  },
];

/** zod's "no bound" for integers: dropped, Kubernetes integers are int64 anyway. */
const SAFE_INT_BOUND = Number.MAX_SAFE_INTEGER;

/** The keywords a structural schema node may carry (everything else is dropped or refused). */
const ALLOWED_KEYWORDS = new Set<string>([
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
]);
/** Keywords zod may emit that carry no meaning for Kubernetes. */
const DROPPED_KEYWORDS = new Set<string>(['$schema', 'title', 'id', '$id']);

export class SchemaConversionError extends Error {
  override readonly name = 'SchemaConversionError';
}

/**
 * Converts zod's OpenAPI 3.0 output into a structural schema node: every node typed, no
 * `additionalProperties: false` (Kubernetes prunes unknown fields instead), no references, no
 * `±Number.MAX_SAFE_INTEGER` bounds. Anything a structural schema cannot express (unions,
 * references, `not`) is refused with the path, so a change in cluster.ts that Kubernetes could not
 * take fails `npm run generate` and the tests instead of producing a CRD the API server rejects.
 */
export function toStructural(node: unknown, path = '$'): JSONSchemaProps {
  if (typeof node !== 'object' || node === null || Array.isArray(node)) {
    throw new SchemaConversionError(`${path}: expected a schema object`);
  }
  const src = node as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(src)) {
    if (DROPPED_KEYWORDS.has(key)) continue;
    if (key === 'const') {
      out.enum = [value];
      continue;
    }
    if (key === 'examples') {
      if (Array.isArray(value) && value.length > 0) out.example = value[0];
      continue;
    }
    if (!ALLOWED_KEYWORDS.has(key)) {
      throw new SchemaConversionError(
        `${path}: "${key}" cannot be expressed in a structural Kubernetes schema (unions, references and ` +
          'intersections are not supported; use a discriminating field and a CEL rule instead)',
      );
    }
    out[key] = value;
  }

  if (src.properties !== undefined) {
    const props: Record<string, JSONSchemaProps> = {};
    for (const [name, child] of Object.entries(src.properties as Record<string, unknown>)) {
      props[name] = toStructural(child, `${path}.${name}`);
    }
    out.properties = props;
  }
  if (src.additionalProperties !== undefined) {
    const ap = src.additionalProperties;
    const anything = ap === true || (typeof ap === 'object' && ap !== null && Object.keys(ap).length === 0);
    delete out.additionalProperties;
    if (ap === false) {
      // strictObject: Kubernetes prunes (or, with strict field validation, reports) unknown fields.
    } else if (anything) {
      // looseObject / record of unknown: keep whatever is there.
      out['x-kubernetes-preserve-unknown-fields'] = true;
    } else if (src.properties !== undefined) {
      throw new SchemaConversionError(`${path}: known properties plus a typed catchall are not structural`);
    } else {
      out.additionalProperties = toStructural(ap, `${path}[*]`);
    }
  }
  if (src.items !== undefined) {
    if (Array.isArray(src.items)) throw new SchemaConversionError(`${path}: tuple items are not structural`);
    out.items = toStructural(src.items, `${path}[]`);
  }
  if (out.type === 'integer') {
    if (out.maximum === SAFE_INT_BOUND) delete out.maximum;
    if (out.minimum === -SAFE_INT_BOUND) delete out.minimum;
  }
  if (out.type === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) {
    throw new SchemaConversionError(`${path}: every node of a structural schema needs a type`);
  }
  if (typeof out.type !== 'undefined' && typeof out.type !== 'string') {
    throw new SchemaConversionError(`${path}: a node has exactly one type (got ${JSON.stringify(out.type)})`);
  }
  return ordered(out) as JSONSchemaProps;
}

/** Keys first in every node, in this order, so the generated YAML reads type-first. */
const KEY_ORDER = ['type', 'description', 'format', 'nullable', 'default', 'enum'];

function ordered(node: Record<string, unknown>): Record<string, unknown> {
  const rank = (k: string) => {
    const i = KEY_ORDER.indexOf(k);
    return i === -1 ? KEY_ORDER.length : i;
  };
  return Object.fromEntries(Object.entries(node).sort(([a], [b]) => rank(a) - rank(b)));
}

/** The structural OpenAPI schema of a zod schema (its input side, so defaults are optional). */
export function structuralSchema(schema: z.ZodType): JSONSchemaProps {
  return toStructural(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input' }));
}

/** The node at a dot path (`spec.tls`) of a schema, through `properties` (and a list's items). */
export function schemaAt(root: JSONSchemaProps, path: string): JSONSchemaProps {
  let node = root;
  if (path === '') return node;
  for (const part of path.split('.')) {
    const next = (node.type === 'array' ? node.items : node)?.properties?.[part];
    if (!next) throw new Error(`schema has no node at ${path} (missing ${part})`);
    node = next;
  }
  return node;
}

const RESOURCE_SCHEMAS: Record<ConfluxKind, z.ZodType> = {
  ConfluxCluster: confluxClusterSchema,
  ConfluxBackup: confluxBackupSchema,
};

const DESCRIPTIONS: Record<ConfluxKind, string> = {
  ConfluxCluster: 'A Conflux replicated configuration store: a Raft cluster of conflux-node members.',
  ConfluxBackup: 'An on-demand backup of a ConfluxCluster (the cluster leader writes a snapshot).',
};

/** The openAPIV3Schema of a kind: the resource's zod schema plus the standard root and CEL rules. */
export function openAPIV3Schema(kind: ConfluxKind): JSONSchemaProps {
  const converted = structuralSchema(RESOURCE_SCHEMAS[kind]);
  const props = converted.properties ?? {};
  const { spec, status } = props;
  if (!spec) throw new Error(`${kind}: the zod schema has no spec`);
  const root: JSONSchemaProps = {
    type: 'object',
    description: DESCRIPTIONS[kind],
    properties: {
      apiVersion: {
        type: 'string',
        description:
          'APIVersion defines the versioned schema of this representation of an object. Servers should ' +
          'convert recognized schemas to the latest internal value, and may reject unrecognized values.',
      },
      kind: {
        type: 'string',
        description: 'Kind is a string value representing the REST resource this object represents.',
      },
      metadata: { type: 'object' },
      spec,
      ...(status ? { status } : {}),
    },
  };
  // The resource's own required list, less apiVersion/kind/metadata (the API server owns those).
  const required = (converted.required ?? []).filter((k) => k === 'spec' || k === 'status');
  if (required.length > 0) root.required = required;

  if (status) {
    const conditions = status.properties?.conditions;
    if (conditions?.type === 'array') {
      // Like metav1.Condition: one entry per type, merged by server-side apply.
      conditions['x-kubernetes-list-type'] = 'map';
      conditions['x-kubernetes-list-map-keys'] = ['type'];
    }
  }

  // One entry per key, as a container's env: the API server refuses duplicates, and server-side
  // apply merges the entries one by one.
  const listMaps = kind === 'ConfluxCluster' ? [{ path: 'env', keys: ['name'] }, ...AUTH_LIST_MAPS] : [];
  for (const { path, keys } of listMaps) {
    const list = schemaAt(spec, path);
    if (list.type !== 'array') throw new Error(`spec.${path} is not a list`);
    list['x-kubernetes-list-type'] = 'map';
    list['x-kubernetes-list-map-keys'] = keys;
  }
  const roles = spec.properties?.auth?.properties?.users?.items?.properties?.roles;
  if (roles) roles['x-kubernetes-list-type'] = 'set';

  for (const { kind: ruleKind, path, ...rule } of CEL_RULES) {
    if (ruleKind !== kind) continue;
    const node = schemaAt(root, path);
    node['x-kubernetes-validations'] = [...(node['x-kubernetes-validations'] ?? []), rule];
  }
  return root;
}

export interface PrinterColumn {
  name: string;
  type: 'integer' | 'number' | 'string' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
  format?: string;
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    group: string;
    names: {
      kind: string;
      listKind: string;
      plural: string;
      singular: string;
      shortNames?: string[];
      categories?: string[];
    };
    scope: 'Namespaced' | 'Cluster';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: JSONSchemaProps };
      subresources?: {
        status?: Record<string, never>;
        scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath?: string };
      };
      additionalPrinterColumns?: PrinterColumn[];
    }[];
  };
}

export const CRD_LABELS: Readonly<Record<string, string>> = {
  'app.kubernetes.io/name': 'conflux',
  'app.kubernetes.io/part-of': 'conflux',
};

const AGE_COLUMN: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

function crd(
  kind: ConfluxKind,
  names: { plural: string; singular: string; shortNames: string[] },
  version: Pick<
    CustomResourceDefinition['spec']['versions'][number],
    'subresources' | 'additionalPrinterColumns'
  >,
): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${names.plural}.${GROUP}`, labels: { ...CRD_LABELS } },
    spec: {
      group: GROUP,
      names: {
        kind,
        listKind: `${kind}List`,
        plural: names.plural,
        singular: names.singular,
        shortNames: names.shortNames,
        categories: ['conflux'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: openAPIV3Schema(kind) },
          ...version,
        },
      ],
    },
  };
}

/** The ConfluxCluster CRD (confluxclusters.conflux.io). */
export function clusterCrd(): CustomResourceDefinition {
  return crd(
    'ConfluxCluster',
    { plural: 'confluxclusters', singular: 'confluxcluster', shortNames: ['cfx'] },
    {
      subresources: {
        status: {},
        scale: {
          specReplicasPath: '.spec.replicas',
          statusReplicasPath: '.status.replicas',
          labelSelectorPath: '.status.selector',
        },
      },
      additionalPrinterColumns: [
        {
          name: 'Replicas',
          type: 'integer',
          jsonPath: '.spec.replicas',
          description: 'Voting members wanted',
        },
        { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas', description: 'Members ready' },
        {
          name: 'Leader',
          type: 'string',
          jsonPath: '.status.leaderId',
          description: 'Node id of the leader',
        },
        { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
        { name: 'Last Backup', type: 'date', jsonPath: '.status.lastBackup.time' },
        AGE_COLUMN,
      ],
    },
  );
}

/** The ConfluxBackup CRD (confluxbackups.conflux.io). */
export function backupCrd(): CustomResourceDefinition {
  return crd(
    'ConfluxBackup',
    { plural: 'confluxbackups', singular: 'confluxbackup', shortNames: ['cfxbackup'] },
    {
      subresources: { status: {} },
      additionalPrinterColumns: [
        { name: 'Cluster', type: 'string', jsonPath: '.spec.clusterName' },
        { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
        { name: 'URI', type: 'string', jsonPath: '.status.uri', priority: 1 },
        AGE_COLUMN,
      ],
    },
  );
}
