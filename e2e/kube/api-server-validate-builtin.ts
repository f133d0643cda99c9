// The semantic and immutability rules of the builtin kinds the operator and the pod runner use
// (the parts of the real server's validation that a schema cannot express), and the checks of
// a CustomResourceDefinition (structural schema, CEL rules that compile, its name).

import { isDeepStrictEqual } from 'node:util';
import type { JSONSchemaProps } from '../../operator/api/crd.js';
import { structuralProblems } from '../../operator/api/test-k8s-schema.js';
import { ruleProblems } from './api-server-crd-schema.js';
import { fieldCause, type StatusCause } from './api-server-errors.js';
import { crdTypes, type ResourceType } from './api-server-registry.js';
import { labelSelectorMatcher } from './api-server-selectors.js';
import type { KubeObject } from './api-server-store.js';

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Equal as JSON values: key order does not matter (clients serialise objects in any order). */
const same = (a: unknown, b: unknown) =>
  isDeepStrictEqual(JSON.parse(JSON.stringify(a ?? null)), JSON.parse(JSON.stringify(b ?? null)));

export const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
export const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
export const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export const SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
export const LABEL_MSG =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
export const DNS1035_MSG =
  "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

const STS_MUTABLE = [
  'replicas',
  'ordinals',
  'template',
  'updateStrategy',
  'persistentVolumeClaimRetentionPolicy',
  'minReadySeconds',
];

