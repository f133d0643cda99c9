// Validation on create and update: object metadata (names, labels, annotations, owner
// references, finalizers), builtin objects against the real Kubernetes schemas (kubernetes-models)
// plus the semantic and immutability rules of the kinds the operator uses, and custom resources
// against their CRD's schema and CEL rules.

import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { ControllerRevision, StatefulSet } from 'kubernetes-models/apps/v1';
import { Lease } from 'kubernetes-models/coordination.k8s.io/v1';
import { Event as EventsV1Event } from 'kubernetes-models/events.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  ConfigMap,
  Event as CoreV1Event,
  Namespace,
  Node,
  PersistentVolumeClaim,
  Pod,
  Secret,
  Service,
  ServiceAccount,
} from 'kubernetes-models/v1';
import { celCauses, schemaCauses } from './api-server-crd-schema.js';
import { badRequest, fieldCause, type StatusCause } from './api-server-errors.js';
import type { ResourceType } from './api-server-registry.js';
import type { KubeObject } from './api-server-store.js';
import {
  DNS1035,
  DNS1035_MSG,
  LABEL,
  LABEL_MSG,
  LABEL_VALUE,
  QUALIFIED_NAME,
  SUBDOMAIN,
  SUBDOMAIN_MSG,
  semanticCauses,
} from './api-server-validate-builtin.js';

type Obj = Record<string, unknown>;

type ModelClass = new (data: unknown) => { validate(): void };
const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace,
  'v1/Node': Node,
  'v1/Pod': Pod,
  'v1/Service': Service,
  'v1/Secret': Secret,
  'v1/ConfigMap': ConfigMap,
  'v1/ServiceAccount': ServiceAccount,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Event': CoreV1Event,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/ControllerRevision': ControllerRevision,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'coordination.k8s.io/v1/Lease': Lease,
  'events.k8s.io/v1/Event': EventsV1Event,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
} as unknown as Record<string, ModelClass>;

function nameCauses(kind: string, name: string): StatusCause[] {
  if (kind === 'Namespace') {
    return LABEL.test(name) && name.length <= 63
      ? []
      : [fieldCause('metadata.name', 'Invalid', LABEL_MSG, name)];
  }
  if (kind === 'Service') {
    return DNS1035.test(name) && name.length <= 63
      ? []
      : [fieldCause('metadata.name', 'Invalid', DNS1035_MSG, name)];
  }
  return SUBDOMAIN.test(name) && name.length <= 253
    ? []
    : [fieldCause('metadata.name', 'Invalid', SUBDOMAIN_MSG, name)];
}

function qualifiedKeyCauses(field: string, key: string): StatusCause[] {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const ok =
    QUALIFIED_NAME.test(name) &&
    name.length <= 63 &&
    (prefix === undefined || (SUBDOMAIN.test(prefix) && prefix.length <= 253));
  return ok
    ? []
    : [
        fieldCause(
          field,
          'Invalid',
          "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
          key,
        ),
      ];
}

