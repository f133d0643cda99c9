// The write path of the API stand-in, shared by every verb: preconditions (optimistic
// concurrency on resourceVersion, uid), the status subresource split, pruning of unknown fields,
// defaulting, validation, metadata.generation, managed fields, no-op detection, dry runs, and
// deletion (graceful pods, finalizers, propagation policies).

import { randomUUID } from 'node:crypto';
import { managedAfterWrite, type PathSet, type WriteContext } from './api-server-apply.js';
import { applySchemaDefaults } from './api-server-crd-schema.js';
import { defaultBuiltin } from './api-server-defaults.js';
import {
  ApiError,
  alreadyExists,
  badRequest,
  conflict,
  fieldCause,
  forbidden,
  invalid,
  notFound,
  STALE_OBJECT,
} from './api-server-errors.js';
import { coreToEvents, eventsToCore } from './api-server-events.js';
import { apiVersionOf, type Registry, type ResourceType } from './api-server-registry.js';
import {
  badMicroTime,
  builtinShape,
  customResourceShape,
  pruneUnknown,
  type Shape,
} from './api-server-shapes.js';
import { clone, type KubeObject, type ObjectStore } from './api-server-store.js';
import { builtinCauses, customCauses } from './api-server-validate.js';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export interface WriteOptions {
  manager: string;
  fieldValidation: FieldValidation;
  dryRun: boolean;
  warnings: string[];
  subresource?: 'status' | 'scale';
}

export interface DeleteOptions {
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
/** Kinds whose status a create may set (everything else starts from an empty or initial status). */
const STATUS_ON_CREATE = new Set(['Node']);
/** Kinds whose updates need metadata.resourceVersion (AllowUnconditionalUpdate false). */
const CONDITIONAL_ONLY = (rt: ResourceType) => rt.crd !== undefined;

export const rfc3339 = (d: Date) => `${d.toISOString().slice(0, 19)}Z`;

export class ApiCore {
  private readonly shapes = new Map<string, Shape>();
  /** Called after every committed write (the controllers react to them). */
  onWrite: (rt: ResourceType, obj: KubeObject, type: 'ADDED' | 'MODIFIED' | 'DELETED') => void = () => {};

  constructor(
    readonly store: ObjectStore,
    readonly registry: Registry,
    readonly now: () => Date,
  ) {}

  shape(rt: ResourceType): Shape {
    const key = `${apiVersionOf(rt)}/${rt.kind}`;
    let s = this.shapes.get(key);
    if (!s) {
      s = rt.crd ? customResourceShape(rt.crd.schema) : builtinShape(rt.builtinModel!);
      this.shapes.set(key, s);
    }
    return s;
  }

  forgetShapes(): void {
    this.shapes.clear();
  }

  /** A stored object as the given type serves it. */
  view(rt: ResourceType, stored: KubeObject): KubeObject {
    let o = rt.group === 'events.k8s.io' ? coreToEvents(stored) : clone(stored);
    // Custom resources are defaulted when read too (a CRD may have gained defaults since).
    if (rt.crd) o = applySchemaDefaults(rt.crd.schema, o) as KubeObject;
    o.apiVersion = apiVersionOf(rt);
    o.kind = rt.kind;
    return o;
  }

  private unview(rt: ResourceType, o: KubeObject): KubeObject {
    return rt.group === 'events.k8s.io' ? eventsToCore(o) : o;
  }

  read(rt: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.store.get(rt.storage, rt.namespaced ? namespace : undefined, name);
    return o && this.view(rt, o);
  }

  mustRead(rt: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const o = this.read(rt, namespace, name);
    if (!o) throw notFound(rt, name);
    return o;
  }