export function semanticCauses(rt: ResourceType, o: KubeObject, old: KubeObject | undefined): StatusCause[] {
  const out: StatusCause[] = [];
  const spec = (isObject(o.spec) ? o.spec : {}) as Obj;
  const oldSpec = (isObject(old?.spec) ? old.spec : {}) as Obj;
  const podSpecCauses = (ps: unknown, at: string) => {
    const containers = isObject(ps) && Array.isArray(ps.containers) ? (ps.containers as Obj[]) : [];
    if (containers.length === 0) out.push(fieldCause(`${at}.containers`, 'Required', ''));
    const names = new Set<string>();
    containers.forEach((c, i) => {
      const n = String(c.name ?? '');
      if (!LABEL.test(n)) out.push(fieldCause(`${at}.containers[${i}].name`, 'Invalid', LABEL_MSG, n));
      if (names.has(n)) out.push(fieldCause(`${at}.containers[${i}].name`, 'Duplicate', '', n));
      names.add(n);
      if (!c.image && rt.kind === 'Pod') out.push(fieldCause(`${at}.containers[${i}].image`, 'Required', ''));
    });
  };
  switch (rt.kind) {
    case 'StatefulSet': {
      const sel = isObject(spec.selector) ? spec.selector : {};
      const template = isObject(spec.template) ? spec.template : {};
      const labels = (isObject(template.metadata) ? template.metadata.labels : undefined) as
        | Record<string, string>
        | undefined;
      if (
        Object.keys(sel).length === 0 ||
        (!isObject(sel.matchLabels) && !Array.isArray(sel.matchExpressions))
      ) {
        out.push(fieldCause('spec.selector', 'Invalid', 'empty selector is invalid for statefulset', sel));
      } else if (!labelSelectorMatcher(sel)(labels)) {
        out.push(
          fieldCause(
            'spec.template.metadata.labels',
            'Invalid',
            '`selector` does not match template `labels`',
            labels ?? {},
          ),
        );
      }
      if (typeof spec.replicas === 'number' && spec.replicas < 0) {
        out.push(fieldCause('spec.replicas', 'Invalid', 'must be greater than or equal to 0', spec.replicas));
      }
      const ps = isObject(template.spec) ? template.spec : {};
      podSpecCauses(ps, 'spec.template.spec');
      if (ps.restartPolicy !== undefined && ps.restartPolicy !== 'Always') {
        out.push(
          fieldCause(
            'spec.template.spec.restartPolicy',
            'NotSupported',
            'supported values: "Always"',
            ps.restartPolicy,
          ),
        );
      }
      if (old) {
        const strip = (s: Obj) =>
          Object.fromEntries(Object.entries(s).filter(([k]) => !STS_MUTABLE.includes(k)));
        if (!same(strip(spec), strip(oldSpec))) {
          out.push(
            fieldCause(
              'spec',
              'Forbidden',
              "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ),
          );
        }
      }
      break;
    }
    case 'Pod':
      podSpecCauses(spec, 'spec');
      if (old) {
        const mask = (s: Obj) => {
          const c = structuredClone(s);
          for (const k of ['containers', 'initContainers'] as const) {
            if (Array.isArray(c[k])) for (const x of c[k] as Obj[]) delete x.image;
          }
          delete c.activeDeadlineSeconds;
          delete c.tolerations;
          delete c.terminationGracePeriodSeconds;
          return c;
        };
        if (!same(mask(spec), mask(oldSpec))) {
          out.push(
            fieldCause(
              'spec',
              'Forbidden',
              'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
            ),
          );
        }
      }
      break;
    case 'Service': {
      const headless = spec.clusterIP === 'None';
      if (
        !headless &&
        spec.type !== 'ExternalName' &&
        (!Array.isArray(spec.ports) || spec.ports.length === 0)
      ) {
        out.push(fieldCause('spec.ports', 'Required', ''));
      }
      if (old && oldSpec.clusterIP !== undefined && spec.clusterIP !== oldSpec.clusterIP) {
        out.push(fieldCause('spec.clusterIPs[0]', 'Invalid', 'may not change once set', spec.clusterIP));
      }
      break;
    }
    case 'Secret':
    case 'ConfigMap': {
      if (rt.kind === 'Secret' && old && o.type !== old.type)
        out.push(fieldCause('type', 'Invalid', 'field is immutable', o.type));
      for (const k of [...Object.keys((o.data as Obj) ?? {}), ...Object.keys((o.binaryData as Obj) ?? {})]) {
        if (!/^[-._a-zA-Z0-9]+$/.test(k)) {
          out.push(
            fieldCause(
              `data[${k}]`,
              'Invalid',
              "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
              k,
            ),
          );
        }
      }
      if (
        old?.immutable === true &&
        (!same(o.data, old.data) || !same(o.binaryData, old.binaryData) || o.immutable !== true)
      ) {
        out.push(fieldCause('data', 'Forbidden', `field is immutable when \`immutable\` is set`));
      }
      break;
    }
    case 'PersistentVolumeClaim':
      if (!Array.isArray(spec.accessModes) || spec.accessModes.length === 0) {
        out.push(fieldCause('spec.accessModes', 'Required', 'at least 1 access mode is required'));
      }
      if (
        !spec.dataSource &&
        !(isObject(spec.resources) && isObject(spec.resources.requests) && spec.resources.requests.storage)
      ) {
        out.push(fieldCause('spec.resources[storage]', 'Required', ''));
      }
      if (old) {
        const mask = (s: Obj) => {
          const c = structuredClone(s);
          if (isObject(c.resources)) delete c.resources.requests;
          delete c.volumeName;
          delete c.volumeAttributesClassName;
          return c;
        };
        if (!same(mask(spec), mask(oldSpec))) {
          out.push(
            fieldCause(
              'spec',
              'Forbidden',
              'spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims',
            ),
          );
        }
      }
      break;
    case 'PodDisruptionBudget':
      if (spec.minAvailable !== undefined && spec.maxUnavailable !== undefined) {
        out.push(fieldCause('spec', 'Invalid', 'minAvailable and maxUnavailable cannot be both set', spec));
      }
      break;
    case 'Lease':
      if (typeof spec.leaseDurationSeconds === 'number' && spec.leaseDurationSeconds <= 0) {
        out.push(
          fieldCause(
            'spec.leaseDurationSeconds',
            'Invalid',
            'must be greater than 0',
            spec.leaseDurationSeconds,
          ),
        );
      }
      break;
    case 'Event':
      if (rt.group === 'events.k8s.io') {
        for (const f of [
          'eventTime',
          'reportingController',
          'reportingInstance',
          'action',
          'reason',
        ] as const) {
          if (!o[f]) out.push(fieldCause(f, 'Required', ''));
        }
      }
      break;
    case 'CustomResourceDefinition':
      out.push(...crdCauses(o));
      break;
  }
  return out;
}

function crdCauses(o: KubeObject): StatusCause[] {
  const out: StatusCause[] = [];
  const spec = o.spec as {
    group?: string;
    names?: { plural?: string };
    versions?: Array<{ schema?: { openAPIV3Schema?: JSONSchemaProps } }>;
  };
  const expected = `${spec.names?.plural}.${spec.group}`;
  if (o.metadata.name !== expected) {
    out.push(
      fieldCause('metadata.name', 'Invalid', `must be spec.names.plural+"."+spec.group`, o.metadata.name),
    );
  }
  (spec.versions ?? []).forEach((v, i) => {
    const schema = v.schema?.openAPIV3Schema;
    if (!schema) return;
    const at = `spec.versions[${i}].schema.openAPIV3Schema`;
    for (const p of structuralProblems(schema)) out.push(fieldCause(at, 'Invalid', p));
    for (const p of ruleProblems(schema))
      out.push(fieldCause(`${at}.x-kubernetes-validations`, 'Invalid', `compilation failed: ${p}`));
  });
  try {
    crdTypes(o);
  } catch (err) {
    out.push(fieldCause('spec', 'Invalid', (err as Error).message));
  }
  return out;
}