export function metadataCauses(rt: ResourceType, o: KubeObject, old: KubeObject | undefined): StatusCause[] {
  const m = o.metadata;
  const out: StatusCause[] = [];
  if (!m.name) out.push(fieldCause('metadata.name', 'Required', 'name or generateName is required'));
  else out.push(...nameCauses(rt.kind, m.name));
  for (const [k, v] of Object.entries(m.labels ?? {})) {
    out.push(...qualifiedKeyCauses('metadata.labels', k));
    if (typeof v !== 'string' || !LABEL_VALUE.test(v) || v.length > 63) {
      out.push(
        fieldCause(
          'metadata.labels',
          'Invalid',
          "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
          v,
        ),
      );
    }
  }
  for (const [k, v] of Object.entries(m.annotations ?? {})) {
    out.push(...qualifiedKeyCauses('metadata.annotations', k));
    if (typeof v !== 'string') out.push(fieldCause(`metadata.annotations`, 'Invalid', 'must be a string', v));
  }
  const size = JSON.stringify(m.annotations ?? {}).length;
  if (size > 256 * 1024)
    out.push(fieldCause('metadata.annotations', 'TooLong', 'must have at most 262144 bytes'));
  const refs = m.ownerReferences ?? [];
  refs.forEach((r, i) => {
    for (const f of ['apiVersion', 'kind', 'name', 'uid'] as const) {
      if (!r[f])
        out.push(fieldCause(`metadata.ownerReferences[${i}].${f}`, 'Invalid', `${f} must not be empty`, ''));
    }
  });
  if (refs.filter((r) => r.controller).length > 1) {
    out.push(
      fieldCause(
        'metadata.ownerReferences',
        'Invalid',
        'Only one reference can have Controller set to true',
        refs,
      ),
    );
  }
  for (const f of m.finalizers ?? []) out.push(...qualifiedKeyCauses('metadata.finalizers', f));
  if (old?.metadata.deletionTimestamp) {
    const added = (m.finalizers ?? []).filter((f) => !(old.metadata.finalizers ?? []).includes(f));
    if (added.length > 0) {
      out.push(
        fieldCause(
          'metadata.finalizers',
          'Forbidden',
          'no new finalizers can be added if the object is being deleted',
          added,
        ),
      );
    }
  }
  return out;
}

/**
 * kubernetes-models' verdict on a builtin object: type errors are decoding errors (400, as the
 * real server cannot decode them into its Go types); the rest are 422 causes.
 */
function modelCauses(rt: ResourceType, o: KubeObject): StatusCause[] {
  const Model = MODELS[`${rt.group ? `${rt.group}/` : ''}${rt.version}/${rt.kind}`];
  if (!Model) return [];
  try {
    new Model(o).validate();
    return [];
  } catch (err) {
    const errors = (
      err as { errors?: Array<{ instancePath: string; keyword: string; message?: string; params?: Obj }> }
    ).errors;
    if (!errors) throw err;
    const byPath = new Map<string, { keyword: string; message: string; params?: Obj }>();
    for (const e of errors) {
      const field = e.instancePath
        .replace(/^\//, '')
        .split('/')
        .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
        .join('')
        .replace(/^\./, '')
        .replace(/\.\[/g, '[');
      const key = e.keyword === 'required' ? `${field}.${String(e.params?.missingProperty)}` : field;
      if (!byPath.has(key))
        byPath.set(key, {
          keyword: e.keyword,
          message: e.message ?? e.keyword,
          ...(e.params ? { params: e.params } : {}),
        });
    }
    const decode = [...byPath].filter(([, e]) => ['type', 'format', 'oneOf', 'anyOf'].includes(e.keyword));
    if (decode.length > 0) {
      const [field, e] = decode[0]!;
      throw badRequest(
        `${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: ${field}: ${e.message}`,
      );
    }
    return [...byPath].map(([field, e]) =>
      e.keyword === 'required'
        ? fieldCause(field.replace(/^\./, ''), 'Required', '')
        : fieldCause(field, e.keyword === 'enum' ? 'NotSupported' : 'Invalid', e.message),
    );
  }
}

/** All 422 causes of a builtin object (throws 400 for what cannot be decoded). */
export function builtinCauses(rt: ResourceType, o: KubeObject, old: KubeObject | undefined): StatusCause[] {
  return [...metadataCauses(rt, o, old), ...modelCauses(rt, o), ...semanticCauses(rt, o, old)];
}

/** All 422 causes of a custom resource: schema, then (when the schema passes) CEL. */
export function customCauses(rt: ResourceType, o: KubeObject, old: KubeObject | undefined): StatusCause[] {
  const schema = rt.crd!.schema;
  const causes = [...metadataCauses(rt, o, old), ...schemaCauses(schema, o, '')];
  if (causes.length > 0) return causes;
  return celCauses(schema, o, old);
}
