// The control loops a real cluster runs beside the API server, in miniature: the garbage
// collector (dependents of a deleted owner go, in the background; foreground deletion waits for
// them), namespace termination, PVC protection (a claim being deleted stays while a pod uses it),
// and the CRD controllers (a CRD's resources are served once it is created — it is marked
// Established — and its objects are deleted with it).

import type { ApiCore } from './api-server-core.js';
import { crdTypes, type ResourceType } from './api-server-registry.js';
import { clone, type KubeObject } from './api-server-store.js';

const CRD_CLEANUP = 'customresourcecleanup.apiextensions.k8s.io';
const PVC_PROTECTION = 'kubernetes.io/pvc-protection';

export class Controllers {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly core: ApiCore,
    private readonly delayMs = 5,
  ) {
    core.onWrite = (rt, obj, type) => {
      if (rt.kind === 'CustomResourceDefinition' && rt.group === 'apiextensions.k8s.io')
        this.crdChanged(obj, type);
      this.kick();
    };
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Runs the loops soon (they are level-based: one pass looks at everything). */
  kick(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.runOnce();
    }, this.delayMs);
    this.timer.unref?.();
  }

  /** One pass of every loop; returns whether anything changed (tests may call it directly). */
  runOnce(): boolean {
    let changed = false;
    for (const step of [
      () => this.collectGarbage(),
      () => this.finishForeground(),
      () => this.protectClaims(),
      () => this.cleanCrds(),
      () => this.terminateNamespaces(),
    ]) {
      try {
        changed = step() || changed;
      } catch {
        // A failed step is retried on the next pass.
        this.kick();
      }
    }
    return changed;
  }

  private typeOf(storage: string): ResourceType | undefined {
    return this.core.typeOfStorage(storage);
  }

  private all(): Array<{ rt: ResourceType; obj: KubeObject }> {
    const out: Array<{ rt: ResourceType; obj: KubeObject }> = [];
    for (const { storage, object } of this.core.store.entries()) {
      const rt = this.typeOf(storage);
      if (rt) out.push({ rt, obj: clone(object) });
    }
    return out;
  }

  private tryDelete(
    rt: ResourceType,
    obj: KubeObject,
    policy: 'Background' | 'Foreground' = 'Background',
  ): boolean {
    try {
      this.core.delete(rt, obj.metadata.namespace, obj.metadata.name!, {
        propagationPolicy: policy,
        preconditions: { uid: obj.metadata.uid! },
      });
      return true;
    } catch {
      return false;
    }
  }

  /** Objects all of whose owners are gone are deleted; so are those of a foreground deletion. */
  private collectGarbage(): boolean {
    let changed = false;
    for (const { rt, obj } of this.all()) {
      const refs = obj.metadata.ownerReferences ?? [];
      if (refs.length === 0 || obj.metadata.deletionTimestamp) continue;
      const owners = refs.map((r) => this.core.store.byUid(r.uid)?.object);
      const allGone = owners.every((o) => o === undefined);
      const foreground = owners.some(
        (o) => o?.metadata.deletionTimestamp && o.metadata.finalizers?.includes('foregroundDeletion'),
      );
      if (allGone || foreground)
        changed = this.tryDelete(rt, obj, foreground ? 'Foreground' : 'Background') || changed;
    }
    return changed;
  }

  private finishForeground(): boolean {
    let changed = false;
    for (const { rt, obj } of this.all()) {
      if (!obj.metadata.deletionTimestamp || !obj.metadata.finalizers?.includes('foregroundDeletion'))
        continue;
      if (this.core.hasDependents(obj.metadata.uid!)) continue;
      this.core.removeFinalizer(rt, this.core.view(rt, obj), 'foregroundDeletion');
      changed = true;
    }
    return changed;
  }

  /** A claim being deleted loses its protection finalizer once no running pod mounts it. */
  private protectClaims(): boolean {
    let changed = false;
    const objects = this.all();
    for (const { rt, obj } of objects) {
      if (rt.kind !== 'PersistentVolumeClaim' || !obj.metadata.deletionTimestamp) continue;
      if (!obj.metadata.finalizers?.includes(PVC_PROTECTION)) continue;
      const inUse = objects.some(({ rt: prt, obj: pod }) => {
        if (prt.kind !== 'Pod' || pod.metadata.namespace !== obj.metadata.namespace) return false;
        const phase = (pod.status as { phase?: string } | undefined)?.phase;
        if (phase === 'Succeeded' || phase === 'Failed') return false;
        const volumes =
          (pod.spec as { volumes?: Array<{ persistentVolumeClaim?: { claimName?: string } }> } | undefined)
            ?.volumes ?? [];
        return volumes.some((v) => v.persistentVolumeClaim?.claimName === obj.metadata.name);
      });
      if (inUse) continue;
      this.core.removeFinalizer(rt, obj, PVC_PROTECTION);
      changed = true;
    }
    return changed;
  }

  private terminateNamespaces(): boolean {
    let changed = false;
    const objects = this.all();
    for (const { rt, obj } of objects) {
      if (rt.kind !== 'Namespace' || !obj.metadata.deletionTimestamp) continue;
      const name = obj.metadata.name;
      const contents = objects.filter((x) => x.rt.namespaced && x.obj.metadata.namespace === name);
      for (const x of contents)
        if (!x.obj.metadata.deletionTimestamp) changed = this.tryDelete(x.rt, x.obj) || changed;
      if (contents.length === 0) {
        this.core.commit(rt, 'DELETED', { ...obj, spec: { finalizers: [] } });
        changed = true;
      }
    }
    return changed;
  }

  /** A CRD being deleted: its objects go first, then its types, then the CRD. */
  private cleanCrds(): boolean {
    let changed = false;
    for (const { rt, obj } of this.all()) {
      if (rt.kind !== 'CustomResourceDefinition' || !obj.metadata.deletionTimestamp) continue;
      if (!obj.metadata.finalizers?.includes(CRD_CLEANUP)) continue;
      const storage = crdTypes(obj)[0]?.storage;
      const crs = this.all().filter((x) => x.rt.storage === storage);
      for (const x of crs)
        if (!x.obj.metadata.deletionTimestamp) changed = this.tryDelete(x.rt, x.obj) || changed;
      if (crs.length > 0) continue;
      this.core.registry.removeCrd(obj.metadata.name!);
      this.core.forgetShapes();
      this.core.removeFinalizer(rt, obj, CRD_CLEANUP);
      changed = true;
    }
    return changed;
  }

  /** Serves a created or changed CRD's versions, and marks it Established. */
  private crdChanged(crd: KubeObject, type: 'ADDED' | 'MODIFIED' | 'DELETED'): void {
    const name = crd.metadata.name!;
    if (type === 'DELETED') {
      const storage = crdTypes(crd)[0]?.storage;
      this.core.registry.removeCrd(name);
      if (storage) this.core.store.drop(storage);
      this.core.forgetShapes();
      return;
    }
    if (crd.metadata.deletionTimestamp) return;
    this.core.registry.removeCrd(name);
    for (const t of crdTypes(crd)) this.core.registry.add(t);
    this.core.forgetShapes();
    const spec = crd.spec as { names: unknown; versions: Array<{ name: string; storage?: boolean }> };
    const status = (crd.status ?? {}) as { conditions?: Array<{ type: string }> };
    const established = status.conditions?.some((c) => c.type === 'Established');
    const hasFinalizer = crd.metadata.finalizers?.includes(CRD_CLEANUP);
    if (established && hasFinalizer) return;
    const now = new Date(this.core.now().getTime()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const condition = (t: string, reason: string, message: string) => ({
      type: t,
      status: 'True',
      lastTransitionTime: now,
      reason,
      message,
    });
    const next = clone(crd);
    next.metadata.finalizers = [
      ...(crd.metadata.finalizers ?? []).filter((f) => f !== CRD_CLEANUP),
      CRD_CLEANUP,
    ];
    next.status = {
      conditions: [
        condition('NamesAccepted', 'NoConflicts', 'no conflicts found'),
        condition('Established', 'InitialNamesAccepted', 'the initial names have been accepted'),
      ],
      acceptedNames: spec.names,
      storedVersions: spec.versions.filter((v) => v.storage).map((v) => v.name),
    };
    const rt = this.core.registry.get('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')!;
    this.core.commit(rt, 'MODIFIED', next);
  }
}
