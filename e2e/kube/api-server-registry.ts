// The resource types the API stand-in serves: the builtin ones the operator and the pod runner
// use, plus one per served version of every CustomResourceDefinition. Discovery documents
// (/api, /api/v1, /apis, /apis/<g>, /apis/<g>/<v>) are derived from here.

import type { JSONSchemaProps } from '../../operator/api/crd.js';
import { ApiError } from './api-server-errors.js';

export interface ScaleSpec {
  specReplicasPath: string;
  statusReplicasPath: string;
  labelSelectorPath?: string;
}

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
  format?: string;
}

export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  verbs: string[];
  status: boolean;
  scale?: ScaleSpec;
  /** metadata.generation is kept (set to 1 on create, bumped on spec changes). */
  generation: boolean;
  /** Where objects live: types that are views of one storage share it (core and events.k8s.io Events). */
  storage: string;
  /** Subresources beyond status and scale (pods/binding). */
  extraSubresources?: Array<{ name: string; kind: string; verbs: string[] }>;
  /** A builtin: the client-node model that knows its fields (for pruning unknown ones). */
  builtinModel?: string;
  /** A custom resource: its CRD's name and this version's schema and columns. */
  crd?: { name: string; schema: JSONSchemaProps; columns: PrinterColumn[] };
}

export const apiVersionOf = (t: { group: string; version: string }) =>
  t.group ? `${t.group}/${t.version}` : t.version;

const RW = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function builtin(
  group: string,
  version: string,
  plural: string,
  kind: string,
  o: {
    namespaced?: boolean;
    shortNames?: string[];
    categories?: string[];
    status?: boolean;
    scale?: ScaleSpec;
    generation?: boolean;
    model: string;
    storage?: string;
  },
): ResourceType {
  return {
    group,
    version,
    plural,
    singular: kind.toLowerCase(),
    kind,
    listKind: `${kind}List`,
    namespaced: o.namespaced ?? true,
    shortNames: o.shortNames ?? [],
    categories: o.categories ?? [],
    verbs: RW,
    status: o.status ?? false,
    ...(o.scale ? { scale: o.scale } : {}),
    generation: o.generation ?? false,
    storage: o.storage ?? `${group}/${plural}`,
    builtinModel: o.model,
  };
}

