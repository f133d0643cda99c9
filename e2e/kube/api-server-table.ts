// Server-side printing: meta.k8s.io Table responses (what `kubectl get` asks for). Custom
// resources get the Name column plus their CRD's additionalPrinterColumns, evaluated as the real
// server does (simple JSONPath, date columns as a human-readable age, absent values as null);
// builtin kinds get the main columns of their real printers.

import type { PrinterColumn, ResourceType } from './api-server-registry.js';
import type { KubeObject } from './api-server-store.js';

export type IncludeObject = 'None' | 'Metadata' | 'Object';

interface Column {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

const NAME_COLUMN: Column = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description:
    'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names',
  priority: 0,
};

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${hours / 24}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 8)
    return days % 365 === 0 ? `${days / 365}y` : `${Math.floor(days / 365)}y${days % 365}d`;
  return `${Math.floor(days / 365)}y`;
}

/** A simple JSONPath (`.status.lastBackup.time`, `.spec.ports[0].port`); undefined when absent. */
export function jsonPathValue(obj: unknown, path: string): unknown {
  const parts =
    path
      .replace(/^\{?\.?/, '')
      .replace(/\}$/, '')
      .match(/[^.[\]]+|\[\d+\]/g) ?? [];
  let cur: unknown = obj;
  for (const p of parts) {
    if (cur === undefined || cur === null) return undefined;
    const idx = /^\[(\d+)\]$/.exec(p);
    if (idx) cur = Array.isArray(cur) ? cur[Number(idx[1])] : undefined;
    else cur = typeof cur === 'object' ? (cur as Record<string, unknown>)[p] : undefined;
  }
  return cur;
}

function age(timestamp: unknown, now: Date): string {
  if (typeof timestamp !== 'string') return '<unknown>';
  const t = Date.parse(timestamp);
  return Number.isNaN(t) ? '<invalid>' : humanDuration(now.getTime() - t);
}

function customCell(col: PrinterColumn, obj: KubeObject, now: Date): unknown {
  const v = jsonPathValue(obj, col.jsonPath);
  if (v === undefined || v === null) return null;
  switch (col.type) {
    case 'integer':
      return typeof v === 'number' ? Math.trunc(v) : null;
    case 'number':
      return typeof v === 'number' ? v : null;
    case 'boolean':
      return typeof v === 'boolean' ? v : null;
    case 'date':
      return typeof v === 'string' ? age(v, now) : null;
    default:
      return typeof v === 'string' ? v : JSON.stringify(v);
  }
}

type Printer = {
  columns: Array<Omit<Column, 'format' | 'description'> & { format?: string }>;
  cells: (o: KubeObject, now: Date) => unknown[];
};
// biome-ignore lint/suspicious/noExplicitAny: printers read loosely typed objects
type Any = Record<string, any>;