  private checkNamespace(rt: ResourceType, namespace: string | undefined, creating: boolean): void {
    if (!rt.namespaced) return;
    const ns = this.store.get('/namespaces', undefined, namespace ?? '');
    if (!ns)
      throw new ApiError(404, 'NotFound', `namespaces "${namespace}" not found`, {
        name: namespace ?? '',
        kind: 'namespaces',
      });
    if (creating && ns.metadata.deletionTimestamp) {
      throw forbidden(
        `${rt.plural}${rt.group ? `.${rt.group}` : ''} is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
      );
    }
  }

  /**
   * Creates (old undefined) or updates an object. `candidate` is the full object the client
   * wants (for a status write, only its status counts). Returns the object as served.
   */
  write(
    rt: ResourceType,
    namespace: string | undefined,
    old: KubeObject | undefined,
    candidate: KubeObject,
    o: WriteOptions,
    managed: {
      op: 'Apply' | 'Update';
      applied?: PathSet;
      entries?: KubeObject['metadata']['managedFields'];
    } = { op: 'Update' },
  ): KubeObject {
    if (!isObject(candidate) || !isObject(candidate.metadata)) {
      if (!isObject(candidate)) throw badRequest('the request body must be a JSON or YAML object');
      candidate.metadata = {};
    }
    const expected = apiVersionOf(rt);
    if (
      (candidate.apiVersion && candidate.apiVersion !== expected) ||
      (candidate.kind && candidate.kind !== rt.kind)
    ) {
      throw badRequest(
        `the API version in the data (${candidate.apiVersion}) does not match the expected API version (${expected})`,
      );
    }
    const next = clone(candidate);
    next.apiVersion = expected;
    next.kind = rt.kind;
    const unknown = pruneUnknown(this.shape(rt), next);
    if (unknown.length > 0 && o.fieldValidation === 'Strict') {
      throw badRequest(`strict decoding error: ${unknown.map((p) => `unknown field "${p}"`).join(', ')}`);
    }
    if (o.fieldValidation === 'Warn') for (const p of unknown) o.warnings.push(`unknown field "${p}"`);
    const micro = badMicroTime(this.shape(rt), next);
    if (micro) {
      throw badRequest(
        `${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: ${micro}: MicroTime must be RFC 3339 with microseconds (2006-01-02T15:04:05.000000Z07:00)`,
      );
    }
    const m = next.metadata;
    const ns = rt.namespaced ? namespace : undefined;
    if (rt.namespaced && m.namespace !== undefined && m.namespace !== '' && m.namespace !== namespace) {
      throw badRequest(
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
    if (!rt.namespaced) delete m.namespace;
    else m.namespace = namespace;
    const now = this.now();
    let result: KubeObject;
    if (!old) {
      if (!m.name && m.generateName)
        m.name = `${m.generateName}${randomUUID().replace(/-/g, '').slice(0, 5)}`;
      if (!m.name)
        throw invalid(rt, '', [fieldCause('metadata.name', 'Required', 'name or generateName is required')]);
      this.checkNamespace(rt, namespace, true);
      if (this.store.get(rt.storage, ns, m.name)) throw alreadyExists(rt, m.name);
      m.uid = randomUUID();
      m.creationTimestamp = rfc3339(now);
      for (const k of [
        'deletionTimestamp',
        'deletionGracePeriodSeconds',
        'resourceVersion',
        'selfLink',
      ] as const)
        delete m[k];
      if (rt.generation) m.generation = 1;
      else delete m.generation;
      if (rt.status && !STATUS_ON_CREATE.has(rt.kind) && o.subresource !== 'status') delete next.status;
      result = next;
    } else {
      this.checkNamespace(rt, namespace, false);
      if (m.name && m.name !== old.metadata.name) {
        throw badRequest(
          `the name of the object (${m.name}) does not match the name on the URL (${old.metadata.name})`,
        );
      }
      if (m.uid && m.uid !== old.metadata.uid) {
        throw conflict(
          rt,
          old.metadata.name!,
          `Precondition failed: UID in precondition: ${m.uid}, UID in object meta: ${old.metadata.uid}`,
        );
      }
      if (m.resourceVersion) {
        if (m.resourceVersion !== old.metadata.resourceVersion)
          throw conflict(rt, old.metadata.name!, STALE_OBJECT);
      } else if (CONDITIONAL_ONLY(rt) && managed.op !== 'Apply') {
        throw invalid(rt, old.metadata.name!, [
          fieldCause('metadata.resourceVersion', 'Invalid', 'must be specified for an update', '0x0'),
        ]);
      }
      if (o.subresource === 'status') {
        result = clone(old);
        if (next.status === undefined) delete result.status;
        else result.status = next.status;
      } else {
        result = next;
        for (const k of [
          'uid',
          'creationTimestamp',
          'deletionTimestamp',
          'deletionGracePeriodSeconds',
          'generation',
        ] as const) {
          if (old.metadata[k] === undefined) delete result.metadata[k];
          else (result.metadata as Record<string, unknown>)[k] = old.metadata[k];
        }
        result.metadata.name = old.metadata.name;
        if (rt.status) {
          if (old.status === undefined) delete result.status;
          else result.status = clone(old.status);
        }
      }
    }
    // Defaults, then validation.
    if (rt.crd) {
      const defaulted = applySchemaDefaults(rt.crd.schema, result) as KubeObject;
      Object.assign(result, defaulted);
    } else defaultBuiltin(rt.kind, result, old);
    const causes = rt.crd ? customCauses(rt, result, old) : builtinCauses(rt, result, old);
    if (causes.length > 0) throw invalid(rt, result.metadata.name ?? '', causes);

    if (old && rt.generation && this.specChanged(rt, old, result)) {
      result.metadata.generation = (old.metadata.generation ?? 0) + 1;
    }
    const ctx: WriteContext = {
      manager: o.manager,
      apiVersion: expected,
      shape: this.shape(rt),
      hasStatus: rt.status,
      ...(o.subresource === 'status' ? { subresource: 'status' as const } : {}),
      now: rfc3339(now),
    };
    result.metadata.managedFields = managedAfterWrite(
      old,
      result,
      ctx,
      managed.op,
      managed.entries ?? old?.metadata.managedFields ?? [],
      managed.applied,
    );
    if (result.metadata.managedFields.length === 0) delete result.metadata.managedFields;
    if (old) {
      result.metadata.resourceVersion = old.metadata.resourceVersion;
      if (same(withoutTimes(result), withoutTimes(old))) return old;
    }
    if (o.dryRun) return result;
    // The update that removes the last finalizer of an object being deleted deletes it.
    const finalized =
      old?.metadata.deletionTimestamp !== undefined &&
      (old.metadata.finalizers ?? []).length > 0 &&
      (result.metadata.finalizers ?? []).length === 0 &&
      !(rt.kind === 'Pod' && (result.metadata.deletionGracePeriodSeconds ?? 0) > 0);
    const type = !old ? 'ADDED' : finalized ? 'DELETED' : 'MODIFIED';
    return this.commit(rt, type, result);
  }

  private specChanged(rt: ResourceType, old: KubeObject, next: KubeObject): boolean {
    if (!rt.crd) return !same(old.spec, next.spec);
    const strip = (x: KubeObject) =>
      Object.fromEntries(
        Object.entries(x).filter(([k]) => k !== 'metadata' && !(rt.status && k === 'status')),
      );
    return !same(strip(old), strip(next));
  }

  commit(rt: ResourceType, type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: KubeObject): KubeObject {
    const stored = this.store.commit(type, rt.storage, this.unview(rt, obj));
    const served = this.view(rt, stored);
    this.onWrite(rt, served, type);
    return served;
  }

  /**
   * Deletes an object: at once, or by marking it (deletionTimestamp) when finalizers or a
   * graceful pod termination must come first. Returns the object and whether it is gone.
   */
  delete(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    d: DeleteOptions,
  ): { object: KubeObject; gone: boolean } {
    const obj = this.mustRead(rt, namespace, name);
    const pre = d.preconditions ?? {};
    if (pre.uid && pre.uid !== obj.metadata.uid) {
      throw conflict(
        rt,
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${obj.metadata.uid}`,
      );
    }
    if (pre.resourceVersion && pre.resourceVersion !== obj.metadata.resourceVersion) {
      throw conflict(
        rt,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${obj.metadata.resourceVersion}`,
      );
    }
    if (rt.kind === 'Namespace' && ['default', 'kube-system', 'kube-public'].includes(name)) {
      throw forbidden(`namespaces "${name}" is forbidden: this namespace may not be deleted`);
    }
    if (d.dryRun) return { object: obj, gone: false };
    const policy = d.propagationPolicy ?? 'Background';
    if (policy === 'Orphan') this.orphanDependents(obj.metadata.uid!);
    const m = obj.metadata;
    const spec = isObject(obj.spec) ? obj.spec : {};
    const status = isObject(obj.status) ? obj.status : {};
    const finalizers = [...(m.finalizers ?? [])];
    if (policy === 'Foreground' && !finalizers.includes('foregroundDeletion') && this.hasDependents(m.uid!)) {
      finalizers.push('foregroundDeletion');
    }
    let graceSeconds = 0;
    if (rt.kind === 'Pod' && spec.nodeName && status.phase !== 'Succeeded' && status.phase !== 'Failed') {
      graceSeconds = d.gracePeriodSeconds ?? (spec.terminationGracePeriodSeconds as number | undefined) ?? 30;
      if (m.deletionGracePeriodSeconds !== undefined)
        graceSeconds = Math.min(graceSeconds, m.deletionGracePeriodSeconds);
    }
    const namespaceTerminating =
      rt.kind === 'Namespace' && ((spec.finalizers as string[] | undefined) ?? []).length > 0;
    if (finalizers.length === 0 && graceSeconds <= 0 && !namespaceTerminating) {
      return { object: this.commit(rt, 'DELETED', obj), gone: true };
    }
    const marked = clone(obj);
    const now = this.now();
    if (!m.deletionTimestamp || (m.deletionGracePeriodSeconds ?? 0) > graceSeconds) {
      marked.metadata.deletionTimestamp = rfc3339(new Date(now.getTime() + graceSeconds * 1000));
      marked.metadata.deletionGracePeriodSeconds = graceSeconds;
      if (rt.generation) marked.metadata.generation = (m.generation ?? 0) + 1;
    }
    if (finalizers.length > 0) marked.metadata.finalizers = finalizers;
    if (rt.kind === 'Namespace') marked.status = { ...status, phase: 'Terminating' };
    if (same(marked, obj)) return { object: obj, gone: false };
    return { object: this.commit(rt, 'MODIFIED', marked), gone: false };
  }

  /** Removes a finalizer (as its controller would); the object goes when none is left. */
  removeFinalizer(rt: ResourceType, obj: KubeObject, finalizer: string): void {
    const next = clone(obj);
    next.metadata.finalizers = (obj.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    if (next.metadata.finalizers.length === 0) delete next.metadata.finalizers;
    const gone = next.metadata.deletionTimestamp && !next.metadata.finalizers;
    this.commit(rt, gone ? 'DELETED' : 'MODIFIED', next);
  }

  typeOfStorage(storage: string): ResourceType | undefined {
    return this.registry.storages().get(storage);
  }

  hasDependents(uid: string): boolean {
    for (const { object } of this.store.entries()) {
      if ((object.metadata.ownerReferences ?? []).some((r) => r.uid === uid)) return true;
    }
    return false;
  }

  private orphanDependents(uid: string): void {
    const dependents = [...this.store.entries()].filter(({ object }) =>
      (object.metadata.ownerReferences ?? []).some((r) => r.uid === uid),
    );
    for (const { storage, object } of dependents) {
      const rt = this.typeOfStorage(storage);
      if (!rt) continue;
      const next = clone(object);
      next.metadata.ownerReferences = (object.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
      if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
      this.commit(rt, 'MODIFIED', this.view(rt, next));
    }
  }
}

/** An object without what changes on every write (resourceVersion, managedFields times). */
function withoutTimes(o: KubeObject): unknown {
  const c = clone(o);
  delete c.metadata.resourceVersion;
  for (const e of c.metadata.managedFields ?? []) e.time = '';
  return c;
}