const APPS_SCALE: ScaleSpec = { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas' };

export const BUILTIN_TYPES: ResourceType[] = [
  builtin('', 'v1', 'namespaces', 'Namespace', {
    namespaced: false,
    shortNames: ['ns'],
    status: true,
    model: 'V1Namespace',
  }),
  builtin('', 'v1', 'nodes', 'Node', {
    namespaced: false,
    shortNames: ['no'],
    status: true,
    model: 'V1Node',
  }),
  {
    ...builtin('', 'v1', 'pods', 'Pod', {
      shortNames: ['po'],
      categories: ['all'],
      status: true,
      model: 'V1Pod',
    }),
    extraSubresources: [{ name: 'binding', kind: 'Binding', verbs: ['create'] }],
  },
  builtin('', 'v1', 'services', 'Service', {
    shortNames: ['svc'],
    categories: ['all'],
    status: true,
    model: 'V1Service',
  }),
  builtin('', 'v1', 'secrets', 'Secret', { model: 'V1Secret' }),
  builtin('', 'v1', 'configmaps', 'ConfigMap', { shortNames: ['cm'], model: 'V1ConfigMap' }),
  builtin('', 'v1', 'serviceaccounts', 'ServiceAccount', { shortNames: ['sa'], model: 'V1ServiceAccount' }),
  builtin('', 'v1', 'persistentvolumeclaims', 'PersistentVolumeClaim', {
    shortNames: ['pvc'],
    status: true,
    model: 'V1PersistentVolumeClaim',
  }),
  builtin('', 'v1', 'events', 'Event', { shortNames: ['ev'], model: 'CoreV1Event', storage: 'events' }),
  builtin('apps', 'v1', 'statefulsets', 'StatefulSet', {
    shortNames: ['sts'],
    categories: ['all'],
    status: true,
    scale: APPS_SCALE,
    generation: true,
    model: 'V1StatefulSet',
  }),
  builtin('apps', 'v1', 'controllerrevisions', 'ControllerRevision', { model: 'V1ControllerRevision' }),
  builtin('policy', 'v1', 'poddisruptionbudgets', 'PodDisruptionBudget', {
    shortNames: ['pdb'],
    status: true,
    generation: true,
    model: 'V1PodDisruptionBudget',
  }),
  builtin('coordination.k8s.io', 'v1', 'leases', 'Lease', { model: 'V1Lease' }),
  builtin('events.k8s.io', 'v1', 'events', 'Event', {
    shortNames: ['ev'],
    model: 'EventsV1Event',
    storage: 'events',
  }),
  builtin('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', {
    namespaced: false,
    shortNames: ['crd', 'crds'],
    status: true,
    generation: true,
    model: 'V1CustomResourceDefinition',
  }),
];

/** The CRD's served versions as resource types. */
export function crdTypes(crd: Record<string, unknown>): ResourceType[] {
  const spec = crd.spec as {
    group: string;
    scope: 'Namespaced' | 'Cluster';
    names: {
      plural: string;
      singular?: string;
      kind: string;
      listKind?: string;
      shortNames?: string[];
      categories?: string[];
    };
    versions: Array<{
      name: string;
      served: boolean;
      schema?: { openAPIV3Schema?: JSONSchemaProps };
      subresources?: { status?: object; scale?: ScaleSpec };
      additionalPrinterColumns?: PrinterColumn[];
    }>;
  };
  const name = (crd.metadata as { name: string }).name;
  return spec.versions
    .filter((v) => v.served)
    .map((v) => ({
      group: spec.group,
      version: v.name,
      plural: spec.names.plural,
      singular: spec.names.singular ?? spec.names.kind.toLowerCase(),
      kind: spec.names.kind,
      listKind: spec.names.listKind ?? `${spec.names.kind}List`,
      namespaced: spec.scope === 'Namespaced',
      shortNames: spec.names.shortNames ?? [],
      categories: spec.names.categories ?? [],
      verbs: RW,
      status: v.subresources?.status !== undefined,
      ...(v.subresources?.scale ? { scale: v.subresources.scale } : {}),
      generation: true,
      storage: `${spec.group}/${spec.names.plural}`,
      crd: {
        name,
        schema: v.schema?.openAPIV3Schema ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        columns: v.additionalPrinterColumns ?? [
          { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
        ],
      },
    }));
}

export class Registry {
  private readonly types = new Map<string, ResourceType>();

  constructor() {
    for (const t of BUILTIN_TYPES) this.add(t);
  }

  private key = (group: string, version: string, plural: string) => `${group}/${version}/${plural}`;

  add(t: ResourceType): void {
    this.types.set(this.key(t.group, t.version, t.plural), t);
  }

  removeCrd(crdName: string): void {
    for (const [k, t] of this.types) if (t.crd?.name === crdName) this.types.delete(k);
  }

  get(group: string, version: string, plural: string): ResourceType | undefined {
    return this.types.get(this.key(group, version, plural));
  }

  all(): ResourceType[] {
    return [...this.types.values()];
  }

  /** Every distinct storage, with one type that serves it. */
  storages(): Map<string, ResourceType> {
    const out = new Map<string, ResourceType>();
    for (const t of this.types.values()) if (!out.has(t.storage)) out.set(t.storage, t);
    return out;
  }

  // --- discovery -------------------------------------------------------------------------------

  coreVersions(serverAddress: string) {
    return {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
    };
  }

  private groupDoc(group: string) {
    const versions = [
      ...new Set(
        this.all()
          .filter((t) => t.group === group)
          .map((t) => t.version),
      ),
    ];
    const gv = (v: string) => ({ groupVersion: `${group}/${v}`, version: v });
    return { name: group, versions: versions.map(gv), preferredVersion: gv(versions[0]!) };
  }

  groupList() {
    const groups = [...new Set(this.all().map((t) => t.group))].filter((g) => g !== '');
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map((g) => this.groupDoc(g)) };
  }

  group(group: string) {
    if (!this.all().some((t) => t.group === group)) throw notFoundPath();
    return { kind: 'APIGroup', apiVersion: 'v1', ...this.groupDoc(group) };
  }

  resourceList(group: string, version: string) {
    const types = this.all().filter((t) => t.group === group && t.version === version);
    if (types.length === 0) throw notFoundPath();
    const resources: Record<string, unknown>[] = [];
    for (const t of types) {
      resources.push({
        name: t.plural,
        singularName: t.singular,
        namespaced: t.namespaced,
        kind: t.kind,
        verbs: t.verbs,
        ...(t.shortNames.length ? { shortNames: t.shortNames } : {}),
        ...(t.categories.length ? { categories: t.categories } : {}),
      });
      const sub = { singularName: '', namespaced: t.namespaced, verbs: ['get', 'patch', 'update'] };
      if (t.status) resources.push({ name: `${t.plural}/status`, kind: t.kind, ...sub });
      for (const x of t.extraSubresources ?? []) {
        resources.push({ name: `${t.plural}/${x.name}`, kind: x.kind, ...sub, verbs: x.verbs });
      }
      if (t.scale) {
        resources.push({
          name: `${t.plural}/scale`,
          group: 'autoscaling',
          version: 'v1',
          kind: 'Scale',
          ...sub,
        });
      }
    }
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: apiVersionOf({ group, version }),
      resources,
    };
  }
}

export const notFoundPath = () =>
  new ApiError(404, 'NotFound', 'the server could not find the requested resource');