const AGE = { name: 'Age', type: 'string', priority: 0 };
const BUILTIN: Record<string, Printer> = {
  Pod: {
    columns: [
      { name: 'Ready', type: 'string', priority: 0 },
      { name: 'Status', type: 'string', priority: 0 },
      { name: 'Restarts', type: 'string', priority: 0 },
      AGE,
      { name: 'IP', type: 'string', priority: 1 },
      { name: 'Node', type: 'string', priority: 1 },
    ],
    cells: (o, now) => {
      const st = (o.status ?? {}) as Any;
      const cs = (st.containerStatuses ?? []) as Any[];
      const containers = ((o.spec as Any | undefined)?.containers ?? []) as Any[];
      const ready = cs.filter((c) => c.ready).length;
      const restarts = cs.reduce((n, c) => n + (c.restartCount ?? 0), 0);
      const phase = o.metadata.deletionTimestamp ? 'Terminating' : (st.phase ?? 'Unknown');
      return [
        `${ready}/${containers.length}`,
        phase,
        String(restarts),
        age(o.metadata.creationTimestamp, now),
        st.podIP ?? '<none>',
        (o.spec as Any | undefined)?.nodeName ?? '<none>',
      ];
    },
  },
  StatefulSet: {
    columns: [{ name: 'Ready', type: 'string', priority: 0 }, AGE],
    cells: (o, now) => {
      const st = (o.status ?? {}) as Any;
      return [
        `${st.readyReplicas ?? 0}/${(o.spec as Any | undefined)?.replicas ?? 0}`,
        age(o.metadata.creationTimestamp, now),
      ];
    },
  },
  Service: {
    columns: [
      { name: 'Type', type: 'string', priority: 0 },
      { name: 'Cluster-IP', type: 'string', priority: 0 },
      { name: 'External-IP', type: 'string', priority: 0 },
      { name: 'Port(s)', type: 'string', priority: 0 },
      AGE,
    ],
    cells: (o, now) => {
      const s = (o.spec ?? {}) as Any;
      const ports = ((s.ports ?? []) as Any[]).map((p) => `${p.port}/${p.protocol ?? 'TCP'}`).join(',');
      return [
        s.type ?? 'ClusterIP',
        s.clusterIP ?? '<none>',
        '<none>',
        ports || '<none>',
        age(o.metadata.creationTimestamp, now),
      ];
    },
  },
  PersistentVolumeClaim: {
    columns: [
      { name: 'Status', type: 'string', priority: 0 },
      { name: 'Volume', type: 'string', priority: 0 },
      { name: 'Capacity', type: 'string', priority: 0 },
      { name: 'Access Modes', type: 'string', priority: 0 },
      { name: 'StorageClass', type: 'string', priority: 0 },
      AGE,
    ],
    cells: (o, now) => {
      const s = (o.spec ?? {}) as Any;
      const st = (o.status ?? {}) as Any;
      const phase = o.metadata.deletionTimestamp ? 'Terminating' : (st.phase ?? '');
      return [
        phase,
        s.volumeName ?? '',
        st.capacity?.storage ?? '',
        ((st.accessModes ?? []) as string[]).join(','),
        s.storageClassName ?? '<unset>',
        age(o.metadata.creationTimestamp, now),
      ];
    },
  },
  Namespace: {
    columns: [{ name: 'Status', type: 'string', priority: 0 }, AGE],
    cells: (o, now) => [((o.status ?? {}) as Any).phase ?? '', age(o.metadata.creationTimestamp, now)],
  },
  Event: {
    columns: [
      { name: 'Last Seen', type: 'string', priority: 0 },
      { name: 'Type', type: 'string', priority: 0 },
      { name: 'Reason', type: 'string', priority: 0 },
      { name: 'Object', type: 'string', priority: 0 },
      { name: 'Message', type: 'string', priority: 0 },
    ],
    cells: (o, now) => {
      const e = o as Any;
      const about = e.involvedObject ?? e.regarding ?? {};
      const last = e.series?.lastObservedTime ?? e.lastTimestamp ?? e.deprecatedLastTimestamp ?? e.eventTime;
      return [
        age(last, now),
        e.type ?? '',
        e.reason ?? '',
        `${String(about.kind ?? '').toLowerCase()}/${about.name ?? ''}`,
        e.message ?? e.note ?? '',
      ];
    },
  },
  Secret: {
    columns: [
      { name: 'Type', type: 'string', priority: 0 },
      { name: 'Data', type: 'string', priority: 0 },
      AGE,
    ],
    cells: (o, now) => [
      (o as Any).type ?? 'Opaque',
      String(Object.keys((o as Any).data ?? {}).length),
      age(o.metadata.creationTimestamp, now),
    ],
  },
  ConfigMap: {
    columns: [{ name: 'Data', type: 'string', priority: 0 }, AGE],
    cells: (o, now) => {
      const n = Object.keys((o as Any).data ?? {}).length + Object.keys((o as Any).binaryData ?? {}).length;
      return [String(n), age(o.metadata.creationTimestamp, now)];
    },
  },
  PodDisruptionBudget: {
    columns: [
      { name: 'Min Available', type: 'string', priority: 0 },
      { name: 'Max Unavailable', type: 'string', priority: 0 },
      { name: 'Allowed Disruptions', type: 'string', priority: 0 },
      AGE,
    ],
    cells: (o, now) => {
      const s = (o.spec ?? {}) as Any;
      const st = (o.status ?? {}) as Any;
      return [
        String(s.minAvailable ?? 'N/A'),
        String(s.maxUnavailable ?? 'N/A'),
        String(st.disruptionsAllowed ?? 0),
        age(o.metadata.creationTimestamp, now),
      ];
    },
  },
  Lease: {
    columns: [{ name: 'Holder', type: 'string', priority: 0 }, AGE],
    cells: (o, now) => [((o.spec ?? {}) as Any).holderIdentity ?? '', age(o.metadata.creationTimestamp, now)],
  },
};

function columnsOf(rt: ResourceType): Column[] {
  if (rt.crd) {
    return [
      NAME_COLUMN,
      ...rt.crd.columns.map((c) => ({
        name: c.name,
        type: c.type,
        format: c.format ?? '',
        description: c.description ?? '',
        priority: c.priority ?? 0,
      })),
    ];
  }
  const p = BUILTIN[rt.kind];
  const extra = p ? p.columns : [{ ...AGE, name: 'Created At', type: 'date' }];
  return [NAME_COLUMN, ...extra.map((c) => ({ format: '', description: '', ...c }))];
}

function cellsOf(rt: ResourceType, o: KubeObject, now: Date): unknown[] {
  if (rt.crd) return [o.metadata.name, ...rt.crd.columns.map((c) => customCell(c, o, now))];
  const p = BUILTIN[rt.kind];
  return [o.metadata.name, ...(p ? p.cells(o, now) : [o.metadata.creationTimestamp])];
}

export function toTable(
  rt: ResourceType,
  objects: KubeObject[],
  o: {
    resourceVersion?: string;
    continue?: string;
    include: IncludeObject;
    version: 'v1' | 'v1beta1';
    now: Date;
    noHeaders?: boolean;
  },
): Record<string, unknown> {
  return {
    kind: 'Table',
    apiVersion: `meta.k8s.io/${o.version}`,
    metadata: {
      ...(o.resourceVersion ? { resourceVersion: o.resourceVersion } : {}),
      ...(o.continue ? { continue: o.continue } : {}),
    },
    ...(o.noHeaders ? {} : { columnDefinitions: columnsOf(rt) }),
    rows: objects.map((obj) => ({
      cells: cellsOf(rt, obj, o.now),
      ...(o.include === 'None'
        ? {}
        : {
            object:
              o.include === 'Object'
                ? obj
                : {
                    kind: 'PartialObjectMetadata',
                    apiVersion: `meta.k8s.io/${o.version}`,
                    metadata: obj.metadata,
                  },
          }),
    })),
  };
}
